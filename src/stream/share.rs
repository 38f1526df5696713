//! One encode for several clients: a lobby guest that asks for exactly the owner's stream
//! (size, frame rate, codec) gets the owner's encoded frames instead of an encoder of its own.
//! Each session holds an [`EncodedTap`]; the owner's video pipeline hands every encoded frame
//! (a new reference, no copy) from its payloader's sink pad to the `appsrc` of each guest
//! pipeline subscribed to the tap, and those pipelines payload, encrypt, protect with FEC and
//! pace the frames with the guest's own keys and settings. A sharing guest's key-frame request
//! goes to the owner's encoder (the one it shares), and it has no bitrate of its own to adapt.
//!
//! Per frame, with nobody subscribed: one atomic load. With subscribers: one non-blocking push
//! per guest into an `appsrc` that drops its oldest frame when a guest's pipeline falls behind,
//! so a slow guest never holds up the owner.

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use gst::prelude::*;
use hati_protocol::sdp::VideoCodec;

/// The stream a tap carries: what a guest must ask for to share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapMode {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Codec.
    pub codec: VideoCodec,
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
    /// Taps `pipeline`'s encoded frames (at `payloader`'s sink pad) for the stream in `mode`;
    /// called once per stream start of the owner.
    pub fn attach(self: &Arc<Self>, payloader: &gst::Element, mode: TapMode) {
        let Some(pad) = payloader.static_pad("sink") else {
            return;
        };
        let tap = Arc::downgrade(self);
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let (Some(tap), Some(gst::PadProbeData::Buffer(buffer))) = (tap.upgrade(), &info.data)
            else {
                return gst::PadProbeReturn::Ok;
            };
            let subscribers = tap.subscribers.load();
            if subscribers.is_empty() {
                return gst::PadProbeReturn::Ok;
            }
            for subscriber in subscribers.iter() {
                // Non-blocking: the guest's appsrc drops its oldest frame when full.
                let _ = subscriber.source.push_buffer(buffer.clone());
            }
            gst::PadProbeReturn::Ok
        });
        // The caps are known once the encoder negotiated; until then a guest cannot share.
        if let Some(caps) = pad.current_caps() {
            *self.lock_running() = Some(Running { mode, caps });
        } else {
            *self.lock_running() = None;
            let tap = Arc::downgrade(self);
            pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                if let (Some(tap), Some(gst::PadProbeData::Event(event))) =
                    (tap.upgrade(), &info.data)
                    && let gst::EventView::Caps(caps) = event.view()
                {
                    *tap.lock_running() = Some(Running {
                        mode,
                        caps: caps.caps_owned(),
                    });
                    return gst::PadProbeReturn::Remove;
                }
                gst::PadProbeReturn::Ok
            });
        }
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

/// The `appsrc` that starts a sharing guest's video pipeline, as a `gst-launch` fragment:
/// live, timestamped by the guest's own clock, never blocking its pusher, at most a few frames
/// queued (the oldest dropped first).
pub fn source_description(name: &str, caps: &gst::Caps) -> String {
    format!(
        "appsrc name={name} is-live=true format=time do-timestamp=true block=false \
         max-buffers=4 leaky-type=downstream caps=\"{}\"",
        caps.to_string().replace('"', "\\\"")
    )
}
