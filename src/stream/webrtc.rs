//! A browser session's running stream: one pipeline whose video and Opus audio end in
//! `webrtcbin`, the offer it makes, the browser's answer and candidates, the "input" data
//! channel, and the transport feedback (RTCP receiver reports) that congestion control reads.
//!
//! Like webrtcsink's `Signallable` in gst-plugins-rs, the stream talks to its signalling task
//! through two things only: a [`SignallingHandle`] the task drives (the browser's answer and
//! ICE candidates go straight to webrtcbin), and one channel of [`BrowserEvent`]s the task
//! reads (the host's offer and candidates, input, the browser leaving, a failure, and the
//! stream closing, with why).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gst_webrtc::{WebRTCDataChannel, WebRTCRTPTransceiverDirection, WebRTCSDPType};
use hati_protocol::browser::HostSignal;
use tokio::sync::mpsc;

use super::StreamError;
use super::media::{BitrateKnob, StreamCounters, forward_errors, request_key_frame};
use crate::config::WebRtcConfig;
use crate::pipeline::{AUDIO_RTP, VIDEO_RTP, WEBRTC_BIN};

/// What the browser's RTCP said about the video, as cumulative counters.
#[derive(Debug, Default)]
pub struct TransportFeedback {
    /// Video packets the browser reported lost (receiver reports).
    pub packets_lost: AtomicU64,
    /// Key-frame requests (PLI and FIR) from the browser.
    pub key_frame_requests: AtomicU64,
    /// Round-trip time from the last report, µs.
    pub round_trip_us: AtomicU64,
    /// Video packets sent, as webrtcbin counted them.
    pub packets_sent: AtomicU64,
}

/// Events a browser stream queues for its signalling task before that task falls behind
/// this far; later ones are dropped and counted (a paired page flooding its data channel must
/// not grow the host's memory).
pub const EVENT_QUEUE: usize = 4096;

/// What a browser stream tells its signalling task, in the order it happened.
#[derive(Debug)]
pub enum BrowserEvent {
    /// The host's offer or one of its ICE candidates, for the page.
    Signal(HostSignal),
    /// A message from the page on the input data channel.
    Input(String),
    /// The browser closed its peer connection (its data channel's SCTP association failed: a
    /// tab closed, Back, a page kept in the back-forward cache).
    PeerGone,
    /// The pipeline failed.
    Failed(String),
    /// The session took the stream away; nothing else follows.
    Closed(StreamClosed),
}

/// Why a session took a browser stream away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamClosed {
    /// The session ended.
    Ended(crate::events::EndReason),
    /// Another connection (a tab, a browser, a Moonlight client) resumed the session.
    Replaced,
    /// The session paused (its player left).
    Paused,
}

/// The sending side of a stream's event channel, shared by its GStreamer callbacks.
#[derive(Debug, Clone)]
struct Events {
    queue: mpsc::Sender<BrowserEvent>,
    dropped: Arc<AtomicU64>,
}

impl Events {
    /// Queues `event` without waiting (callbacks run on GStreamer threads); a full queue drops
    /// it, and a closed one (the signalling task is gone) means nobody listens any more.
    fn send(&self, event: BrowserEvent) {
        if let Err(mpsc::error::TrySendError::Full(event)) = self.queue.try_send(event) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // 1, 2, 4, 8, …: a flood cannot flood the log.
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    ?event,
                    "the browser's signalling task fell behind; event dropped"
                );
            }
        }
    }
}

/// The signalling task's handle on a running browser stream. It holds webrtcbin weakly: once
/// the stream is gone its calls do nothing.
#[derive(Debug, Clone)]
pub struct SignallingHandle {
    webrtc: gst::glib::WeakRef<gst::Element>,
}

impl SignallingHandle {
    /// Applies the browser's answer.
    pub fn set_answer(&self, sdp: &str) -> Result<(), AnswerError> {
        let webrtc = self.webrtc.upgrade().ok_or(AnswerError::NoBrowserStream)?;
        let mut message = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes())
            .map_err(|_| AnswerError::InvalidSdp)?;
        remove_mdns_candidates(&mut message);
        let answer = gst_webrtc::WebRTCSessionDescription::new(WebRTCSDPType::Answer, message);
        webrtc.emit_by_name::<()>("set-remote-description", &[&answer, &None::<gst::Promise>]);
        Ok(())
    }

    /// Adds one of the browser's ICE candidates (an empty one ends its candidates). Candidates
    /// whose address is an mDNS name are dropped (see [`is_mdns_candidate`]).
    pub fn add_ice_candidate(&self, sdp_mline_index: u32, candidate: &str) {
        if candidate.is_empty() {
            return;
        }
        if is_mdns_candidate(candidate) {
            tracing::debug!(%candidate, "ignoring the browser's mDNS candidate");
            return;
        }
        if let Some(webrtc) = self.webrtc.upgrade() {
            webrtc.emit_by_name::<()>("add-ice-candidate", &[&sdp_mline_index, &candidate]);
        }
    }
}

/// Why a browser's answer was not applied.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// The answer does not parse as SDP.
    #[error("the answer is not valid SDP")]
    InvalidSdp,
    /// The stream is gone (the session ended, paused or was resumed elsewhere).
    #[error("no browser stream is running")]
    NoBrowserStream,
}

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
    /// Builds and starts the pipeline of `description` (see `pipeline::webrtc_description`).
    /// Its offer and ICE candidates, the page's input, the browser leaving and a pipeline
    /// failure go to `events`, in order; the returned handle takes the browser's answer and
    /// candidates.
    pub fn start(
        description: &str,
        desktop: Option<&hati_compositor::CompositorHandle>,
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

/// Whether an ICE candidate's address is an mDNS name (`<uuid>.local`), as Chromium and Firefox
/// send for their host addresses.
///
/// webrtcbin (GStreamer 1.22) resolves such a name with a `GTask` that holds its ICE agent and
/// delivers the result on GLib's global default main context, which nothing in Hati runs: the
/// task never completes, so the agent outlives the stream with its sockets, its thread and its
/// UPnP thread, and its libnice callbacks may then touch freed objects. The name could never be
/// used either, so it is dropped: the host learns the browser's address from its connectivity
/// checks (a peer-reflexive candidate), or from its server-reflexive candidates behind a NAT.
fn is_mdns_candidate(candidate: &str) -> bool {
    // `[a=]candidate:<foundation> <component> <transport> <priority> <address> <port> typ …`
    // Bytes, not a `str` slice: the browser's text need not split at a character boundary.
    const SUFFIX: &[u8] = b".local";
    candidate.split_whitespace().nth(4).is_some_and(|address| {
        let address = address.trim_end_matches('.').as_bytes();
        address.len() > SUFFIX.len()
            && address[address.len() - SUFFIX.len()..].eq_ignore_ascii_case(SUFFIX)
    })
}

/// Removes the `a=candidate` lines with an mDNS address from every media section (see
/// [`is_mdns_candidate`]).
fn remove_mdns_candidates(message: &mut gst_sdp::SDPMessageRef) {
    for media in message.medias_mut() {
        let mut index = 0;
        while let Some(attribute) = media.attribute(index) {
            let mdns = attribute.key() == "candidate"
                && attribute
                    .value()
                    .is_some_and(|value| is_mdns_candidate(&format!("candidate:{value}")));
            if mdns && media.remove_attribute(index).is_ok() {
                continue;
            }
            index += 1;
        }
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

/// Sets webrtcbin's STUN server and adds its TURN servers from the config's `ice_servers`
/// (browser-style URLs: `stun:host:port`, `turn:host:port?transport=udp`), and confines its
/// sockets to `min_port..=max_port` when set.
fn configure_ice(webrtc: &gst::Element, network: &WebRtcConfig) {
    if network.min_port != 0 {
        let agent = webrtc.property::<gst::glib::Object>("ice-agent");
        // The maximum first: the agent refuses a minimum above its current maximum.
        agent.set_property("max-rtp-port", u32::from(network.max_port));
        agent.set_property("min-rtp-port", u32::from(network.min_port));
    }
    for server in &network.ice_servers {
        for url in &server.urls {
            match gst_ice_url(
                url,
                server.username.as_deref(),
                server.credential.as_deref(),
            ) {
                Some(IceUrl::Stun(url)) => webrtc.set_property("stun-server", url),
                Some(IceUrl::Turn(url)) => {
                    if !webrtc.emit_by_name::<bool>("add-turn-server", &[&url]) {
                        tracing::warn!(%url, "webrtcbin refused the TURN server");
                    }
                }
                None => {
                    tracing::warn!(%url, "ignoring an ICE server URL that is not stun: or turn(s):")
                }
            }
        }
    }
}

/// An ICE server URL in webrtcbin's form.
#[derive(Debug, PartialEq, Eq)]
enum IceUrl {
    Stun(String),
    Turn(String),
}

/// `stun:host:port` → `stun://host:port`; `turn:host:port?transport=tcp` with credentials →
/// `turn://user:pass@host:port?transport=tcp` (user and password percent-encoded).
fn gst_ice_url(url: &str, username: Option<&str>, credential: Option<&str>) -> Option<IceUrl> {
    let (scheme, rest) = url.split_once(':')?;
    let rest = rest.trim_start_matches("//");
    if rest.is_empty() {
        return None;
    }
    match scheme {
        "stun" | "stuns" => Some(IceUrl::Stun(format!("{scheme}://{rest}"))),
        "turn" | "turns" => {
            let user = percent_encode(username.unwrap_or(""));
            let pass = percent_encode(credential.unwrap_or(""));
            Some(IceUrl::Turn(format!("{scheme}://{user}:{pass}@{rest}")))
        }
        _ => None,
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Makes the offer when webrtcbin needs one, sets it as the local description and sends it.
fn connect_offer(webrtc: &gst::Element, signals: Events) {
    webrtc.connect("on-negotiation-needed", false, move |values| {
        let webrtc = values.first().and_then(|v| v.get::<gst::Element>().ok())?;
        let signals = signals.clone();
        // Weak: webrtcbin holds the promise until it replies.
        let for_reply = webrtc.downgrade();
        let promise = gst::Promise::with_change_func(move |reply| {
            let Some(webrtc) = for_reply.upgrade() else {
                return;
            };
            let offer = match reply {
                Ok(Some(reply)) => reply
                    .get::<gst_webrtc::WebRTCSessionDescription>("offer")
                    .ok(),
                _ => None,
            };
            let Some(offer) = offer else {
                signals.send(BrowserEvent::Signal(HostSignal::Error {
                    message: "the host could not create a WebRTC offer".into(),
                }));
                return;
            };
            webrtc.emit_by_name::<()>("set-local-description", &[&offer, &None::<gst::Promise>]);
            match offer.sdp().as_text() {
                Ok(sdp) => {
                    tracing::debug!(%sdp, "offer");
                    signals.send(BrowserEvent::Signal(HostSignal::Offer { sdp }));
                }
                Err(error) => tracing::warn!(%error, "the offer does not print as SDP"),
            }
        });
        webrtc.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
        None
    });
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

/// Reads the video's outbound and remote-inbound RTP statistics (by SSRC: GStreamer 1.22
/// labels bundled streams' kinds unreliably) into `feedback`.
fn read_feedback(stats: &gst::StructureRef, video_ssrc: u32, feedback: &TransportFeedback) {
    for (_, value) in stats.iter() {
        let Ok(entry) = value.get::<gst::Structure>() else {
            continue;
        };
        let Ok(kind) = entry.get::<gst_webrtc::WebRTCStatsType>("type") else {
            continue;
        };
        if number(&entry, "ssrc") != Some(u64::from(video_ssrc)) {
            continue;
        }
        match kind {
            gst_webrtc::WebRTCStatsType::OutboundRtp => {
                if let Some(sent) = number(&entry, "packets-sent") {
                    feedback.packets_sent.store(sent, Ordering::Relaxed);
                }
                let requests = number(&entry, "pli-count").unwrap_or(0)
                    + number(&entry, "fir-count").unwrap_or(0);
                feedback
                    .key_frame_requests
                    .store(requests, Ordering::Relaxed);
            }
            gst_webrtc::WebRTCStatsType::RemoteInboundRtp => {
                if let Some(lost) = number(&entry, "packets-lost") {
                    feedback.packets_lost.store(lost, Ordering::Relaxed);
                }
                if let Ok(rtt) = entry.get::<f64>("round-trip-time") {
                    feedback
                        .round_trip_us
                        .store((rtt * 1e6).max(0.0) as u64, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }
}

/// An integer statistic, whatever integer type this GStreamer version gives it (negative
/// values, such as a packets-lost count that duplicates made negative, read as 0).
fn number(entry: &gst::StructureRef, field: &str) -> Option<u64> {
    let value = entry.value(field).ok()?;
    value
        .get::<u64>()
        .ok()
        .or_else(|| value.get::<u32>().ok().map(u64::from))
        .or_else(|| value.get::<i64>().ok().map(|v| v.max(0) as u64))
        .or_else(|| value.get::<i32>().ok().map(|v| v.max(0) as u64))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// What `pipeline::webrtc_description` builds, with test sources instead of the desktop
    /// and the app's audio.
    fn test_description() -> String {
        format!(
            "webrtcbin name={WEBRTC_BIN} bundle-policy=max-bundle latency=0 \
             videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! \
             x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! \
             rtph264pay name={VIDEO_RTP} config-interval=-1 aggregate-mode=zero-latency mtu=1200 ! \
             application/x-rtp,media=video,encoding-name=H264,payload=96,clock-rate=90000 ! \
             {WEBRTC_BIN}. \
             audiotestsrc is-live=true ! opusenc ! rtpopuspay name={AUDIO_RTP} mtu=1200 ! \
             application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! \
             {WEBRTC_BIN}."
        )
    }

    /// This process's threads that belong to a webrtcbin named [`WEBRTC_BIN`] (its
    /// peer-connection and ICE threads).
    fn webrtc_threads() -> Vec<String> {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return Vec::new();
        };
        tasks
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
            .map(|name| name.trim().to_owned())
            .filter(|name| name.starts_with(WEBRTC_BIN))
            .collect()
    }

    /// The host address of an ICE candidate webrtcbin holds a socket for, and whether it is TCP
    /// (`candidate:1 1 UDP 2015363327 192.0.2.1 50000 typ host`; active TCP ones, port 9,
    /// have none).
    fn bound_address(candidate: &str) -> Option<(std::net::SocketAddr, bool)> {
        let fields: Vec<&str> = candidate.split_whitespace().collect();
        let tcp = fields.get(2)?.eq_ignore_ascii_case("tcp");
        let ip: std::net::IpAddr = fields.get(4)?.parse().ok()?;
        let port: u16 = fields.get(5)?.parse().ok()?;
        // A link-local IPv6 address binds only with its interface's scope, which the
        // candidate does not carry.
        let link_local = matches!(ip, std::net::IpAddr::V6(v6) if v6.is_unicast_link_local());
        (port != 9 && !link_local && fields.get(7) == Some(&"host"))
            .then_some(((ip, port).into(), tcp))
    }

    /// Whether this process could bind `address` (no socket holds it any more).
    fn is_free((address, tcp): (std::net::SocketAddr, bool)) -> bool {
        if tcp {
            std::net::TcpListener::bind(address).is_ok()
        } else {
            std::net::UdpSocket::bind(address).is_ok()
        }
    }

    /// Waits up to 10 s for `done`.
    fn wait_for(mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        done()
    }

    /// A host candidate as Chromium sends it: its address hidden behind an mDNS name.
    const MDNS_CANDIDATE: &str = "candidate:3011226364 1 udp 2113937151 \
                                  0b9e6c1e-5f3c-4a8e-9a43-6f0a1c2d3e4f.local 54321 typ host \
                                  generation 0 network-cost 999";

    /// A browser's side of the peer connection: a receive-only webrtcbin named `browser` that
    /// answers the host's offer and opens nothing itself. Its candidates go to `candidates`.
    struct Browser {
        pipeline: gst::Pipeline,
        webrtc: gst::Element,
        channel: Arc<Mutex<Option<WebRTCDataChannel>>>,
        messages: Arc<Mutex<Vec<String>>>,
    }

    impl Browser {
        fn new(candidates: std::sync::mpsc::Sender<(u32, String)>) -> Self {
            let pipeline = gst::Pipeline::with_name("browser-pipeline");
            let webrtc = gst::ElementFactory::make("webrtcbin")
                .name("browser")
                .property_from_str("bundle-policy", "max-bundle")
                .build()
                .unwrap();
            pipeline.add(&webrtc).unwrap();
            let weak_pipeline = pipeline.downgrade();
            webrtc.connect_pad_added(move |_, pad| {
                let Some(pipeline) = weak_pipeline.upgrade() else {
                    return;
                };
                let sink = gst::ElementFactory::make("fakesink")
                    .property("async", false)
                    .build()
                    .unwrap();
                pipeline.add(&sink).unwrap();
                sink.sync_state_with_parent().unwrap();
                let _ = pad.link(&sink.static_pad("sink").unwrap());
            });
            webrtc.connect("on-ice-candidate", false, move |values| {
                let mline = values[1].get::<u32>().unwrap();
                let candidate = values[2].get::<String>().unwrap();
                let _ = candidates.send((mline, candidate));
                None
            });
            let channel: Arc<Mutex<Option<WebRTCDataChannel>>> = Arc::default();
            let messages: Arc<Mutex<Vec<String>>> = Arc::default();
            let (opened, received) = (channel.clone(), messages.clone());
            webrtc.connect("on-data-channel", false, move |values| {
                let channel = values[1].get::<WebRTCDataChannel>().unwrap();
                let received = received.clone();
                channel.connect("on-message-string", false, move |values| {
                    if let Ok(Some(text)) = values[1].get::<Option<String>>() {
                        lock(&received).push(text);
                    }
                    None
                });
                *lock(&opened) = Some(channel);
                None
            });
            pipeline.set_state(gst::State::Playing).unwrap();
            Self {
                pipeline,
                webrtc,
                channel,
                messages,
            }
        }

        /// Takes the host's offer and returns the answer's SDP.
        fn answer(&self, offer: &str) -> String {
            let offer = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes()).unwrap();
            let offer = gst_webrtc::WebRTCSessionDescription::new(WebRTCSDPType::Offer, offer);
            self.webrtc
                .emit_by_name::<()>("set-remote-description", &[&offer, &None::<gst::Promise>]);
            let promise = gst::Promise::new();
            self.webrtc
                .emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
            promise.wait();
            let answer = promise
                .get_reply()
                .unwrap()
                .get::<gst_webrtc::WebRTCSessionDescription>("answer")
                .unwrap();
            self.webrtc
                .emit_by_name::<()>("set-local-description", &[&answer, &None::<gst::Promise>]);
            answer.sdp().as_text().unwrap()
        }

        fn add_ice_candidate(&self, sdp_mline_index: u32, candidate: &str) {
            self.webrtc
                .emit_by_name::<()>("add-ice-candidate", &[&sdp_mline_index, &candidate]);
        }

        /// Sends `text` over the host's data channel once it is open; whether it was.
        fn send(&self, text: &str) -> bool {
            let channel = lock(&self.channel);
            let Some(channel) = channel.as_ref().filter(|channel| {
                channel.property::<gst_webrtc::WebRTCDataChannelState>("ready-state")
                    == gst_webrtc::WebRTCDataChannelState::Open
            }) else {
                return false;
            };
            channel.emit_by_name::<()>("send-string", &[&Some(text)]);
            true
        }
    }

    impl Drop for Browser {
        fn drop(&mut self) {
            let _ = self.pipeline.set_state(gst::State::Null);
        }
    }

    #[test]
    fn dropping_a_connected_stream_frees_webrtcbin_its_threads_and_ice_sockets() {
        gst::init().unwrap();
        let network = WebRtcConfig {
            enabled: true,
            ice_servers: Vec::new(),
            min_port: 0,
            max_port: 0,
            min_bitrate_kbps: 500,
            max_bitrate_kbps: 20_000,
            audio_bitrate: 64_000,
        };
        let (events, mut from_host) = mpsc::channel(EVENT_QUEUE);
        let inputs: Arc<Mutex<Vec<String>>> = Arc::default();
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let (stream, handle) =
            WebRtcStream::start(&test_description(), None, &network, events).unwrap();
        stream.set_name("hati-webrtc-test");
        assert!(!webrtc_threads().is_empty(), "webrtcbin runs no thread");

        // Signalling, as the session relays it, until input arrives over the data channel and
        // the page has the host's message (connected: ICE, DTLS and SCTP up).
        let (browser_candidates, from_browser) = std::sync::mpsc::channel();
        let browser = Browser::new(browser_candidates);
        let mut candidates = Vec::new();
        let mut answered = false;
        let connected = wait_for(|| {
            while let Ok(event) = from_host.try_recv() {
                let signal = match event {
                    BrowserEvent::Signal(signal) => signal,
                    BrowserEvent::Input(text) => {
                        lock(&inputs).push(text);
                        continue;
                    }
                    BrowserEvent::Failed(message) => {
                        lock(&errors).push(message);
                        continue;
                    }
                    BrowserEvent::PeerGone | BrowserEvent::Closed(_) => continue,
                };
                match signal {
                    HostSignal::Offer { sdp } => {
                        // Chromium hides its host addresses behind mDNS names, in the answer
                        // (once it gathered) and trickled.
                        let mut answer =
                            gst_sdp::SDPMessage::parse_buffer(browser.answer(&sdp).as_bytes())
                                .unwrap();
                        answer
                            .media_mut(0)
                            .unwrap()
                            .add_attribute("candidate", MDNS_CANDIDATE.strip_prefix("candidate:"));
                        handle.set_answer(&answer.as_text().unwrap()).unwrap();
                        handle.add_ice_candidate(0, MDNS_CANDIDATE);
                        answered = true;
                    }
                    HostSignal::Ice {
                        candidate,
                        sdp_mline_index,
                    } => {
                        browser.add_ice_candidate(sdp_mline_index, &candidate);
                        candidates.push(candidate);
                    }
                    _ => {}
                }
            }
            if answered {
                while let Ok((mline, candidate)) = from_browser.try_recv() {
                    handle.add_ice_candidate(mline, &candidate);
                }
            }
            if lock(&inputs).is_empty() {
                browser.send(r#"{"t":"k"}"#);
            } else {
                stream.send_to_page(r#"{"rumble":[0,0]}"#);
            }
            stream.refresh_feedback();
            !lock(&inputs).is_empty() && !lock(&browser.messages).is_empty()
        });
        assert!(
            connected,
            "the browser did not connect (answered: {answered}, input: {:?}, errors: {:?}, \
             host candidates: {candidates:?})",
            lock(&inputs),
            lock(&errors)
        );
        assert!(
            lock(&errors).is_empty(),
            "pipeline errors: {:?}",
            lock(&errors)
        );
        let sockets: Vec<_> = candidates.iter().filter_map(|c| bound_address(c)).collect();
        assert!(
            sockets.iter().all(|&socket| !is_free(socket)),
            "an ICE candidate's socket is not bound: {candidates:?}"
        );

        let pipeline = stream.pipeline.downgrade();
        let webrtc = stream.webrtc.downgrade();
        let ice_agent = stream
            .webrtc
            .property::<gst::glib::Object>("ice-agent")
            .downgrade();
        let channel = lock(&stream.channel).as_ref().map(|c| c.downgrade());
        stream.close(StreamClosed::Paused);
        let mut last = None;
        while let Ok(event) = from_host.try_recv() {
            last = Some(event);
        }
        assert!(
            matches!(last, Some(BrowserEvent::Closed(StreamClosed::Paused))),
            "the signalling task hears last why its stream closed: {last:?}"
        );
        assert!(
            matches!(handle.set_answer("v=0"), Err(AnswerError::NoBrowserStream)),
            "the handle outlives the stream harmlessly"
        );

        // All at once: the session publishes `session_ended` right after the drop.
        assert!(
            pipeline.upgrade().is_none() && webrtc.upgrade().is_none(),
            "the pipeline or webrtcbin outlived the stream (pipeline refs: {:?}, webrtcbin \
             refs: {:?})",
            pipeline.upgrade().map(|p| p.ref_count() - 1),
            webrtc.upgrade().map(|w| w.ref_count() - 1),
        );
        assert!(
            ice_agent.upgrade().is_none(),
            "webrtcbin's ICE agent outlived the stream ({:?} refs)",
            ice_agent.upgrade().map(|a| a.ref_count() - 1)
        );
        assert!(
            channel.is_some_and(|c| c.upgrade().is_none()),
            "the data channel outlived the stream"
        );
        assert!(
            webrtc_threads().is_empty(),
            "webrtcbin's threads outlived the stream: {:?}",
            webrtc_threads()
        );
        assert!(
            sockets.iter().all(|&socket| is_free(socket)),
            "webrtcbin's ICE sockets outlived the stream: {:?}",
            sockets
                .iter()
                .filter(|&&socket| !is_free(socket))
                .collect::<Vec<_>>()
        );
        drop(browser);
    }

    #[test]
    fn mdns_candidates_are_recognised_and_removed_from_an_answer() {
        assert!(is_mdns_candidate(MDNS_CANDIDATE));
        assert!(is_mdns_candidate(
            "a=candidate:1 1 UDP 2113937151 A1B2.LOCAL 50000 typ host"
        ));
        assert!(is_mdns_candidate(
            "candidate:1 1 tcp 1 host.local. 9 typ host tcptype active"
        ));
        assert!(!is_mdns_candidate(
            "candidate:1 1 udp 2113937151 192.0.2.7 50000 typ host"
        ));
        assert!(!is_mdns_candidate(
            "candidate:1 1 udp 1 2001:db8::1 50000 typ srflx raddr local rport 0"
        ));
        assert!(!is_mdns_candidate("candidate:1 1 udp 1 .local"));
        assert!(!is_mdns_candidate(
            "candidate:1 1 udp 1 aéééé 5000 typ host"
        ));
        assert!(!is_mdns_candidate(""));

        gst::init().unwrap();
        let mut answer = gst_sdp::SDPMessage::parse_buffer(
            b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
              m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
              a=candidate:1 1 udp 2113937151 0b9e.local 50000 typ host\r\n\
              a=candidate:2 1 udp 2113937151 192.0.2.7 50001 typ host\r\n\
              a=candidate:3 1 udp 2113937151 1c2d.local 50002 typ host\r\n\
              a=end-of-candidates\r\n",
        )
        .unwrap();
        remove_mdns_candidates(&mut answer);
        let media = answer.media(0).unwrap();
        let left: Vec<_> = media
            .attributes()
            .map(|a| (a.key().to_owned(), a.value().map(str::to_owned)))
            .collect();
        assert_eq!(
            left,
            [
                ("mid".to_owned(), Some("0".to_owned())),
                (
                    "candidate".to_owned(),
                    Some("2 1 udp 2113937151 192.0.2.7 50001 typ host".to_owned())
                ),
                ("end-of-candidates".to_owned(), Some(String::new())),
            ]
        );
    }

    #[test]
    fn only_the_data_channel_transport_counts_as_the_browser_leaving() {
        assert!(is_peer_transport("sctpenc"));
        assert!(is_peer_transport("sctpdec"));
        assert!(!is_peer_transport("x264enc"));
        assert!(!is_peer_transport("nicesink"));
    }

    #[test]
    fn ice_urls_take_webrtcbin_form() {
        assert_eq!(
            gst_ice_url("stun:stun.example.net:3478", None, None),
            Some(IceUrl::Stun("stun://stun.example.net:3478".into()))
        );
        assert_eq!(
            gst_ice_url(
                "turn:turn.example.net:3478?transport=tcp",
                Some("hati"),
                Some("p@ss:word")
            ),
            Some(IceUrl::Turn(
                "turn://hati:p%40ss%3Aword@turn.example.net:3478?transport=tcp".into()
            ))
        );
        assert_eq!(gst_ice_url("http://example.net", None, None), None);
        assert_eq!(gst_ice_url("stun:", None, None), None);
        assert_eq!(gst_ice_url("nothing", None, None), None);
    }
}
