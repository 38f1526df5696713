//! One encode for several clients: a lobby guest that asks for exactly the owner's stream
//! (size, frame rate, codec; for sound, the Opus layout and packet duration) gets the owner's
//! encoded frames instead of an encoder of its own. Each session holds an [`EncodedTap`] per
//! medium; the owner's pipeline hands every encoded frame or packet (a new reference, no copy)
//! from its payloader's sink pad straight into the payloader of each guest pipeline subscribed
//! to the tap, through a pad of the tap's own linked to that payloader, and those pipelines
//! payload, encrypt, protect with FEC and send them with the guest's own keys and settings. A
//! sharing guest's key-frame request goes to the owner's encoder (the one it shares), and it has
//! no bitrate of its own to adapt.
//!
//! Why no `appsrc` (and no thread) per guest: handing each packet to another thread cost more
//! than the payloading itself (a futex wake and a context switch per audio packet, 200 a second
//! per guest; `scripts/lobby_bench.py`). A guest's payloading runs on the owner's streaming
//! thread instead, tens of microseconds a frame, and never waits: the guest's video goes on to
//! its sender thread through a queue that drops when full, its sound to a non-blocking socket.
//!
//! Per frame, with nobody subscribed: two atomic loads. With subscribers: one pad push per guest
//! in the owner's mode.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Why a guest's pipeline cannot take a tap's frames.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The tap's pad could not be activated or linked to the guest's payloader.
    #[error("cannot link the shared {0} frames to the guest's payloader: {1}")]
    Link(&'static str, String),
    /// The guest's payloader refused the owner's stream format.
    #[error("the guest's payloader refuses the owner's {0} format {1}")]
    Format(&'static str, gst::Caps),
}

/// A guest pipeline's input, subscribed to an owner's tap: a pad of the tap's own, linked to
/// the guest's payloader.
#[derive(Debug, Clone)]
struct Subscriber {
    /// The guest's session.
    session: u32,
    /// The mode the guest asked for: it gets frames only while the owner streams in it.
    mode: TapMode,
    pad: gst::Pad,
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
    /// Added to the owner's timestamps in the guests' segment (ns): each owner stream starts
    /// its timestamps from zero, a guest's stream goes on across them, so its timestamps (the
    /// RTP timestamps its client sees) must not go back.
    segment_base_ns: AtomicU64,
    /// The latest timestamp a guest was given, with the base (ns).
    latest_ns: AtomicU64,
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
        // Guests already subscribed get the new base with this stream's first frame.
        let latest = self.latest_ns.load(Ordering::Relaxed);
        let base = if latest > 0 { latest + FRAME_GAP_NS } else { 0 };
        self.segment_base_ns.store(base, Ordering::Relaxed);
        let rebased = AtomicBool::new(base == 0);
        let Some(pad) = payloader.static_pad("sink") else {
            return;
        };
        let tap = Arc::downgrade(self);
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let (Some(tap), Some(gst::PadProbeData::Buffer(buffer))) = (tap.upgrade(), &info.data)
            else {
                return gst::PadProbeReturn::Ok;
            };
            // Once per stream: the frame's caps, which a sharing guest's payloader is told
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
            // This stream's first frame: guests subscribed before it get its base.
            let first = !rebased.load(Ordering::Relaxed) && !rebased.swap(true, Ordering::Relaxed);
            if let Some(pts) = buffer.pts() {
                tap.latest_ns
                    .store(pts.nseconds() + base, Ordering::Relaxed);
            }
            for subscriber in subscribers.iter().filter(|s| s.mode == mode) {
                if first {
                    subscriber.pad.push_event(segment_from(base));
                }
                // The guest's payloader runs here; an error there (its stream stopping) is
                // the guest's, not the owner's.
                let _ = subscriber.pad.push(buffer.clone());
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

    /// Feeds `payloader_sink` (a guest pipeline's payloader, already playing) with this tap's
    /// frames in `mode`, announced with `caps`, from now on.
    pub fn subscribe(
        &self,
        session: u32,
        mode: TapMode,
        caps: &gst::Caps,
        payloader_sink: &gst::Pad,
    ) -> Result<(), SubscribeError> {
        let kind = match mode {
            TapMode::Video { .. } => "video",
            TapMode::Audio { .. } => "audio",
        };
        let pad = gst::Pad::builder(gst::PadDirection::Src)
            .name(format!("hati-shared-{kind}-{session}"))
            .build();
        // A sticky event's push succeeds even when refused (it waits for the next buffer), so
        // the format is asked about first.
        if !payloader_sink.query_accept_caps(caps) {
            return Err(SubscribeError::Format(kind, caps.clone()));
        }
        pad.set_active(true)
            .map_err(|e| SubscribeError::Link(kind, e.to_string()))?;
        pad.link(payloader_sink)
            .map_err(|e| SubscribeError::Link(kind, format!("{e:?}")))?;
        // The events a source sends before its first buffer: the owner's buffers keep its
        // timestamps, in a time segment from zero like the owner's (plus the base).
        pad.push_event(gst::event::StreamStart::new(&format!(
            "hati-shared-{kind}-{session}"
        )));
        pad.push_event(gst::event::Caps::new(caps));
        pad.push_event(segment_from(self.segment_base_ns.load(Ordering::Relaxed)));
        self.subscribers.rcu(|current| {
            let mut next: Vec<Subscriber> = current
                .iter()
                .filter(|s| s.session != session)
                .cloned()
                .collect();
            next.push(Subscriber {
                session,
                mode,
                pad: pad.clone(),
            });
            next
        });
        Ok(())
    }

    /// Stops feeding `session`'s guest pipeline (a frame being pushed finishes first, when the
    /// guest's pipeline stops).
    pub fn unsubscribe(&self, session: u32) {
        let mut gone = Vec::new();
        self.subscribers.rcu(|current| {
            gone = current
                .iter()
                .filter(|s| s.session == session)
                .map(|s| s.pad.clone())
                .collect();
            current
                .iter()
                .filter(|s| s.session != session)
                .cloned()
                .collect::<Vec<_>>()
        });
        for pad in gone {
            let _ = pad.set_active(false);
        }
    }

    /// How many guest pipelines share this tap now.
    pub fn subscribers(&self) -> usize {
        self.subscribers.load().len()
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The gap left between one owner stream's last timestamp and the next one's first, in the
/// guests' running time (ns).
const FRAME_GAP_NS: u64 = 1_000_000;

/// A time segment from zero whose running time starts at `base_ns`.
fn segment_from(base_ns: u64) -> gst::Event {
    let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
    segment.set_base(gst::ClockTime::from_nseconds(base_ns));
    gst::event::Segment::new(&segment)
}

/// The caps of Opus packets in `mode`'s layout, as a sharing guest's payloader is told (it
/// takes any `audio/x-opus`).
pub fn opus_caps(layout: &OpusLayout) -> gst::Caps {
    gst::Caps::builder("audio/x-opus")
        .field("rate", 48_000i32)
        .field("channels", i32::from(layout.channels))
        .build()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn audio(layout: OpusLayout) -> TapMode {
        TapMode::Audio {
            layout,
            packet_duration_ms: 5,
        }
    }

    fn launch(description: &str) -> gst::Pipeline {
        gst::parse::launch(description)
            .expect("the test pipeline parses")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline")
    }

    /// A guest pipeline as a sharing guest's is built: no source, its first element (`pay`)
    /// fed by the tap; counts what reaches its appsink and on which thread.
    struct Guest {
        pipeline: gst::Pipeline,
        received: Arc<AtomicUsize>,
        threads: Arc<Mutex<Vec<i32>>>,
        /// Each buffer's running time, ns.
        running_times: Arc<Mutex<Vec<u64>>>,
    }

    impl Guest {
        fn start(first: &str) -> Self {
            let pipeline = launch(&format!(
                "{first} name=pay ! appsink name=out sync=false async=false emit-signals=false"
            ));
            let received = Arc::new(AtomicUsize::new(0));
            let threads = Arc::new(Mutex::new(Vec::new()));
            let sink = pipeline
                .by_name("out")
                .and_downcast::<gst_app::AppSink>()
                .expect("appsink");
            let running_times = Arc::new(Mutex::new(Vec::new()));
            let (count, seen, times) = (received.clone(), threads.clone(), running_times.clone());
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Error)?;
                        let running_time = sample
                            .segment()
                            .and_then(|s| s.downcast_ref::<gst::ClockTime>())
                            .zip(sample.buffer().and_then(|b| b.pts()))
                            .and_then(|(segment, pts)| segment.to_running_time(pts));
                        if let Some(time) = running_time {
                            times.lock().unwrap().push(time.nseconds());
                        }
                        count.fetch_add(1, Ordering::Relaxed);
                        // SAFETY: reads the calling thread's id.
                        let tid = unsafe { libc::gettid() };
                        let mut seen = seen.lock().unwrap();
                        if !seen.contains(&tid) {
                            seen.push(tid);
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
            pipeline.set_state(gst::State::Playing).expect("plays");
            Self {
                pipeline,
                received,
                threads,
                running_times,
            }
        }

        fn payloader_sink(&self) -> gst::Pad {
            self.pipeline
                .by_name("pay")
                .and_then(|e| e.static_pad("sink"))
                .expect("sink pad")
        }

        fn received(&self) -> usize {
            self.received.load(Ordering::Relaxed)
        }
    }

    impl Drop for Guest {
        fn drop(&mut self) {
            let _ = self.pipeline.set_state(gst::State::Null);
        }
    }

    /// Runs an owner pipeline of `buffers` buffers to its end with `tap` attached at `pay`;
    /// the ids of the threads its payloader's sink pad ran on.
    fn run_owner(tap: &Arc<EncodedTap>, mode: TapMode, buffers: u32) -> Vec<i32> {
        let owner = launch(&format!(
            "audiotestsrc num-buffers={buffers} samplesperbuffer=240 ! identity name=pay ! \
             fakesink sync=false"
        ));
        let payloader = owner.by_name("pay").expect("pay");
        tap.attach(&payloader, mode, Some(gst::Caps::new_any()));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let seen = threads.clone();
        payloader.static_pad("sink").expect("sink").add_probe(
            gst::PadProbeType::BUFFER,
            move |_, _| {
                // SAFETY: reads the calling thread's id.
                let tid = unsafe { libc::gettid() };
                let mut seen = seen.lock().unwrap();
                if !seen.contains(&tid) {
                    seen.push(tid);
                }
                gst::PadProbeReturn::Ok
            },
        );
        owner.set_state(gst::State::Playing).expect("owner plays");
        let bus = owner.bus().expect("bus");
        let message = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(10),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .expect("the owner ends within 10 s");
        assert!(
            matches!(message.view(), gst::MessageView::Eos(_)),
            "{message:?}"
        );
        owner.set_state(gst::State::Null).expect("owner stops");
        tap.detach();
        threads.lock().unwrap().clone()
    }

    #[test]
    fn guests_in_the_owners_mode_get_every_frame_on_the_owners_thread_others_none() {
        gst::init().expect("gstreamer");
        let tap = Arc::new(EncodedTap::default());
        let stereo = audio(OpusLayout::STEREO);
        let surround = audio(OpusLayout {
            channels: 6,
            ..OpusLayout::STEREO
        });
        let (same, other) = (Guest::start("identity"), Guest::start("identity"));
        let caps = opus_caps(&OpusLayout::STEREO);
        tap.subscribe(1, stereo, &caps, &same.payloader_sink())
            .expect("subscribes");
        tap.subscribe(2, surround, &caps, &other.payloader_sink())
            .expect("subscribes");
        assert_eq!(tap.subscribers(), 2);

        let owner_threads = run_owner(&tap, stereo, 40);
        assert_eq!(same.received(), 40, "every frame of the owner's, once");
        assert_eq!(other.received(), 0, "a guest in another mode gets none");
        // No thread of the guest's own: its payloading ran where the owner's did.
        assert_eq!(*same.threads.lock().unwrap(), owner_threads);

        // An owner stream in the other guest's mode feeds that guest only.
        let _ = run_owner(&tap, surround, 10);
        assert_eq!((same.received(), other.received()), (40, 10));

        tap.unsubscribe(1);
        assert_eq!(tap.subscribers(), 1);
        let _ = run_owner(&tap, stereo, 10);
        assert_eq!(same.received(), 40, "nothing after unsubscribing");
        // Subscribing again (a guest's new stream) works on the same payloader.
        tap.subscribe(1, stereo, &caps, &same.payloader_sink())
            .expect("subscribes again");
        let _ = run_owner(&tap, stereo, 5);
        assert_eq!(same.received(), 45);
        // Four owner streams, each timestamped from zero: the guest's time only goes on.
        let times = same.running_times.lock().unwrap().clone();
        assert_eq!(times.len(), 45);
        assert!(
            times.windows(2).all(|pair| pair[0] < pair[1]),
            "the guest's running time went back: {times:?}"
        );
    }

    #[test]
    fn a_payloader_refusing_the_owners_format_is_an_error_not_a_silent_guest() {
        gst::init().expect("gstreamer");
        let tap = EncodedTap::default();
        let guest = Guest::start("capsfilter caps=video/x-raw");
        let error = tap
            .subscribe(
                3,
                audio(OpusLayout::STEREO),
                &opus_caps(&OpusLayout::STEREO),
                &guest.payloader_sink(),
            )
            .expect_err("audio into a video-only payloader");
        assert!(
            matches!(error, SubscribeError::Format("audio", _)),
            "{error}"
        );
        assert_eq!(tap.subscribers(), 0);
        assert!(!guest.payloader_sink().is_linked());
    }
}
