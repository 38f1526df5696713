//! The video sender: one thread per video stream. The appsink callback hands it each frame's
//! packets (the payloader's buffer list, by reference: nothing is copied) and returns at once, so
//! the encoder's thread never sleeps for pacing. The thread paces with a token bucket at a
//! multiple of the encoder's bitrate (a frame that would take longer than one frame interval at
//! that rate is spread over exactly one) and sends runs of equal-sized packets as one UDP GSO
//! `sendmsg` (the kernel cuts them into datagrams), falling back to one `sendmmsg` per run, then
//! one `sendto` per packet, where the kernel or the device refuses. Steady state allocates
//! nothing.

mod batch;
mod bucket;
mod thread;

#[cfg(test)]
mod tests;

pub use self::batch::{Batcher, MAX_SEGMENTS, gso_supported};
pub use self::bucket::{Pacing, TokenBucket};
pub use self::thread::VideoSender;
pub use super::qos::mark_for_qos;
