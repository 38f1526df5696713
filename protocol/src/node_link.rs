//! The node link between `hati gateway` and its `hati node`s: the messages and their frame
//! format (a 4-byte big-endian length, then one JSON object). JSON because the link carries a
//! few messages a second per node (launches, ends, heartbeats, browser signalling), never
//! media, and a person debugging a cluster can read it. Every message rejects unknown fields,
//! and a frame is at most [`MAX_FRAME`] bytes; the framing's I/O lives in the host crate.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The four ports one session's streams use: RTSP (TCP), control (ENet over UDP), video and
/// audio (UDP). On the gateway's front address each session gets its own set; on a node the set
/// is the node's fixed ports, shared by its sessions (told apart by their payloads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSet {
    /// RTSP, TCP.
    pub rtsp: u16,
    /// Control stream, UDP (ENet).
    pub control: u16,
    /// Video, UDP.
    pub video: u16,
    /// Audio, UDP.
    pub audio: u16,
}

/// Why a session ended (also the `reason` of the host's `session_ended` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The client quit the app (`/cancel`).
    Cancelled,
    /// The app exited by itself.
    AppExited,
    /// The host shut down.
    HostShutdown,
    /// The host's owner stopped it (admin API).
    Stopped,
    /// Its video or audio pipeline failed.
    PipelineError,
    /// The client did not come back (or never came) within `streaming.client_timeout_s`.
    ClientTimeout,
    /// The node that ran it went away (`hati gateway`: its link closed or went silent).
    NodeLost,
    /// A guest's session: the lobby it joined closed (its owner ended the session or closed
    /// the lobby).
    LobbyClosed,
    /// A guest's session: the lobby's owner (or an admin) removed the guest.
    Kicked,
}

/// The link's protocol version; a node of another version is refused with a message saying so.
pub const PROTOCOL_VERSION: u32 = 1;
/// The largest frame either side accepts (a hello lists a node's sessions: a few KiB).
pub const MAX_FRAME: usize = 1 << 20;

/// What a node sends the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum NodeMessage {
    /// The first message on a connection.
    Hello(Hello),
    /// Sent every second; the gateway takes a node out after the gateway's node timeout (5 s) of silence.
    Heartbeat {
        /// Sessions running on the node.
        sessions: u32,
        /// The node's CPU use over the last second, 0.0–1.0 of all its cores.
        load: f32,
    },
    /// The answer to a gateway request.
    Reply {
        /// The request's number.
        request: u64,
        /// `None` on success, else why it failed (shown to the client).
        error: Option<String>,
    },
    /// A session on the node changed state.
    Session {
        /// The session.
        session: u32,
        /// What happened.
        change: SessionChange,
    },
    /// A streaming session's figures, once a second.
    Stats {
        /// The session.
        session: u32,
        /// Video frames sent in the last second.
        fps: u64,
        /// Video bitrate sent in the last second, kbit/s.
        bitrate_kbps: u64,
        /// Video frames sent in total.
        video_frames: u64,
    },
    /// A signalling message for a browser that plays here (through the gateway's WebSocket).
    BrowserSignal {
        /// The browser's channel ([`BrowserOpen::channel`]).
        channel: u64,
        /// The message for the page; `None`: ping the browser.
        text: Option<String>,
    },
    /// The node is done with a browser's channel (it said why on the channel first).
    BrowserClose {
        /// The channel.
        channel: u64,
    },
}

/// A node's introduction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the node.
    pub protocol: u32,
    /// The join token's secret (the gateway compares it in constant time).
    pub secret: String,
    /// The node's name (its hostname unless configured).
    pub name: String,
    /// Hati's version on the node.
    pub version: String,
    /// Sessions the node may run together.
    pub capacity: u32,
    /// Video codecs it encodes: `h264`, `hevc`, `av1`.
    pub codecs: Vec<String>,
    /// The node's own stream ports (shared by its sessions).
    pub ports: PortSet,
    /// The address the gateway forwards to; `None`: the address the link came from.
    pub address: Option<IpAddr>,
    /// Sessions already running (a re-dial after a gateway restart or a link loss).
    pub sessions: Vec<RunningSession>,
}

/// A session a node runs, as it reports it in its hello.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunningSession {
    /// The session's ID (the gateway chose it).
    pub session: u32,
    /// The client's certificate fingerprint.
    pub client_id: String,
    /// The client's address as the gateway saw it at launch.
    pub client_ip: IpAddr,
    /// The app's ID.
    pub app_id: u32,
    /// The app's title.
    pub app: String,
    /// The front ports the session was given.
    pub front: PortSet,
    /// Whether the client streams now.
    pub streaming: bool,
}

/// A state change of a node's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum SessionChange {
    /// The client's stream runs.
    Streaming,
    /// The client disconnected; the session waits for a resume.
    Paused,
    /// The session ended and everything it held was released.
    Ended {
        /// Why.
        reason: EndReason,
    },
}

/// What the gateway sends a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum GatewayMessage {
    /// The node was admitted.
    Welcome {
        /// The gateway's number for it (for logs).
        node: u32,
    },
    /// The node was not admitted, and why.
    Refused {
        /// For the node's log.
        reason: String,
    },
    /// Sent every second so a node notices a gateway that went away.
    Heartbeat,
    /// Start a session.
    Launch(Box<LaunchOrder>),
    /// A Moonlight client resumed its session with a new key.
    Resume {
        /// The request's number.
        request: u64,
        /// The session.
        session: u32,
        /// The new key.
        key: WireKey,
    },
    /// A browser paired at the gateway plays a session of this node: signalling goes through
    /// the gateway, media straight between the browser and the node.
    BrowserOpen(Box<BrowserOpen>),
    /// A message from the browser's WebSocket.
    BrowserSignal {
        /// The channel.
        channel: u64,
        /// The page's message; `None`: it answered a ping (it is alive).
        text: Option<String>,
    },
    /// The browser's WebSocket closed.
    BrowserClose {
        /// The channel.
        channel: u64,
    },
    /// End a session.
    Stop {
        /// The request's number.
        request: u64,
        /// The session.
        session: u32,
        /// Why (`cancelled` or `stopped`).
        reason: EndReason,
    },
}

/// "Create session": everything a node needs to run a client's launch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchOrder {
    /// The request's number.
    pub request: u64,
    /// The session's ID (chosen by the gateway, unique across its nodes).
    pub session: u32,
    /// The client's certificate fingerprint.
    pub client_id: String,
    /// The client's address as the gateway saw it.
    pub client_ip: IpAddr,
    /// The app's ID in the shared catalog.
    pub app_id: u32,
    /// Its title (a node whose catalog names another app refuses).
    pub app: String,
    /// `mode`: width, height, fps.
    pub mode: Option<(u32, u32, u32)>,
    /// `surroundAudioInfo`.
    pub surround_info: u32,
    /// The Moonlight key (`None`: a browser).
    pub key: Option<WireKey>,
    /// The ports the client reaches the session on (the node answers SETUP with them).
    pub front: PortSet,
}

/// What a node needs to stream a placed browser session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserOpen {
    /// The gateway's number for this browser connection.
    pub channel: u64,
    /// The session (placed on this node).
    pub session: u32,
    /// The browser's client ID.
    pub client_id: String,
    /// True when the session was launched for this connection; false: it is resumed.
    pub launched: bool,
    /// Stream width.
    pub width: u32,
    /// Stream height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// The bitrate the page asked for, kbit/s.
    pub bitrate_kbps: Option<u32>,
}

/// A Moonlight client's key on the wire.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireKey {
    /// `rikey`, 32 hex digits.
    pub rikey: String,
    /// `rikeyid`.
    pub rikeyid: i32,
    /// `corever`.
    pub corever: u32,
}

impl std::fmt::Debug for WireKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches a log.
        f.debug_struct("WireKey")
            .field("rikeyid", &self.rikeyid)
            .finish_non_exhaustive()
    }
}

impl WireKey {
    /// A key for the wire.
    pub fn new(rikey: &[u8; 16], rikeyid: i32, corever: u32) -> Self {
        Self {
            rikey: crate::query::encode_hex(rikey),
            rikeyid,
            corever,
        }
    }

    /// The AES key's bytes; `None` when `rikey` is not 32 hex digits.
    pub fn rikey_bytes(&self) -> Option<[u8; 16]> {
        crate::query::decode_hex(&self.rikey)?.try_into().ok()
    }
}

/// A frame body that is not a message of this protocol.
pub type DecodeError = serde_json::Error;

/// Parses one frame's body.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(body)
}

/// Encodes a message as one frame's body.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, DecodeError> {
    serde_json::to_vec(message)
}

/// Entry points for the fuzz targets (fuzz/README.md).
pub mod fuzzing {
    use super::{GatewayMessage, NodeMessage, decode, encode};

    /// Parses `data` as both sides' messages; whatever parses must encode and parse back to
    /// the same message.
    pub fn message(data: &[u8]) {
        if let Ok(message) = decode::<NodeMessage>(data) {
            let again = encode(&message)
                .ok()
                .and_then(|bytes| decode::<NodeMessage>(&bytes).ok());
            assert_eq!(again.as_ref(), Some(&message));
        }
        if let Ok(message) = decode::<GatewayMessage>(data) {
            let again = encode(&message)
                .ok()
                .and_then(|bytes| decode::<GatewayMessage>(&bytes).ok());
            assert_eq!(again.as_ref(), Some(&message));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Fuzz seeds: one message of each kind, both directions.
    pub(crate) fn seeds() -> Vec<Vec<u8>> {
        let ports = PortSet {
            rtsp: 40000,
            control: 40001,
            video: 40002,
            audio: 40003,
        };
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            secret: "0".repeat(32),
            name: "n".into(),
            version: "0.1.0".into(),
            capacity: 4,
            codecs: vec!["h264".into()],
            ports,
            address: None,
            sessions: vec![RunningSession {
                session: 1,
                client_id: "c".into(),
                client_ip: "10.0.0.2".parse().unwrap(),
                app_id: 2,
                app: "a".into(),
                front: ports,
                streaming: true,
            }],
        };
        vec![
            encode(&NodeMessage::Hello(hello)).unwrap(),
            encode(&NodeMessage::Heartbeat {
                sessions: 1,
                load: 0.5,
            })
            .unwrap(),
            encode(&NodeMessage::Reply {
                request: 1,
                error: Some("e".into()),
            })
            .unwrap(),
            encode(&NodeMessage::Session {
                session: 1,
                change: SessionChange::Paused,
            })
            .unwrap(),
            encode(&NodeMessage::BrowserSignal {
                channel: 1,
                text: Some("{}".into()),
            })
            .unwrap(),
            encode(&NodeMessage::Stats {
                session: 1,
                fps: 60,
                bitrate_kbps: 20000,
                video_frames: 600,
            })
            .unwrap(),
            encode(&GatewayMessage::Welcome { node: 1 }).unwrap(),
            encode(&GatewayMessage::Stop {
                request: 1,
                session: 1,
                reason: EndReason::Stopped,
            })
            .unwrap(),
            encode(&GatewayMessage::Resume {
                request: 1,
                session: 1,
                key: WireKey::new(&[1; 16], 2, 1),
            })
            .unwrap(),
            encode(&GatewayMessage::BrowserOpen(Box::new(BrowserOpen {
                channel: 1,
                session: 1,
                client_id: "c".into(),
                launched: true,
                width: 1280,
                height: 720,
                fps: 60,
                bitrate_kbps: None,
            })))
            .unwrap(),
        ]
    }

    #[test]
    fn unknown_fields_and_types_are_errors() {
        assert!(decode::<NodeMessage>(br#"{"type":"heartbeat","sessions":1,"load":0.5}"#).is_ok());
        assert!(
            decode::<NodeMessage>(br#"{"type":"heartbeat","sessions":1,"load":0.5,"x":1}"#)
                .is_err()
        );
        assert!(decode::<NodeMessage>(br#"{"type":"reboot"}"#).is_err());
        assert!(decode::<NodeMessage>(b"\xff\x00").is_err());
        assert!(
            decode::<GatewayMessage>(br#"{"type":"stop","request":1,"session":2,"reason":"nope"}"#)
                .is_err()
        );
    }

    #[test]
    fn a_key_goes_over_the_wire_and_back() {
        let key = WireKey::new(&[7; 16], i32::MIN, 1);
        assert_eq!(key.rikey_bytes(), Some([7; 16]));
        let bad = WireKey {
            rikey: "zz".into(),
            rikeyid: 0,
            corever: 0,
        };
        assert_eq!(bad.rikey_bytes(), None);
        assert!(
            !format!("{:?}", WireKey::new(&[0xab; 16], 1, 0)).contains("abab"),
            "keys stay out of logs"
        );
    }

    #[test]
    fn every_message_survives_the_fuzz_round_trip() {
        let ports = PortSet {
            rtsp: 40000,
            control: 40001,
            video: 40002,
            audio: 40003,
        };
        let messages = [
            encode(&NodeMessage::Session {
                session: 1,
                change: SessionChange::Ended {
                    reason: EndReason::NodeLost,
                },
            }),
            encode(&NodeMessage::BrowserSignal {
                channel: 9,
                text: None,
            }),
            encode(&GatewayMessage::Launch(Box::new(LaunchOrder {
                request: 1,
                session: 2,
                client_id: "c".into(),
                client_ip: "10.0.0.1".parse().unwrap(),
                app_id: 3,
                app: "a".into(),
                mode: Some((1, 2, 3)),
                surround_info: 0,
                key: Some(WireKey::new(&[1; 16], 5, 1)),
                front: ports,
            }))),
        ];
        for message in messages {
            fuzzing::message(&message.unwrap());
        }
    }
}
