//! A session's stream: what it offers in DESCRIBE, and the pipelines an ANNOUNCE starts (or a
//! browser's WebRTC pipeline), built from the configuration the session launched with.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hati_protocol::sdp::{DescribeBody, EncryptionFlags, HostFeatureFlags, StreamConfig};

use super::{Session, SessionState, lock};
use crate::bitrate::{BitrateController, Observation};
use crate::events::{EndReason, Event};
use crate::pipeline::{AudioRequest, PipelineError, VideoRequest, WebRtcRequest};
use crate::stream::media::{Endpoint, SharedInput, SharedMedium, StreamCounters};
use crate::stream::share::{self, TapMode};
use crate::stream::webrtc::{
    BrowserEvent, EVENT_QUEUE, SignallingHandle, StreamClosed, WebRtcStream,
};
use crate::stream::{MediaStream, StreamError};

/// The stream a session runs: Moonlight's RTP with FEC, or a browser's WebRTC.
pub(super) enum ActiveStream {
    /// Video and audio pipelines to a Moonlight client.
    Moonlight(MediaStream),
    /// One pipeline into webrtcbin, to a browser.
    Browser(WebRtcStream),
}

impl ActiveStream {
    /// Host processing latency (p50, p99) µs: Moonlight streams measure it.
    pub(super) fn host_latency_us(&self) -> Option<(u32, u32)> {
        match self {
            Self::Moonlight(stream) => stream.host_latency_us(),
            Self::Browser(_) => None,
        }
    }

    /// (video, audio) counters.
    pub(super) fn counters(&self) -> (Arc<StreamCounters>, Arc<StreamCounters>) {
        match self {
            Self::Moonlight(s) => (s.video_counters.clone(), s.audio_counters.clone()),
            Self::Browser(s) => (s.video_counters.clone(), s.audio_counters.clone()),
        }
    }

    /// The encoder's bitrate, kbit/s, when it can change while playing.
    pub(super) fn encoder_bitrate_kbps(&self) -> Option<u32> {
        match self {
            Self::Moonlight(stream) => stream.encoder_bitrate_kbps(),
            Self::Browser(stream) => stream.encoder_bitrate_kbps(),
        }
    }

    /// Sets the encoder's bitrate; false if it cannot change.
    fn set_encoder_bitrate_kbps(&self, kbps: u32) -> bool {
        match self {
            Self::Moonlight(stream) => stream.set_encoder_bitrate_kbps(kbps),
            Self::Browser(stream) => stream.set_encoder_bitrate_kbps(kbps),
        }
    }

    /// Asks the encoder for a key frame.
    pub(super) fn request_idr(&self) {
        match self {
            Self::Moonlight(stream) => stream.request_idr(),
            Self::Browser(stream) => stream.request_idr(),
        }
    }

    /// Stops the stream (blocking: on the media worker); a browser's signalling task hears
    /// `why` first.
    pub(super) fn close(self, why: StreamClosed) {
        match self {
            Self::Moonlight(stream) => drop(stream),
            Self::Browser(stream) => stream.close(why),
        }
    }
}

/// A started browser stream, for its signalling task.
#[derive(Debug)]
pub struct BrowserPlay {
    /// The stream's generation (see [`Session::pause_if_current`]).
    pub generation: u64,
    /// Takes the browser's answer and ICE candidates.
    pub handle: SignallingHandle,
    /// The stream's events, ending with [`BrowserEvent::Closed`].
    pub events: tokio::sync::mpsc::Receiver<BrowserEvent>,
}

/// What a browser asked for when it connected.
#[derive(Debug, Clone, Copy)]
pub struct BrowserStream {
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Start video bitrate, kbit/s (clamped to `[webrtc]` limits).
    pub bitrate_kbps: u32,
}

/// Why a session's pipelines could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The session is still launching or has ended.
    #[error("the session is {0:?}; it cannot stream now")]
    NotReady(SessionState),
    /// The pipeline templates could not be filled (config).
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// A Moonlight stream was announced for a browser's session (it has no Moonlight key).
    #[error("this session has no Moonlight key: it streams to a browser")]
    NoMoonlightKey,
    /// GStreamer refused a pipeline.
    #[error("{source} (app \"{app}\")")]
    Stream {
        /// GStreamer's error.
        source: StreamError,
        /// The app whose pipeline it was.
        app: String,
    },
}

impl Session {
    /// What this host offers the session's client in DESCRIBE.
    pub fn describe(&self) -> DescribeBody {
        let mut supported = EncryptionFlags::CONTROL_V2 | EncryptionFlags::AUDIO;
        if self.config.streaming.video_encryption {
            supported = supported | EncryptionFlags::VIDEO;
        }
        DescribeBody {
            feature_flags: HostFeatureFlags::PEN_TOUCH_EVENTS
                | HostFeatureFlags::CONTROLLER_TOUCH_EVENTS,
            encryption_supported: supported,
            encryption_requested: EncryptionFlags::CONTROL_V2,
            // No encoder Hati drives can invalidate reference frames, and Moonlight waits for
            // a real IDR otherwise (docs/performance.md, "Recovering from loss").
            ref_pic_invalidation: false,
            hevc: self.services.codecs.hevc.is_some(),
            av1: self.services.codecs.av1.is_some(),
        }
    }

    /// The client announced its stream: starts the pipelines (replacing running ones) on the
    /// session's media worker, and returns when they run. The targets stay: the client pings
    /// audio before it announces the stream.
    pub async fn announce(
        self: &Arc<Self>,
        config: StreamConfig,
        high_quality_audio: Option<bool>,
    ) -> Result<(), StartError> {
        self.start_on_media_worker(move |session| {
            session.replace_moonlight_stream(config, high_quality_audio)
        })
        .await
    }

    /// Runs a stream start on the session's media worker and waits for it, if the session
    /// may stream now.
    async fn start_on_media_worker<T: Send + 'static>(
        self: &Arc<Self>,
        start: impl FnOnce(Arc<Self>) -> Result<T, StartError> + Send + 'static,
    ) -> Result<T, StartError> {
        let state = self.state();
        if !state.may_become(SessionState::Streaming) {
            return Err(StartError::NotReady(state));
        }
        let session = self.clone();
        self.media
            .run(move || start(session))
            .await
            .unwrap_or(Err(StartError::NotReady(SessionState::Ended)))
    }

    /// On the media worker: stops the running stream before another takes its place (a
    /// browser's signalling task hears it was replaced).
    fn close_running_stream(&self) {
        self.video_tap.detach();
        self.audio_tap.detach();
        let previous = lock(&self.lifecycle).stream.take();
        if let Some(previous) = previous {
            previous.close(StreamClosed::Replaced);
        }
    }

    /// On the media worker: stops the running stream, starts the announced one and stores it
    /// with the state change to streaming, in one step under the lifecycle lock.
    fn replace_moonlight_stream(
        self: &Arc<Self>,
        config: StreamConfig,
        high_quality_audio: Option<bool>,
    ) -> Result<(), StartError> {
        self.close_running_stream();
        let stream = self
            .start_media(&config, high_quality_audio)
            .inspect_err(|error| self.publish_stream_failed(error))?;
        test_hooks::hold_new_stream(&self.span);
        let started = {
            let mut lifecycle = lock(&self.lifecycle);
            lifecycle.stream_config = Some(config);
            lifecycle.start_streaming(ActiveStream::Moonlight(stream))
        };
        // An end that raced the start wins: the new pipelines stop here, on this thread.
        let generation = started.map_err(|_| StartError::NotReady(self.state()))?;
        self.services.events.publish(Event::SessionStreaming {
            session: self.id,
            width: config.width,
            height: config.height,
            fps: config.fps,
            codec: format!("{:?}", config.codec),
            video_encrypted: config.video_encrypted(),
            audio_encrypted: config.audio_encrypted(),
        });
        if self.config.streaming.adaptive_bitrate {
            self.adapt_bitrate(generation, self.config.streaming.min_bitrate_kbps);
        }
        Ok(())
    }

    /// A browser connected (or came back): starts its WebRTC pipeline on the session's media
    /// worker, replacing any running stream, and hands its signalling task the stream's handle
    /// and events.
    pub async fn start_browser_stream(
        self: &Arc<Self>,
        request: BrowserStream,
    ) -> Result<BrowserPlay, StartError> {
        self.start_on_media_worker(move |session| session.replace_browser_stream(request))
            .await
    }

    /// On the media worker: stops the running stream and starts the browser's.
    fn replace_browser_stream(
        self: &Arc<Self>,
        request: BrowserStream,
    ) -> Result<BrowserPlay, StartError> {
        self.close_running_stream();
        let limits = &self.config.webrtc;
        let bitrate_kbps = request.bitrate_kbps.clamp(
            limits.min_bitrate_kbps,
            limits.max_bitrate_kbps.max(limits.min_bitrate_kbps),
        );
        let description = crate::pipeline::webrtc_description(
            &self.config,
            &self.app,
            &self.services.codecs,
            &WebRtcRequest {
                session_id: self.id,
                width: request.width,
                height: request.height,
                fps: request.fps,
                bitrate_kbps,
                desktop: self.desktop().is_some(),
                sink: self.audio_sink(),
            },
        )
        .map_err(StartError::from)
        .inspect_err(|error| self.publish_stream_failed(error))?;
        tracing::info!(
            parent: &self.span,
            width = request.width,
            height = request.height,
            fps = request.fps,
            bitrate_kbps,
            "starting browser stream"
        );
        tracing::debug!(parent: &self.span, %description, "pipeline");
        let (events, receiver) = tokio::sync::mpsc::channel(EVENT_QUEUE);
        let (stream, handle) = WebRtcStream::start(
            &description,
            self.desktop(),
            request.fps,
            &self.config.webrtc,
            events,
        )
        .map_err(|source| StartError::Stream {
            source,
            app: self.app.title.clone(),
        })
        .inspect_err(|error| self.publish_stream_failed(error))?;
        stream.set_name(&format!("hati-webrtc-{}", self.id));
        let started = lock(&self.lifecycle).start_streaming(ActiveStream::Browser(stream));
        let generation = started.map_err(|_| StartError::NotReady(self.state()))?;
        self.services.events.publish(Event::SessionStreaming {
            session: self.id,
            width: request.width,
            height: request.height,
            fps: request.fps,
            codec: "H264".to_owned(),
            // DTLS-SRTP: WebRTC media is always encrypted.
            video_encrypted: true,
            audio_encrypted: true,
        });
        if self.config.streaming.adaptive_bitrate {
            self.adapt_bitrate(generation, self.config.webrtc.min_bitrate_kbps);
        }
        Ok(BrowserPlay {
            generation,
            handle,
            events: receiver,
        })
    }

    /// The generation of the stream now running (bumped by every start).
    pub fn stream_generation(&self) -> u64 {
        lock(&self.lifecycle).generation
    }

    fn publish_stream_failed(&self, error: &StartError) {
        self.services.events.publish(Event::StreamFailed {
            session: self.id,
            message: error.to_string(),
        });
    }

    /// What a Moonlight stream's pipelines call (on a GStreamer thread) when they fail.
    fn end_on_pipeline_error(self: &Arc<Self>) -> impl Fn(String) + Send + Sync + Clone + 'static {
        // The pipelines live inside the session: a weak reference avoids a cycle.
        let session = Arc::downgrade(self);
        move |message: String| {
            if let Some(session) = session.upgrade() {
                session.stream_failed(message);
            }
        }
    }

    /// The running stream failed on the host: says so on the bus and ends the session.
    pub fn stream_failed(&self, message: String) {
        tracing::error!(parent: &self.span, %message, "stream failed; ending the session");
        self.services.events.publish(Event::StreamFailed {
            session: self.id,
            message,
        });
        self.request_end(EndReason::PipelineError);
    }

    /// Runs adaptive bitrate (see `bitrate`) for the stream of `generation` until it is
    /// replaced or stopped.
    fn adapt_bitrate(self: &Arc<Self>, generation: u64, min_kbps: u32) {
        let Some(max_kbps) = self.encoder_bitrate_kbps() else {
            tracing::info!(parent: &self.span, "the encoder cannot change its bitrate while streaming; adaptive bitrate is off for this stream");
            return;
        };
        let session = Arc::downgrade(self);
        self.runtime.spawn(async move {
            let mut controller: Option<BitrateController> = None;
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(session) = session.upgrade() else {
                    return;
                };
                if session.stream_generation() != generation || !session.is_streaming() {
                    return;
                }
                let Some(observation) = session.bitrate_observation() else {
                    return;
                };
                let Some(controller) = controller.as_mut() else {
                    controller = Some(BitrateController::new(max_kbps, min_kbps, observation));
                    continue;
                };
                let Some((kbps, reason)) = controller.tick(observation) else {
                    continue;
                };
                let applied = lock(&session.lifecycle)
                    .stream
                    .as_ref()
                    .is_some_and(|stream| stream.set_encoder_bitrate_kbps(kbps));
                if !applied {
                    return;
                }
                tracing::info!(parent: &session.span, kbps, ?reason, "encoder bitrate changed");
                session.services.events.publish(Event::BitrateChanged {
                    session: session.id,
                    kbps,
                    reason,
                });
            }
        });
    }

    /// What adaptive bitrate reads once a second: the host's sent packets and the client's
    /// reports.
    fn bitrate_observation(&self) -> Option<Observation> {
        let lifecycle = lock(&self.lifecycle);
        match lifecycle.stream.as_ref()? {
            ActiveStream::Moonlight(stream) => {
                let video = &stream.video_counters;
                Some(Observation {
                    packets_sent: video.packets_sent.load(Ordering::Relaxed),
                    packets_missing: self.metrics.client_packets_missing.load(Ordering::Relaxed),
                    frames_lost: self.metrics.client_frames_lost.load(Ordering::Relaxed),
                    idr_requests: self.metrics.idr_requests.load(Ordering::Relaxed),
                    frames_backlogged: video.frames_backlogged.load(Ordering::Relaxed),
                })
            }
            ActiveStream::Browser(stream) => {
                // The reply lands within milliseconds; this reads the previous second's.
                stream.refresh_feedback();
                let feedback = &stream.feedback;
                Some(Observation {
                    packets_sent: stream.video_counters.packets_sent.load(Ordering::Relaxed),
                    packets_missing: feedback.packets_lost.load(Ordering::Relaxed),
                    frames_lost: 0,
                    idr_requests: feedback.key_frame_requests.load(Ordering::Relaxed),
                    frames_backlogged: 0,
                })
            }
        }
    }

    fn start_media(
        self: &Arc<Self>,
        config: &StreamConfig,
        high_quality_audio: Option<bool>,
    ) -> Result<MediaStream, StartError> {
        let key = self
            .keys
            .as_ref()
            .map(super::SessionKeys::key)
            .ok_or(StartError::NoMoonlightKey)?;
        let layout = config.opus_layout(high_quality_audio);
        let video_mode = TapMode::Video {
            width: config.width,
            height: config.height,
            fps: config.fps,
            codec: config.codec,
        };
        let audio_mode = TapMode::Audio {
            layout: *layout,
            packet_duration_ms: config.audio.packet_duration_ms,
        };
        // A lobby guest asking for what the owner's stream is now shares its encoders.
        let owner = self.lobby_owner();
        let shared_video = owner
            .as_ref()
            .and_then(|owner| owner.video_tap.caps_for(video_mode));
        let shared_audio = owner
            .as_ref()
            .and_then(|owner| owner.audio_tap.caps_for(audio_mode));
        let video_request = VideoRequest {
            session_id: self.id,
            stream: config,
            encryption_key: config.video_encrypted().then_some(key.rikey),
            desktop: self.desktop().is_some(),
            shared: shared_video.is_some(),
        };
        let video = crate::pipeline::video_description(
            &self.config,
            &self.app,
            &self.services.codecs,
            &video_request,
        )?;
        let audio_request = AudioRequest {
            session_id: self.id,
            layout,
            packet_duration_ms: config.audio.packet_duration_ms,
            sink: self.audio_sink(),
            encryption: config.audio_encrypted().then_some((key.rikey, key.rikeyid)),
            shared: shared_audio.is_some(),
        };
        let audio = crate::pipeline::audio_description(&self.config, &self.app, &audio_request)?;
        tracing::info!(
            parent: &self.span,
            width = config.width,
            height = config.height,
            fps = config.fps,
            codec = ?config.codec,
            packet_size = config.packet_size,
            audio_channels = layout.channels,
            video_encrypted = config.video_encrypted(),
            audio_encrypted = config.audio_encrypted(),
            "starting stream"
        );
        tracing::debug!(parent: &self.span, %video, %audio, "pipelines");
        let on_error = self.end_on_pipeline_error();
        let stream = MediaStream::start(
            self.id,
            Endpoint {
                description: &video,
                socket: self.services.media.video.clone(),
                target: self.video_target.clone(),
                pacing: Some((self.config.streaming.pacing_multiple, config.fps)),
            },
            Endpoint {
                description: &audio,
                socket: self.services.media.audio.clone(),
                target: self.audio_target.clone(),
                pacing: None,
            },
            self.desktop(),
            self.shared_input(
                owner,
                shared_video.map(|caps| (video_mode, caps)),
                shared_audio.map(|caps| (audio_mode, caps)),
            ),
            on_error,
        )
        .map_err(|source| StartError::Stream {
            source,
            app: self.app.title.clone(),
        })?;
        // What this stream encodes itself, guests of its lobby may share.
        if !stream.shares_video()
            && let Some(payloader) = stream.video_payloader()
        {
            self.video_tap.attach(&payloader, video_mode, None);
        }
        if !stream.shares_audio()
            && let Some(payloader) = stream.audio_payloader()
        {
            self.audio_tap
                .attach(&payloader, audio_mode, Some(share::opus_caps(layout)));
        }
        Ok(stream)
    }

    /// The owner's session, when this is a lobby guest's.
    fn lobby_owner(&self) -> Option<Arc<Session>> {
        self.manager.upgrade()?.by_id(self.guest()?.owner)
    }

    /// What a guest's new stream takes from the owner's encoders (`video`, `audio`: the owner
    /// runs them in the guest's mode, with these output formats).
    fn shared_input(
        &self,
        owner: Option<Arc<Session>>,
        video: Option<(TapMode, gst::Caps)>,
        audio: Option<(TapMode, gst::Caps)>,
    ) -> SharedInput {
        let Some(owner) = owner.filter(|_| video.is_some() || audio.is_some()) else {
            return SharedInput::default();
        };
        let shares_video = video.is_some();
        tracing::info!(parent: &self.span, owner = owner.id, video = shares_video, audio = audio.is_some(), "sharing the lobby owner's encoders (same mode)");
        SharedInput {
            video: video.map(|(mode, caps)| SharedMedium {
                tap: owner.video_tap.clone(),
                mode,
                caps,
            }),
            audio: audio.map(|(mode, caps)| SharedMedium {
                tap: owner.audio_tap.clone(),
                mode,
                caps,
            }),
            session: self.id,
            request_key_frame: shares_video
                .then(|| -> Box<dyn Fn() + Send + Sync> { Box::new(move || owner.request_idr()) }),
        }
    }
}

/// Hooks that let a test widen a race window; compiled into debug builds only.
mod test_hooks {
    /// Debug builds: with `HATI_TEST_HOLD_NEW_STREAM_MS` set, a new Moonlight stream waits that
    /// long between its pipelines starting and being stored in the session, so a test can end
    /// the session inside that window (`tests/e2e/test_session_core.py`).
    pub(super) fn hold_new_stream(span: &tracing::Span) {
        #[cfg(debug_assertions)]
        if let Some(ms) = std::env::var("HATI_TEST_HOLD_NEW_STREAM_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            tracing::info!(parent: span, ms, "test hook: holding the new stream before it is stored");
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        #[cfg(not(debug_assertions))]
        let _ = span;
    }
}
