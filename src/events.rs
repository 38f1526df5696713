//! The host's event bus: every state change a client, the admin API or a test may want to
//! follow, published once on a tokio broadcast channel. Logs stay; events are the structured
//! record (`GET /api/v1/events` on the admin socket streams them as Server-Sent Events).

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast;

/// Events a slow subscriber may fall behind by before it misses some (it is told how many).
const CAPACITY: usize = 1024;

pub use hati_protocol::node_link::EndReason;

/// One state change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A client asked to pair and waits for its PIN.
    PairingWaiting {
        /// The attempt.
        attempt: u64,
        /// The client's address.
        address: IpAddr,
        /// The name it sent.
        device_name: String,
    },
    /// A client paired.
    Paired {
        /// The attempt.
        attempt: u64,
        /// The client's ID (certificate fingerprint).
        client_id: String,
        /// Its name.
        name: String,
    },
    /// A pairing attempt failed; nothing was stored.
    PairingFailed {
        /// The attempt.
        attempt: u64,
        /// Why, for people.
        reason: String,
    },
    /// A client was unpaired.
    ClientUnpaired {
        /// The client's ID.
        client_id: String,
        /// Its name.
        name: String,
    },
    /// A client's role or apps were changed (the admin API, `hati clients set`, the
    /// dashboard).
    ClientUpdated {
        /// The client's ID.
        client_id: String,
        /// Its name.
        name: String,
        /// Its role now.
        role: crate::state::permissions::Role,
        /// The IDs of the apps it may use now; `null`: every app.
        apps: Option<Vec<u32>>,
    },
    /// A session was launched: its desktop, sink and app run.
    SessionLaunched {
        /// The session.
        session: u32,
        /// The client's short ID.
        client: String,
        /// The app's title.
        app: String,
    },
    /// The client announced its stream and the pipelines run.
    SessionStreaming {
        /// The session.
        session: u32,
        /// Stream width.
        width: u32,
        /// Stream height.
        height: u32,
        /// Frames per second asked for.
        fps: u32,
        /// The video codec.
        codec: String,
        /// Whether video packets are AES-GCM encrypted.
        video_encrypted: bool,
        /// Whether audio packets are AES-CBC encrypted.
        audio_encrypted: bool,
    },
    /// The client disconnected; the session waits for `/resume`.
    SessionPaused {
        /// The session.
        session: u32,
    },
    /// The client resumed the session with new keys.
    SessionResumed {
        /// The session.
        session: u32,
    },
    /// A stream's pipeline failed; the client is told to stop.
    StreamFailed {
        /// The session.
        session: u32,
        /// What failed: GStreamer's message, or why the pipelines could not start.
        message: String,
    },
    /// Adaptive bitrate changed the encoder's bitrate.
    BitrateChanged {
        /// The session.
        session: u32,
        /// The new encoder bitrate, kbit/s.
        kbps: u32,
        /// Why: `congestion` (lowered) or `recovery` (raised).
        reason: crate::bitrate::Change,
    },
    /// A `/launch` failed: the app, its desktop or its sink did not start (nothing is left
    /// running).
    LaunchFailed {
        /// The client (short ID).
        client: String,
        /// The app's title.
        app: String,
        /// Why.
        error: String,
    },
    /// The session ended and everything it held was released.
    SessionEnded {
        /// The session.
        session: u32,
        /// Why.
        reason: EndReason,
    },
    /// A running session was opened to guests (`hati lobby open`, the admin API, the
    /// dashboard or the app's `lobby` setting).
    LobbyOpened {
        /// The lobby's number.
        lobby: u32,
        /// The owner's session.
        session: u32,
        /// The app.
        app: String,
        /// Whether clients must enter a PIN first.
        pin: bool,
        /// Most guests at once.
        max_guests: u32,
    },
    /// A client joined a lobby; its own session was launched as `session_launched` says.
    GuestJoined {
        /// The lobby.
        lobby: u32,
        /// The guest's session.
        session: u32,
        /// The guest's client ID (short).
        client: String,
        /// `player` or `spectator`.
        role: crate::lobby::GuestRole,
    },
    /// A guest left a lobby (quit, timed out, was kicked, or the lobby closed); its
    /// `session_ended` follows.
    GuestLeft {
        /// The lobby.
        lobby: u32,
        /// The guest's session.
        session: u32,
        /// The guest's client ID (short).
        client: String,
        /// Why its session ended.
        reason: EndReason,
    },
    /// A lobby closed: its owner closed it or its session ended; every guest's session ended
    /// before this (`session_ended` reason `lobby_closed`).
    LobbyClosed {
        /// The lobby.
        lobby: u32,
        /// The owner's session.
        session: u32,
    },
    /// A virtual gamepad was created for a client's controller (its first input, or its
    /// arrival), in an app player slot.
    GamepadConnected {
        /// The session whose client it is.
        session: u32,
        /// The client's controller number, 0–15.
        controller: u8,
        /// The app player slot, 0–15 (in a lobby: the owner's 0–3, guests' from 4).
        slot: u8,
        /// Which pad it imitates: `xbox`, `playstation` or `nintendo` (a name, so the bus
        /// depends on no device code).
        kind: &'static str,
    },
    /// A virtual gamepad was removed (its controller was unplugged, or its session ended) and
    /// its player slot freed.
    GamepadRemoved {
        /// The session whose client it was.
        session: u32,
        /// The client's controller number.
        controller: u8,
        /// The player slot it held.
        slot: u8,
    },
    /// `hati gateway`: a node joined (or re-joined after a link loss or a gateway restart).
    NodeJoined {
        /// The gateway's number for it.
        node: u32,
        /// Its name.
        name: String,
        /// The address streams are forwarded to.
        address: IpAddr,
        /// Sessions it may run together.
        capacity: u32,
        /// Sessions it already ran (re-learnt).
        sessions: usize,
    },
    /// `hati gateway`: a node's link closed or went silent; its sessions ended (`node_lost`).
    NodeLost {
        /// The node.
        node: u32,
        /// Its name.
        name: String,
        /// What happened to the link.
        reason: String,
    },
    /// `hati gateway`: a session was placed on a node and reached through front ports.
    SessionPlaced {
        /// The session.
        session: u32,
        /// The node that runs it.
        node: u32,
        /// The node's name.
        node_name: String,
        /// The session's RTSP port on the front address (the other three follow it).
        front_rtsp_port: u16,
    },
    /// The config file was reloaded; new sessions use it.
    ConfigReloaded {
        /// Apps it lists.
        apps: usize,
    },
    /// A reload was refused; the running config stays.
    ConfigRefused {
        /// The same key-and-line message as at start-up.
        error: String,
    },
    /// Once a second per streaming session.
    StreamStats {
        /// The session.
        session: u32,
        /// Video frames sent in the last second.
        fps: u64,
        /// Video bitrate sent in the last second, kbit/s.
        bitrate_kbps: u64,
        /// Video packets sent in total.
        video_packets: u64,
        /// Video frames sent in total.
        video_frames: u64,
        /// The session's counters (totals), flattened into the event.
        #[serde(flatten)]
        counters: crate::metrics::SessionCounters,
        /// Parity packets per block as a percentage of data packets.
        fec_percentage: u8,
        /// The encoder's bitrate now (adaptive bitrate moves it), kbit/s; 0 when unknown.
        encoder_bitrate_kbps: u32,
        /// Frames the host's sender dropped because its queue was full, in total.
        frames_backlogged: u64,
        /// Host processing time (capture to packets) over the last 256 frames, median, ms.
        host_latency_p50_ms: f64,
        /// The same, 99th percentile, ms.
        host_latency_p99_ms: f64,
    },
}

/// An event with the time it happened, as subscribers see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stamped {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

impl Stamped {
    /// The event as one Server-Sent Events message (`event:` its type, `data:` its JSON).
    pub fn to_sse(&self) -> String {
        let data = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned());
        let kind = serde_json::to_value(&self.event)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
            .unwrap_or_default();
        format!("event: {kind}\ndata: {data}\n\n")
    }
}

/// The bus: cheap to clone, publishing never blocks.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Stamped>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus nobody listens to yet.
    pub fn new() -> Self {
        Self {
            sender: broadcast::channel(CAPACITY).0,
        }
    }

    /// Publishes `event` to every subscriber (none is fine).
    pub fn publish(&self, event: Event) {
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let _ = self.sender.send(Stamped { time_ms, event });
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Stamped> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_their_type() {
        let stamped = Stamped {
            time_ms: 5,
            event: Event::SessionEnded {
                session: 7,
                reason: EndReason::AppExited,
            },
        };
        assert_eq!(
            stamped.to_sse(),
            "event: session_ended\ndata: {\"time_ms\":5,\"type\":\"session_ended\",\"session\":7,\"reason\":\"app_exited\"}\n\n"
        );
    }

    #[tokio::test]
    async fn subscribers_see_what_is_published_after_they_subscribe() {
        let bus = EventBus::new();
        bus.publish(Event::SessionPaused { session: 1 });
        let mut receiver = bus.subscribe();
        bus.publish(Event::SessionResumed { session: 2 });
        let got = receiver.recv().await.unwrap();
        assert_eq!(got.event, Event::SessionResumed { session: 2 });
    }
}
