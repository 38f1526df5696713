//! A session's running video and audio pipelines. Each ends in an `appsink` whose callback runs
//! on GStreamer's streaming thread. Video: the callback hands each frame's packets, by
//! reference, to the stream's sender thread ([`super::sender`]), which paces and sends them (a
//! full queue drops the frame). Audio: the callback sends the packets itself, one `sendto` each,
//! pausing briefly after every 64; so does video started without pacing, and a single-buffer
//! video sample whose caps give no packet size. No allocation and no logging above trace level
//! per packet.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gst::prelude::*;
use thiserror::Error;

use super::Target;
pub use super::counters::StreamCounters;
use super::sender::{Pacing, VideoSender};
use super::share::{EncodedTap, TapMode};
use crate::pipeline::{AUDIO_PAYLOADER, CAPTURE_ELEMENT, DESKTOP_SOURCE, SINK, VIDEO_PAYLOADER};

/// Audio packets (small, one per 5–20 ms) are sent on the streaming thread; these bound a
/// burst of them after a stall, so the client's socket buffer is not overrun.
const PACING_BURST: usize = 64;
/// The pause between bursts.
const PACING_PAUSE: Duration = Duration::from_micros(200);

static CAPTURE_TIME_CAPS: LazyLock<gst::Caps> =
    LazyLock::new(|| gst::Caps::new_empty_simple("timestamp/x-unix"));

/// Why a stream could not start.
#[derive(Debug, Error)]
pub enum StreamError {
    /// The pipeline description did not parse (a missing element, a typo in config.toml).
    #[error("{kind} pipeline does not parse: {message}")]
    Parse {
        /// "video" or "audio".
        kind: &'static str,
        /// GStreamer's message.
        message: String,
    },
    /// The pipeline refused to start.
    #[error("{kind} pipeline does not start: {message}")]
    Start {
        /// "video" or "audio".
        kind: &'static str,
        /// GStreamer's message.
        message: String,
    },
}

/// What of a lobby guest's stream comes from the owner's encoders (see `share`).
#[derive(Default)]
pub struct SharedInput {
    /// The owner's video, when the guest shares its video encoder.
    pub video: Option<SharedMedium>,
    /// The owner's sound, when the guest shares its Opus encoder.
    pub audio: Option<SharedMedium>,
    /// The guest's session, its subscriber name on the taps.
    pub session: u32,
    /// Asks the shared video encoder for a key frame.
    pub request_key_frame: Option<Box<dyn Fn() + Send + Sync>>,
}

/// One medium a guest takes from the owner: the owner's tap, the mode the guest asked for and
/// the encoder's output format in it.
pub struct SharedMedium {
    /// The owner's tap.
    pub tap: Arc<EncodedTap>,
    /// The guest's (and the owner's) mode.
    pub mode: TapMode,
    /// The owner's encoded format.
    pub caps: gst::Caps,
}

impl SharedInput {
    /// Each shared medium with the name of the guest payloader it feeds.
    fn media(&self) -> impl Iterator<Item = (&SharedMedium, &'static str)> {
        let video = self.video.as_ref().map(|m| (m, VIDEO_PAYLOADER));
        let audio = self.audio.as_ref().map(|m| (m, AUDIO_PAYLOADER));
        video.into_iter().chain(audio)
    }
}

/// The running pipelines of a session; dropping it stops them.
pub struct MediaStream {
    video: gst::Pipeline,
    /// What comes from another session's encoders (boxed: rarely there, and large).
    shared: Box<SharedInput>,
    audio: gst::Pipeline,
    video_sink: gst::Element,
    /// The video encoder, when its bitrate can change while playing.
    bitrate_knob: Option<BitrateKnob>,
    /// The encoder's bitrate as the video sender paces by it (kbit/s; 0: unknown).
    pacing_bitrate: Arc<AtomicU32>,
    /// Video counters.
    pub video_counters: Arc<StreamCounters>,
    /// Audio counters.
    pub audio_counters: Arc<StreamCounters>,
}

/// One pipeline to start: its description, socket and target.
pub struct Endpoint<'a> {
    /// The `gst-launch` description.
    pub description: &'a str,
    /// The host socket to send from.
    pub socket: Arc<UdpSocket>,
    /// Where the client listens.
    pub target: Arc<Target>,
    /// Video only: send from a sender thread paced at this multiple of the encoder's bitrate,
    /// with frames `fps` per second. `None`: send on the streaming thread (audio).
    pub pacing: Option<(f64, u32)>,
}

impl MediaStream {
    /// Builds and starts both pipelines. `on_error` is called (from a GStreamer thread) if
    /// either fails later.
    pub fn start(
        session_id: u32,
        video: Endpoint<'_>,
        audio: Endpoint<'_>,
        desktop: Option<&hati_compositor::CompositorHandle>,
        shared: SharedInput,
        on_error: impl Fn(String) + Send + Sync + Clone + 'static,
    ) -> Result<Self, StreamError> {
        let video_counters = Arc::new(StreamCounters::default());
        let audio_counters = Arc::new(StreamCounters::default());
        let pacing_bitrate = Arc::new(AtomicU32::new(0));
        let video_sender = match video.pacing {
            Some((multiple, fps)) => Some(Arc::new(
                VideoSender::start(
                    format!("hati-send-{session_id}"),
                    video.socket.clone(),
                    video_counters.clone(),
                    Pacing {
                        multiple,
                        bitrate_kbps: pacing_bitrate.clone(),
                        frame_interval: Duration::from_secs(1) / fps.max(1),
                    },
                )
                .map_err(|e| StreamError::Start {
                    kind: "video",
                    message: format!("cannot start the sender thread: {e}"),
                })?,
            )),
            None => None,
        };
        let video_pipeline = build(
            "video",
            session_id,
            &video,
            video_counters.clone(),
            video_sender,
            on_error.clone(),
        )?;
        let audio_pipeline = build(
            "audio",
            session_id,
            &audio,
            audio_counters.clone(),
            None,
            on_error,
        )?;
        if let Some(capture) = video_pipeline.by_name(CAPTURE_ELEMENT) {
            stamp_capture_time(&capture);
        }
        count_key_frames(&video_pipeline, &video_counters);
        if let (Some(desktop), Some(source)) = (desktop, video_pipeline.by_name(DESKTOP_SOURCE))
            && let Ok(source) =
                source.downcast::<hati_compositor::waylanddisplaysrc::WaylandDisplaySrc>()
        {
            source.set_compositor(desktop.clone());
            // A lobby guest may ask for fewer frames than the shared desktop makes.
            if let Some((_, fps)) = video.pacing
                && fps != desktop.config().fps
            {
                source.set_property("output-fps", fps);
            }
        }
        let video_sink = video_pipeline
            .by_name(SINK)
            .ok_or_else(|| StreamError::Parse {
                kind: "video",
                message: format!("no element named {SINK}"),
            })?;
        let bitrate_knob = BitrateKnob::find(&video_pipeline);
        let mut shared_inputs = Vec::new();
        for (medium, payloader) in shared.media() {
            let (kind, pipeline) = if payloader == VIDEO_PAYLOADER {
                ("video", &video_pipeline)
            } else {
                ("audio", &audio_pipeline)
            };
            let sink = pipeline
                .by_name(payloader)
                .and_then(|e| e.static_pad("sink"))
                .ok_or_else(|| StreamError::Parse {
                    kind,
                    message: format!("no {payloader} with a sink pad to share the owner's frames"),
                })?;
            shared_inputs.push((
                kind,
                medium.tap.clone(),
                medium.mode,
                medium.caps.clone(),
                sink,
            ));
        }
        let stream = Self {
            shared: Box::new(shared),
            bitrate_knob,
            pacing_bitrate,
            video: video_pipeline,
            audio: audio_pipeline,
            video_sink,
            video_counters,
            audio_counters,
        };
        for (kind, pipeline) in [("video", &stream.video), ("audio", &stream.audio)] {
            pipeline
                .set_state(gst::State::Playing)
                .map_err(|e| StreamError::Start {
                    kind,
                    message: e.to_string(),
                })?;
        }
        if let Some(kbps) = stream.encoder_bitrate_kbps() {
            stream.pacing_bitrate.store(kbps, Ordering::Relaxed);
        }
        for (kind, tap, mode, caps, sink) in shared_inputs {
            tap.subscribe(stream.shared.session, mode, &caps, &sink)
                .map_err(|e| StreamError::Start {
                    kind,
                    message: e.to_string(),
                })?;
        }
        // A decoder can only start at a key frame.
        if let Some(request_key_frame) = &stream.shared.request_key_frame {
            request_key_frame();
        }
        Ok(stream)
    }

    /// The video payloader (where a lobby's shared encode is tapped).
    pub fn video_payloader(&self) -> Option<gst::Element> {
        self.video.by_name(VIDEO_PAYLOADER)
    }

    /// The audio payloader (where a lobby's shared Opus encode is tapped).
    pub fn audio_payloader(&self) -> Option<gst::Element> {
        self.audio.by_name(AUDIO_PAYLOADER)
    }

    /// Whether the video comes from another session's encoder.
    pub fn shares_video(&self) -> bool {
        self.shared.video.is_some()
    }

    /// Whether the sound comes from another session's encoder.
    pub fn shares_audio(&self) -> bool {
        self.shared.audio.is_some()
    }

    /// The encoder's bitrate in kbit/s, when it can change while playing.
    pub fn encoder_bitrate_kbps(&self) -> Option<u32> {
        self.bitrate_knob.as_ref()?.kbps()
    }

    /// Sets the encoder's bitrate (kbit/s) while playing; false if it cannot change.
    pub fn set_encoder_bitrate_kbps(&self, kbps: u32) -> bool {
        let Some(knob) = self.bitrate_knob.as_ref() else {
            return false;
        };
        knob.set_kbps(kbps);
        self.pacing_bitrate.store(kbps, Ordering::Relaxed);
        true
    }

    /// The video payloader's host processing latency over its last 256 frames: (p50, p99) in
    /// µs; `None` when the pipeline has no payloader by Hati's name.
    pub fn host_latency_us(&self) -> Option<(u32, u32)> {
        let payloader = self.video.by_name(crate::pipeline::VIDEO_PAYLOADER)?;
        let stats = payloader.property::<gst::Structure>("stats");
        Some((
            stats.get::<u32>("latency-p50-us").ok()?,
            stats.get::<u32>("latency-p99-us").ok()?,
        ))
    }

    /// Asks the encoder for a key frame with parameter sets (IDR requests, new clients); a
    /// sharing guest asks the encoder it shares.
    pub fn request_idr(&self) {
        match &self.shared.request_key_frame {
            Some(request_key_frame) => request_key_frame(),
            None => request_key_frame(&self.video_sink),
        }
    }
}

impl Drop for MediaStream {
    fn drop(&mut self) {
        for (medium, _) in self.shared.media() {
            medium.tap.unsubscribe(self.shared.session);
        }
        for pipeline in [&self.video, &self.audio] {
            // Errors that elements post while being torn down are not the stream's failure.
            if let Some(bus) = pipeline.bus() {
                bus.unset_sync_handler();
            }
            let _ = pipeline.set_state(gst::State::Null);
        }
    }
}

fn build(
    kind: &'static str,
    session_id: u32,
    endpoint: &Endpoint<'_>,
    counters: Arc<StreamCounters>,
    sender: Option<Arc<VideoSender>>,
    on_error: impl Fn(String) + Send + Sync + 'static,
) -> Result<gst::Pipeline, StreamError> {
    let parse_error = |message: String| StreamError::Parse { kind, message };
    let element =
        gst::parse::launch(endpoint.description).map_err(|e| parse_error(e.to_string()))?;
    let pipeline = element
        .downcast::<gst::Pipeline>()
        .map_err(|_| parse_error("the description is not a pipeline".into()))?;
    pipeline.set_property("name", format!("hati-{kind}-{session_id}"));
    super::register_pipeline(&pipeline);
    let sink = pipeline
        .by_name(SINK)
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| parse_error(format!("no appsink named {SINK}")))?;
    sink.set_property("buffer-list", true);
    let socket = endpoint.socket.clone();
    let target = endpoint.target.clone();
    // The payloader's packet size, read from the caps once (they do not change in a stream).
    let stride_cache = std::sync::atomic::AtomicUsize::new(0);
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                counters.samples.fetch_add(1, Ordering::Relaxed);
                let destination = target.get();
                if let (Some(sender), Some(list)) = (sender.as_ref(), sample.buffer_list()) {
                    match destination {
                        // A new reference to the same list: nothing is copied.
                        Some(destination) => sender.submit(list.to_owned(), destination),
                        None => {
                            counters
                                .packets_dropped
                                .fetch_add(list.len() as u64, Ordering::Relaxed);
                        }
                    }
                } else if let (Some(sender), Some(buffer), Some(stride)) = (
                    sender.as_ref(),
                    sample.buffer(),
                    cached_packet_size(&stride_cache, &sample),
                ) {
                    match destination {
                        // A new reference to the same buffer: nothing is copied.
                        Some(destination) => {
                            sender.submit_whole(buffer.to_owned(), stride, destination);
                        }
                        None => {
                            counters.packets_dropped.fetch_add(
                                buffer.size().div_ceil(stride) as u64,
                                Ordering::Relaxed,
                            );
                        }
                    }
                } else if let Some(list) = sample.buffer_list() {
                    send_packets(&socket, destination, list.iter(), &counters);
                } else if let Some(buffer) = sample.buffer() {
                    send_packets(&socket, destination, std::iter::once(buffer), &counters);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    forward_errors(&pipeline, kind, move |_, message| on_error(message));
    Ok(pipeline)
}

/// Sends packets one `sendto` each on the calling thread, pausing briefly every
/// [`PACING_BURST`] packets: the audio path (and the video baseline in `benches/send.rs`).
pub fn send_packets<'a>(
    socket: &UdpSocket,
    destination: Option<SocketAddr>,
    packets: impl Iterator<Item = &'a gst::BufferRef>,
    counters: &StreamCounters,
) {
    let Some(destination) = destination else {
        counters
            .packets_dropped
            .fetch_add(packets.count() as u64, Ordering::Relaxed);
        return;
    };
    for (index, packet) in packets.enumerate() {
        if index > 0 && index % PACING_BURST == 0 {
            std::thread::sleep(PACING_PAUSE);
        }
        let Ok(map) = packet.map_readable() else {
            continue;
        };
        if send_one(socket, &map, destination) {
            counters.packets_sent.fetch_add(1, Ordering::Relaxed);
            counters
                .bytes_sent
                .fetch_add(map.len() as u64, Ordering::Relaxed);
        } else {
            counters.packets_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends one datagram, waiting briefly while the (shared, non-blocking) socket's buffer is full.
fn send_one(socket: &UdpSocket, packet: &[u8], destination: SocketAddr) -> bool {
    for _ in 0..200 {
        match socket.send_to(packet, destination) {
            Ok(_) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(50))
            }
            Err(e) => {
                tracing::trace!(error = %e, "send failed");
                return false;
            }
        }
    }
    false
}

/// The `packet-size` of a single-buffer video sample's caps (see `moonlightvideopay`), read at
/// the first sample and kept in `cache`.
fn cached_packet_size(
    cache: &std::sync::atomic::AtomicUsize,
    sample: &gst::SampleRef,
) -> Option<usize> {
    let cached = cache.load(Ordering::Relaxed);
    if cached > 0 {
        return Some(cached);
    }
    let size = sample
        .caps()?
        .structure(0)?
        .get::<i32>("packet-size")
        .ok()?;
    let size = usize::try_from(size).ok().filter(|&size| size > 0)?;
    cache.store(size, Ordering::Relaxed);
    Some(size)
}

/// A pipeline's video encoder whose `bitrate` (kbit/s) may change while PLAYING (x264enc,
/// x265enc, nvh264enc, vah264enc and most others with a `bitrate` property say so).
pub struct BitrateKnob(gst::Element);

impl BitrateKnob {
    /// The pipeline's adjustable video encoder, if it has one.
    pub fn find(pipeline: &gst::Pipeline) -> Option<Self> {
        pipeline
            .iterate_recurse()
            .into_iter()
            .flatten()
            .find(|element| {
                let is_video_encoder = element.factory().is_some_and(|factory| {
                    let klass = factory.klass();
                    klass.contains("Encoder") && klass.contains("Video")
                });
                is_video_encoder
                    && element.find_property("bitrate").is_some_and(|spec| {
                        spec.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING)
                            && (spec.value_type() == u32::static_type()
                                || spec.value_type() == i32::static_type())
                    })
            })
            .map(Self)
    }

    /// The encoder's bitrate now, kbit/s.
    pub fn kbps(&self) -> Option<u32> {
        let value = self.0.property_value("bitrate");
        value
            .get::<u32>()
            .ok()
            .or_else(|| value.get::<i32>().ok().and_then(|v| u32::try_from(v).ok()))
    }

    /// Sets the encoder's bitrate, kbit/s.
    pub fn set_kbps(&self, kbps: u32) {
        if self.0.property_type("bitrate") == Some(u32::static_type()) {
            self.0.set_property("bitrate", kbps);
        } else {
            self.0
                .set_property("bitrate", i32::try_from(kbps).unwrap_or(i32::MAX));
        }
    }
}

/// Asks the encoder upstream of `element` for a key frame with parameter sets.
pub fn request_key_frame(element: &gst::Element) {
    let event = gst_video::UpstreamForceKeyUnitEvent::builder()
        .all_headers(true)
        .build();
    if !element.send_event(event) {
        tracing::debug!("the encoder did not take the key-frame request");
    }
}

/// Calls `on_error` (on a GStreamer thread) for every error the pipeline posts, with the
/// erroring element's factory name (when it has one) and a description; other messages are
/// dropped.
pub fn forward_errors(
    pipeline: &gst::Pipeline,
    kind: &'static str,
    on_error: impl Fn(Option<&str>, String) + Send + Sync + 'static,
) {
    if let Some(bus) = pipeline.bus() {
        bus.set_sync_handler(move |_, message| {
            if let gst::MessageView::Error(error) = message.view() {
                let source = error.src();
                let factory = source
                    .and_then(|s| s.downcast_ref::<gst::Element>())
                    .and_then(gst::prelude::ElementExt::factory)
                    .map(|f| f.name());
                let path = source
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default();
                on_error(
                    factory.as_deref(),
                    format!(
                        "{kind} pipeline error from {path}: {} ({:?})",
                        error.error(),
                        error.debug()
                    ),
                );
            }
            gst::BusSyncReply::Drop
        });
    }
}

/// Marks every buffer leaving `element` with the wall-clock time, so the payloader can report
/// the host's processing latency (capture to packetisation) to the client.
fn stamp_capture_time(element: &gst::Element) {
    let Some(pad) = element.static_pad("src") else {
        return;
    };
    pad.add_probe(gst::PadProbeType::BUFFER, |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            gst::ReferenceTimestampMeta::add(
                buffer.make_mut(),
                &CAPTURE_TIME_CAPS,
                gst::ClockTime::from_nseconds(now),
                None,
            );
        }
        gst::PadProbeReturn::Ok
    });
}

/// Counts the key frames that reach the video payloader (`StreamCounters::key_frames`): one
/// flag test per frame.
fn count_key_frames(pipeline: &gst::Pipeline, counters: &Arc<StreamCounters>) {
    let Some(pad) = pipeline
        .by_name(VIDEO_PAYLOADER)
        .and_then(|payloader| payloader.static_pad("sink"))
    else {
        return;
    };
    let counters = counters.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data
            && !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT)
        {
            counters.key_frames.fetch_add(1, Ordering::Relaxed);
        }
        gst::PadProbeReturn::Ok
    });
}
