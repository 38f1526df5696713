//! What a browser stream and its signalling task say to each other: the events the stream
//! queues (offer, candidates, input, the browser leaving, failure, the close and why), the
//! handle the task drives (the browser's answer and candidates), and the filter that keeps the
//! browser's mDNS candidates away from webrtcbin.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gst::prelude::*;
use gst_webrtc::WebRTCSDPType;
use hati_protocol::browser::HostSignal;
use tokio::sync::mpsc;

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
pub(super) struct Events {
    pub(super) queue: mpsc::Sender<BrowserEvent>,
    pub(super) dropped: Arc<AtomicU64>,
}

impl Events {
    /// Queues `event` without waiting (callbacks run on GStreamer threads); a full queue drops
    /// it, and a closed one (the signalling task is gone) means nobody listens any more.
    pub(super) fn send(&self, event: BrowserEvent) {
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
    pub(super) webrtc: gst::glib::WeakRef<gst::Element>,
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

/// Whether an ICE candidate's address is an mDNS name (`<uuid>.local`), as Chromium and Firefox
/// send for their host addresses.
///
/// webrtcbin (GStreamer 1.22) resolves such a name with a `GTask` that holds its ICE agent and
/// delivers the result on GLib's global default main context, which nothing in Hati runs: the
/// task never completes, so the agent outlives the stream with its sockets, its thread and its
/// UPnP thread, and its libnice callbacks may then touch freed objects. The name could never be
/// used either, so it is dropped: the host learns the browser's address from its connectivity
/// checks (a peer-reflexive candidate), or from its server-reflexive candidates behind a NAT.
pub(super) fn is_mdns_candidate(candidate: &str) -> bool {
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
pub(super) fn remove_mdns_candidates(message: &mut gst_sdp::SDPMessageRef) {
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

/// Makes the offer when webrtcbin needs one, sets it as the local description and sends it.
pub(super) fn connect_offer(webrtc: &gst::Element, signals: Events) {
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
