//! The browser stream's transport: ICE servers and port range for webrtcbin, and the browser's
//! RTCP reports read back for congestion control.

use std::sync::atomic::{AtomicU64, Ordering};

use gst::prelude::*;

use crate::config::WebRtcConfig;

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

/// Sets webrtcbin's STUN server and adds its TURN servers from the config's `ice_servers`
/// (browser-style URLs: `stun:host:port`, `turn:host:port?transport=udp`), and confines its
/// sockets to `min_port..=max_port` when set.
pub(super) fn configure_ice(webrtc: &gst::Element, network: &WebRtcConfig) {
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
pub(super) enum IceUrl {
    Stun(String),
    Turn(String),
}

/// `stun:host:port` → `stun://host:port`; `turn:host:port?transport=tcp` with credentials →
/// `turn://user:pass@host:port?transport=tcp` (user and password percent-encoded).
pub(super) fn gst_ice_url(
    url: &str,
    username: Option<&str>,
    credential: Option<&str>,
) -> Option<IceUrl> {
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

/// Reads the video's outbound and remote-inbound RTP statistics (by SSRC: GStreamer 1.22
/// labels bundled streams' kinds unreliably) into `feedback`.
pub(super) fn read_feedback(
    stats: &gst::StructureRef,
    video_ssrc: u32,
    feedback: &TransportFeedback,
) {
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
