//! One encode for several clients: a lobby guest that asks for exactly the owner's stream
//! (size, frame rate, codec; for sound, the Opus layout and packet duration) gets the owner's
//! encoded frames instead of an encoder of its own. Each session holds an [`EncodedTap`] per
//! medium; the owner's pipeline hands every encoded frame or packet (a new reference, no copy)
//! from its payloader's sink pad to the `appsrc` of each guest pipeline subscribed to the tap,
//! and those pipelines payload, encrypt, protect with FEC and pace them with the guest's own
//! keys and settings. A sharing guest's key-frame request goes to the owner's encoder (the one
//! it shares), and it has no bitrate of its own to adapt.
//!
//! Per frame, with nobody subscribed: two atomic loads. With subscribers: one non-blocking push
//! per guest into an `appsrc` that drops its oldest frame when a guest's pipeline falls behind,
//! so a slow guest never holds up the owner.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use gst::prelude::*;
use hati_protocol::sdp::{OpusLayout, VideoCodec};

/// The stream a tap carries: what a guest must ask for to share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapMode {
    /// Encoded video of this size, rate and codec.
    Video {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Frames per second.
        fps: u32,
        /// Codec.
        codec: VideoCodec,
    },
    /// Opus packets of this layout and duration.
    Audio {
        /// Channels, streams and bitrate.
        layout: OpusLayout,
        /// Packet duration, ms.
        packet_duration_ms: u32,
    },
}

/// A guest pipeline's input, subscribed to an owner's tap.
#[derive(Debug, Clone)]
struct Subscriber {
    /// The guest's session.
    session: u32,
    source: gst_app::AppSrc,
}

/// What the owner's running stream makes now: its mode and its encoder's output caps.
#[derive(Debug, Clone)]
struct Running {
    mode: TapMode,
    caps: gst::Caps,
}

/// The encoded frames of one session's video, for guests in the same mode.
#[derive(Debug, Default)]
pub struct EncodedTap {
    subscribers: ArcSwap<Vec<Subscriber>>,
    running: Mutex<Option<Running>>,
}

impl EncodedTap {
    /// Taps a pipeline's encoded frames (at `payloader`'s sink pad) for the stream in `mode`;
    /// called once per stream start of the owner. Guests may subscribe at once when `caps` are
    /// given (sound: an idle sink may send nothing for a long while), else from the first frame
    /// on (its caps are known then).
    pub fn attach(
        self: &Arc<Self>,
        payloader: &gst::Element,
        mode: TapMode,
        caps: Option<gst::Caps>,
    ) {
        let known = AtomicBool::new(caps.is_some());
        *self.lock_running() = caps.map(|caps| Running { mode, caps });
        let Some(pad) = payloader.static_pad("sink") else {
            return;
        };
        let tap = Arc::downgrade(self);
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let (Some(tap), Some(gst::PadProbeData::Buffer(buffer))) = (tap.upgrade(), &info.data)
            else {
                return gst::PadProbeReturn::Ok;
            };
            // Once per stream: the frame's caps, which a sharing guest's appsrc must announce
            // (read from the encoder's side: a payloader may keep no caps on its sink pad).
            if !known.load(Ordering::Relaxed)
                && let Some(caps) = pad
                    .peer()
                    .and_then(|encoder| encoder.current_caps())
                    .or_else(|| pad.current_caps())
            {
                *tap.lock_running() = Some(Running { mode, caps });
                known.store(true, Ordering::Relaxed);
            }
            let subscribers = tap.subscribers.load();
            for subscriber in subscribers.iter() {
                // Non-blocking: the guest's appsrc drops its oldest frame when full.
                let _ = subscriber.source.push_buffer(buffer.clone());
            }
            gst::PadProbeReturn::Ok
        });
    }

    /// The owner's stream stopped: nothing can subscribe until the next one runs (those
    /// subscribed wait for it).
    pub fn detach(&self) {
        *self.lock_running() = None;
    }

    /// The encoder's output caps, when the owner's running stream is in `mode`.
    pub fn caps_for(&self, mode: TapMode) -> Option<gst::Caps> {
        self.lock_running()
            .as_ref()
            .filter(|running| running.mode == mode)
            .map(|running| running.caps.clone())
    }

    /// Feeds `source` (a guest pipeline's input) with this tap's frames from now on.
    pub fn subscribe(&self, session: u32, source: gst_app::AppSrc) {
        self.subscribers.rcu(|current| {
            let mut next: Vec<Subscriber> = current
                .iter()
                .filter(|s| s.session != session)
                .cloned()
                .collect();
            next.push(Subscriber {
                session,
                source: source.clone(),
            });
            next
        });
    }

    /// Stops feeding `session`'s guest pipeline.
    pub fn unsubscribe(&self, session: u32) {
        self.subscribers.rcu(|current| {
            current
                .iter()
                .filter(|s| s.session != session)
                .cloned()
                .collect::<Vec<_>>()
        });
    }

    /// How many guest pipelines share this tap now.
    pub fn subscribers(&self) -> usize {
        self.subscribers.load().len()
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `appsrc` that starts a sharing guest's pipeline, as a `gst-launch` fragment: live,
/// timestamped by the guest's own clock, never blocking its pusher, at most `max_buffers`
/// frames or packets queued (the oldest dropped first).
pub fn source_description(name: &str, caps: &gst::Caps, max_buffers: u32) -> String {
    format!(
        "appsrc name={name} is-live=true format=time do-timestamp=true block=false \
         max-buffers={max_buffers} leaky-type=downstream caps=\"{}\"",
        caps.to_string().replace('"', "\\\"")
    )
}

/// The caps of Opus packets in `mode`'s layout, as the guest's `appsrc` announces them (the
/// audio payloader takes any `audio/x-opus`).
pub fn opus_caps(layout: &OpusLayout) -> gst::Caps {
    gst::Caps::builder("audio/x-opus")
        .field("rate", 48_000i32)
        .field("channels", i32::from(layout.channels))
        .build()
}
