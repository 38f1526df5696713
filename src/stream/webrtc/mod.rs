//! A browser session's running stream: one pipeline whose video and Opus audio end in
//! `webrtcbin`, the offer it makes, the browser's answer and candidates, the "input" data
//! channel, and the transport feedback (RTCP receiver reports) that congestion control reads.
//!
//! Like webrtcsink's `Signallable` in gst-plugins-rs, the stream talks to its signalling task
//! through two things only: a [`SignallingHandle`] the task drives (the browser's answer and
//! ICE candidates go straight to webrtcbin), and one channel of [`BrowserEvent`]s the task
//! reads (the host's offer and candidates, input, the browser leaving, a failure, and the
//! stream closing, with why).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gst_webrtc::{WebRTCDataChannel, WebRTCRTPTransceiverDirection};
use hati_protocol::browser::HostSignal;
use tokio::sync::mpsc;

mod events;
mod transport;

pub use self::events::{AnswerError, BrowserEvent, EVENT_QUEUE, SignallingHandle, StreamClosed};
use self::events::{Events, connect_offer};
pub use self::transport::TransportFeedback;
use self::transport::{configure_ice, read_feedback};
use super::StreamError;
use super::media::{BitrateKnob, StreamCounters, forward_errors, request_key_frame};
use crate::config::WebRtcConfig;
use crate::pipeline::{AUDIO_RTP, VIDEO_RTP, WEBRTC_BIN};

/// A browser session's pipeline; dropping it stops it.
pub struct WebRtcStream {
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
    video_payloader: gst::Element,
    bitrate_knob: Option<BitrateKnob>,
    channel: Arc<Mutex<Option<WebRTCDataChannel>>>,
    events: Events,
    /// Video counters (frames into the payloader, RTP packets out of it).
    pub video_counters: Arc<StreamCounters>,
    /// Audio counters (RTP packets).
    pub audio_counters: Arc<StreamCounters>,
    /// The browser's reports.
    pub feedback: Arc<TransportFeedback>,
}

impl WebRtcStream {
    /// Builds and starts the pipeline of `description` (see `pipeline::webrtc_description`),
    /// its desktop source (if any) on `desktop` producing `fps` frames a second. Its offer and
    /// ICE candidates, the page's input, the browser leaving and a pipeline failure go to
    /// `events`, in order; the returned handle takes the browser's answer and candidates.
    pub fn start(
        description: &str,
        desktop: Option<&hati_compositor::CompositorHandle>,
        fps: u32,
        network: &WebRtcConfig,
        events: mpsc::Sender<BrowserEvent>,
    ) -> Result<(Self, SignallingHandle), StreamError> {
        let events = Events {
            queue: events,
            dropped: Arc::default(),
        };
        let parse_error = |message: String| StreamError::Parse {
            kind: "webrtc",
            message,
        };
        let pipeline = gst::parse::launch(description)
            .map_err(|e| parse_error(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| parse_error("the description is not a pipeline".into()))?;
        super::register_pipeline(&pipeline);
        let webrtc = pipeline
            .by_name(WEBRTC_BIN)
            .ok_or_else(|| parse_error(format!("no webrtcbin named {WEBRTC_BIN}")))?;
        let video_payloader = pipeline
            .by_name(VIDEO_RTP)
            .ok_or_else(|| parse_error(format!("no element named {VIDEO_RTP}")))?;
        let audio_payloader = pipeline
            .by_name(AUDIO_RTP)
            .ok_or_else(|| parse_error(format!("no element named {AUDIO_RTP}")))?;
        let on_error = events.clone();
        forward_errors(&pipeline, "webrtc", move |factory, message| {
            // The browser closing its peer connection (a tab closed, Back, a page put in the
            // back-forward cache) fails the data channel's SCTP association: that is the
            // player leaving, not a broken stream.
            if factory.is_some_and(is_peer_transport) {
                tracing::debug!(%message, "the browser closed its peer connection");
                on_error.send(BrowserEvent::PeerGone);
            } else {
                on_error.send(BrowserEvent::Failed(message));
            }
        });
        configure_ice(&webrtc, network);
        // The host only sends. Video retransmits what the browser NACKs: without FEC, one
        // lost packet would otherwise cost a key frame.
        for pad in webrtc.sink_pads() {
            let video = is_video_pad(&pad);
            // Video and audio in media streams of their own: a browser lip-syncs the tracks of
            // one stream by holding video back to the audio's jitter buffer (measured in
            // Chromium: 58 ms per frame instead of a few), and a game wants the picture now.
            if pad.has_property("msid") {
                pad.set_property("msid", if video { "hati-video" } else { "hati-audio" });
            }
            if pad.has_property("transceiver") {
                let transceiver = pad.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
                transceiver.set_property("direction", WebRTCRTPTransceiverDirection::Sendonly);
                // Not for audio: Chromium refuses an audio section with a retransmission SSRC.
                if video && transceiver.has_property("do-nack") {
                    transceiver.set_property("do-nack", true);
                }
            }
        }
        if let (Some(desktop), Some(source)) =
            (desktop, pipeline.by_name(crate::pipeline::DESKTOP_SOURCE))
            && let Ok(source) =
                source.downcast::<hati_compositor::waylanddisplaysrc::WaylandDisplaySrc>()
        {
            source.set_compositor(desktop.clone());
            // A lobby guest's browser (or one resuming at another rate) may ask for another
            // rate than the desktop makes, and the caps after the source fix the rate.
            if fps != desktop.config().fps {
                source.set_property("output-fps", fps);
            }
        }

        let video_counters = Arc::new(StreamCounters::default());
        let audio_counters = Arc::new(StreamCounters::default());
        count_frames(&video_payloader, &video_counters);
        count_packets(&video_payloader, &video_counters);
        count_packets(&audio_payloader, &audio_counters);

        connect_offer(&webrtc, events.clone());
        let signals = events.clone();
        webrtc.connect("on-ice-candidate", false, move |values| {
            let mline = values.get(1).and_then(|v| v.get::<u32>().ok());
            let candidate = values.get(2).and_then(|v| v.get::<String>().ok());
            if let (Some(sdp_mline_index), Some(candidate)) = (mline, candidate) {
                signals.send(BrowserEvent::Signal(HostSignal::Ice {
                    candidate,
                    sdp_mline_index,
                }));
            }
            None
        });

        let bitrate_knob = BitrateKnob::find(&pipeline);
        let stream = Self {
            pipeline,
            webrtc,
            video_payloader,
            bitrate_knob,
            channel: Arc::default(),
            events: events.clone(),
            video_counters,
            audio_counters,
            feedback: Arc::default(),
        };
        stream
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| StreamError::Start {
                kind: "webrtc",
                message: e.to_string(),
            })?;
        // Created once playing, before negotiation runs (it is asynchronous), so the offer
        // carries the data channel.
        let channel = stream
            .webrtc
            .emit_by_name::<Option<WebRTCDataChannel>>(
                "create-data-channel",
                &[&"input", &None::<gst::Structure>],
            )
            .ok_or_else(|| StreamError::Start {
                kind: "webrtc",
                message: "webrtcbin refused the input data channel".into(),
            })?;
        let input = events;
        channel.connect("on-message-string", false, move |values| {
            if let Some(text) = values.get(1).and_then(|v| v.get::<Option<String>>().ok()) {
                input.send(BrowserEvent::Input(text.unwrap_or_default()));
            }
            None
        });
        *lock(&stream.channel) = Some(channel);
        let handle = SignallingHandle {
            webrtc: stream.webrtc.downgrade(),
        };
        Ok((stream, handle))
    }

    /// Tells the signalling task why the stream goes away (the last event it gets), then drops
    /// it (on the caller's thread: call from the session's media worker).
    pub fn close(self, why: StreamClosed) {
        self.events.send(BrowserEvent::Closed(why));
        drop(self);
    }

    /// Names the pipeline (`hati-webrtc-<session>`), as `GET /pipelines` shows it.
    pub fn set_name(&self, name: &str) {
        self.pipeline.set_property("name", name);
    }

    /// Sends a text message to the page over the input data channel (rumble).
    pub fn send_to_page(&self, text: &str) {
        if let Some(channel) = lock(&self.channel).as_ref() {
            channel.emit_by_name::<()>("send-string", &[&Some(text)]);
        }
    }

    /// The encoder's bitrate in kbit/s, when it can change while playing.
    pub fn encoder_bitrate_kbps(&self) -> Option<u32> {
        self.bitrate_knob.as_ref()?.kbps()
    }

    /// Sets the encoder's bitrate (kbit/s) while playing; false if it cannot change.
    pub fn set_encoder_bitrate_kbps(&self, kbps: u32) -> bool {
        match self.bitrate_knob.as_ref() {
            Some(knob) => {
                knob.set_kbps(kbps);
                true
            }
            None => false,
        }
    }

    /// Asks the encoder for a key frame.
    pub fn request_idr(&self) {
        request_key_frame(&self.video_payloader);
    }

    /// Asks webrtcbin for its statistics; when they arrive (on a GStreamer thread),
    /// [`Self::feedback`] is updated from the browser's receiver reports.
    pub fn refresh_feedback(&self) {
        let feedback = self.feedback.clone();
        // The payloader picked its SSRC at random; the browser's reports about video carry it.
        let Ok(video_ssrc) = self
            .video_payloader
            .property::<gst::Structure>("stats")
            .get::<u32>("ssrc")
        else {
            return;
        };
        let promise = gst::Promise::with_change_func(move |reply| {
            if let Ok(Some(stats)) = reply {
                read_feedback(stats, video_ssrc, &feedback);
            }
        });
        self.webrtc
            .emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, &promise]);
    }
}

impl Drop for WebRtcStream {
    fn drop(&mut self) {
        // Errors that elements post while being torn down (the data channel's SCTP encoder
        // once the browser closed its end) are not the stream's failure.
        if let Some(bus) = self.pipeline.bus() {
            bus.unset_sync_handler();
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Whether an element of this factory is the data channel's SCTP transport, which fails when
/// the browser closes its end.
fn is_peer_transport(factory: &str) -> bool {
    matches!(factory, "sctpenc" | "sctpdec")
}

/// Whether the RTP linked to this webrtcbin sink pad is video (from the caps upstream).
fn is_video_pad(pad: &gst::Pad) -> bool {
    pad.peer()
        .map(|peer| peer.query_caps(None))
        .and_then(|caps| {
            caps.structure(0)
                .and_then(|s| s.get::<String>("media").ok())
        })
        .is_some_and(|media| media == "video")
}

/// Counts buffers entering `payloader` as frames (one access unit each).
fn count_frames(payloader: &gst::Element, counters: &Arc<StreamCounters>) {
    let Some(pad) = payloader.static_pad("sink") else {
        return;
    };
    let counters = counters.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        counters.samples.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
}

/// Counts RTP packets and bytes leaving `payloader` (buffers or lists).
fn count_packets(payloader: &gst::Element, counters: &Arc<StreamCounters>) {
    let Some(pad) = payloader.static_pad("src") else {
        return;
    };
    let counters = counters.clone();
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |_, info| {
            let (packets, bytes) = match info.data.as_ref() {
                Some(gst::PadProbeData::Buffer(buffer)) => (1, buffer.size()),
                Some(gst::PadProbeData::BufferList(list)) => {
                    (list.len(), list.iter().map(|b| b.size()).sum())
                }
                _ => (0, 0),
            };
            counters
                .packets_sent
                .fetch_add(packets as u64, Ordering::Relaxed);
            counters
                .bytes_sent
                .fetch_add(bytes as u64, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        },
    );
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
