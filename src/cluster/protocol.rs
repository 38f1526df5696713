//! The node link's messages and their framing: a 4-byte big-endian length, then one JSON
//! object. JSON because the link carries a few messages a second per node (launches, ends,
//! heartbeats), never media, and a person debugging a cluster can read it. Every frame a peer
//! sends is bounded ([`MAX_FRAME`]) and parsed into typed messages that reject unknown fields.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::PortSet;
use crate::events::EndReason;

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
    /// Sent every second; the gateway takes a node out after [`super::NODE_TIMEOUT`] of silence.
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
    /// The key for the wire.
    pub fn from_key(key: &crate::session::MoonlightKey) -> Self {
        Self {
            rikey: hati_protocol::query::encode_hex(&key.rikey),
            rikeyid: key.rikeyid,
            corever: key.corever,
        }
    }

    /// The key back; `None` when `rikey` is not 32 hex digits.
    pub fn to_key(&self) -> Option<crate::session::MoonlightKey> {
        let bytes = hati_protocol::query::decode_hex(&self.rikey)?;
        Some(crate::session::MoonlightKey {
            rikey: bytes.try_into().ok()?,
            rikeyid: self.rikeyid,
            corever: self.corever,
        })
    }
}

/// What can go wrong reading or writing a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or closed.
    #[error("node link: {0}")]
    Io(#[from] std::io::Error),
    /// A frame longer than [`MAX_FRAME`].
    #[error("node link: a frame of {0} bytes is longer than the {MAX_FRAME} allowed")]
    TooLong(usize),
    /// A frame that is not a message of this protocol.
    #[error("node link: malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Parses one frame's body.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, FrameError> {
    Ok(serde_json::from_slice(body)?)
}

/// Reads one message; `buffer` is reused between calls.
pub async fn read_message<T, R>(reader: &mut R, buffer: &mut Vec<u8>) -> Result<T, FrameError>
where
    T: for<'de> Deserialize<'de>,
    R: AsyncRead + Unpin,
{
    let length = reader.read_u32().await? as usize;
    if length > MAX_FRAME {
        return Err(FrameError::TooLong(length));
    }
    buffer.clear();
    buffer.resize(length, 0);
    reader.read_exact(buffer).await?;
    decode(buffer)
}

/// Writes one message.
pub async fn write_message<T, W>(writer: &mut W, message: &T) -> Result<(), FrameError>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    let body = serde_json::to_vec(message)?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLong(body.len()));
    }
    let length = u32::try_from(body.len()).map_err(|_| FrameError::TooLong(body.len()))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&body);
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> PortSet {
        PortSet {
            rtsp: 40000,
            control: 40001,
            video: 40002,
            audio: 40003,
        }
    }

    #[tokio::test]
    async fn messages_survive_the_round_trip() {
        let launch = GatewayMessage::Launch(Box::new(LaunchOrder {
            request: 7,
            session: 42,
            client_id: "ab".repeat(32),
            client_ip: "10.0.0.2".parse().unwrap(),
            app_id: 1,
            app: "Test pattern".into(),
            mode: Some((1280, 720, 30)),
            surround_info: 0x3_0002,
            key: Some(WireKey {
                rikey: "00112233445566778899aabbccddeeff".into(),
                rikeyid: -5,
                corever: 1,
            }),
            front: ports(),
        }));
        let (mut a, mut b) = tokio::io::duplex(4096);
        write_message(&mut a, &launch).await.unwrap();
        let mut buffer = Vec::new();
        let read: GatewayMessage = read_message(&mut b, &mut buffer).await.unwrap();
        assert_eq!(read, launch);
        let ended = NodeMessage::Session {
            session: 42,
            change: SessionChange::Ended {
                reason: EndReason::AppExited,
            },
        };
        write_message(&mut b, &ended).await.unwrap();
        let read: NodeMessage = read_message(&mut a, &mut buffer).await.unwrap();
        assert_eq!(read, ended);
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_before_it_is_read() {
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::spawn(async move {
            let _ = a.write_u32(MAX_FRAME as u32 + 1).await;
        });
        let mut buffer = Vec::new();
        let error = read_message::<NodeMessage, _>(&mut b, &mut buffer)
            .await
            .unwrap_err();
        assert!(matches!(error, FrameError::TooLong(_)), "{error}");
        assert!(buffer.capacity() < 1024, "nothing was allocated for it");
    }

    #[test]
    fn unknown_fields_and_types_are_errors() {
        assert!(
            decode::<NodeMessage>(br#"{"type":"heartbeat","sessions":1,"load":0.5,"x":1}"#)
                .is_err()
        );
        assert!(decode::<NodeMessage>(br#"{"type":"reboot"}"#).is_err());
        assert!(decode::<NodeMessage>(b"\xff\x00").is_err());
    }

    #[test]
    fn a_key_goes_over_the_wire_and_back() {
        let key = crate::session::MoonlightKey {
            rikey: [7; 16],
            rikeyid: i32::MIN,
            corever: 1,
        };
        assert_eq!(WireKey::from_key(&key).to_key(), Some(key));
        let bad = WireKey {
            rikey: "zz".into(),
            rikeyid: 0,
            corever: 0,
        };
        assert_eq!(bad.to_key(), None);
        assert!(
            !format!(
                "{:?}",
                WireKey::from_key(&crate::session::MoonlightKey {
                    rikey: [0xab; 16],
                    rikeyid: 1,
                    corever: 0
                })
            )
            .contains("abab")
        );
    }
}
