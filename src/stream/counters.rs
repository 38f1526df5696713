//! The counters every media stream keeps (packets, bytes, samples, drops), shared by the
//! pipelines that count samples and the senders that count packets.

use std::sync::atomic::AtomicU64;

/// Counters of one stream, read by the admin API and logs.
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// Packets handed to the kernel.
    pub packets_sent: AtomicU64,
    /// Packets dropped because no client address was known yet or the send failed.
    pub packets_dropped: AtomicU64,
    /// Bytes of the packets handed to the kernel.
    pub bytes_sent: AtomicU64,
    /// Samples from the payloader: frames for video, packets for audio.
    pub samples: AtomicU64,
    /// Video frames dropped because the sender's queue was full (the link or the socket could
    /// not take them as fast as the encoder made them).
    pub frames_backlogged: AtomicU64,
    /// Video key frames the encoder made (IDR: the client asked, or the stream started).
    pub key_frames: AtomicU64,
}
