//! A session's stream: what it offers in DESCRIBE, and the pipelines an ANNOUNCE starts, built
//! from the configuration the session launched with.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hati_protocol::sdp::{DescribeBody, EncryptionFlags, HostFeatureFlags, StreamConfig};

use super::bitrate::{BitrateController, Observation};
use super::{Session, SessionState, lock};
use crate::events::{EndReason, Event};
use crate::pipeline::{AudioRequest, PipelineError, VideoRequest};
use crate::stream::media::Endpoint;
use crate::stream::{MediaStream, StreamError};

/// Why a session's pipelines could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The session is still launching or has ended.
    #[error("the session is {0:?}; it cannot stream now")]
    NotReady(SessionState),
    /// The pipeline templates could not be filled (config).
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
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
            ref_pic_invalidation: false,
            hevc: self.services.codecs.hevc.is_some(),
            av1: self.services.codecs.av1.is_some(),
        }
    }

    /// The client announced its stream: starts the pipelines (replacing running ones). The
    /// targets stay: the client pings audio before it announces the stream.
    pub fn announce(
        self: &Arc<Self>,
        config: StreamConfig,
        high_quality_audio: Option<bool>,
    ) -> Result<(), StartError> {
        let state = self.state();
        if !state.may_become(SessionState::Streaming) {
            return Err(StartError::NotReady(state));
        }
        // Stop the old pipelines outside the lock (stopping takes a while).
        let previous = lock(&self.stream).take();
        drop(previous);
        let stream = self
            .start_media(&config, high_quality_audio)
            .inspect_err(|error| {
                self.services.events.publish(Event::StreamFailed {
                    session: self.id,
                    message: error.to_string(),
                });
            })?;
        // An end that raced the start wins: the new pipelines stop here.
        if !self.transition(SessionState::Streaming) {
            return Err(StartError::NotReady(self.state()));
        }
        self.services.events.publish(Event::SessionStreaming {
            session: self.id,
            width: config.width,
            height: config.height,
            fps: config.fps,
            codec: format!("{:?}", config.codec),
            video_encrypted: config.video_encrypted(),
            audio_encrypted: config.audio_encrypted(),
        });
        *lock(&self.stream_config) = Some(config);
        *lock(&self.stream) = Some(stream);
        let generation = self.stream_generation.fetch_add(1, Ordering::Relaxed) + 1;
        if self.config.streaming.adaptive_bitrate {
            self.adapt_bitrate(generation);
        }
        Ok(())
    }

    /// Runs adaptive bitrate (see `bitrate`) for the stream of `generation` until it is
    /// replaced or stopped.
    fn adapt_bitrate(self: &Arc<Self>, generation: u64) {
        let Some(max_kbps) = self.encoder_bitrate_kbps() else {
            tracing::info!(parent: &self.span, "the encoder cannot change its bitrate while streaming; adaptive bitrate is off for this stream");
            return;
        };
        let session = Arc::downgrade(self);
        let min_kbps = self.config.streaming.min_bitrate_kbps;
        self.runtime.spawn(async move {
            let mut controller: Option<BitrateController> = None;
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(session) = session.upgrade() else {
                    return;
                };
                if session.stream_generation.load(Ordering::Relaxed) != generation
                    || !session.is_streaming()
                {
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
                let applied = lock(&session.stream)
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
        let (video, _) = self.stream_counters()?;
        Some(Observation {
            packets_sent: video.packets_sent.load(Ordering::Relaxed),
            packets_missing: self.metrics.client_packets_missing.load(Ordering::Relaxed),
            frames_lost: self.metrics.client_frames_lost.load(Ordering::Relaxed),
            idr_requests: self.metrics.idr_requests.load(Ordering::Relaxed),
            frames_backlogged: video.frames_backlogged.load(Ordering::Relaxed),
        })
    }

    fn start_media(
        self: &Arc<Self>,
        config: &StreamConfig,
        high_quality_audio: Option<bool>,
    ) -> Result<MediaStream, StartError> {
        let launch = self.launch_params();
        let video_request = VideoRequest {
            session_id: self.id,
            stream: config,
            encryption_key: config.video_encrypted().then_some(launch.rikey),
            desktop: self.desktop().is_some(),
        };
        let video = crate::pipeline::video_description(
            &self.config,
            &self.app,
            &self.services.codecs,
            &video_request,
        )?;
        let layout = config.opus_layout(high_quality_audio);
        let audio_request = AudioRequest {
            session_id: self.id,
            layout,
            packet_duration_ms: config.audio.packet_duration_ms,
            sink: self.audio_sink(),
            encryption: config
                .audio_encrypted()
                .then_some((launch.rikey, launch.rikeyid)),
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
        // The pipelines live inside the session: a weak reference avoids a cycle.
        let session = Arc::downgrade(self);
        let on_error = move |message: String| {
            let Some(session) = session.upgrade() else {
                return;
            };
            tracing::error!(parent: &session.span, %message, "stream failed; ending the session");
            session.services.events.publish(Event::StreamFailed {
                session: session.id,
                message,
            });
            session.request_end(EndReason::PipelineError);
        };
        MediaStream::start(
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
            on_error,
        )
        .map_err(|source| StartError::Stream {
            source,
            app: self.app.title.clone(),
        })
    }
}
