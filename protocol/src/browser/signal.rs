//! Signalling on the play page's WebSocket: JSON text frames with a `type` field.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{BrowserError, MAX_SIGNAL_LEN, TypeField, check_len, from_json, quote, ranged};

/// Longest session token accepted, in hex characters.
pub(super) const MAX_TOKEN_LEN: usize = 128;

/// Longest ICE candidate line accepted, in bytes; real ones are under 200.
pub(super) const MAX_CANDIDATE_LEN: usize = 1024;

/// Stream widths a browser may ask for, in pixels (up to 8K).
pub(super) const WIDTHS: (u32, u32) = (16, 7680);

/// Stream heights a browser may ask for, in pixels.
pub(super) const HEIGHTS: (u32, u32) = (16, 4320);

/// Frame rates a browser may ask for.
pub(super) const FPS: (u32, u32) = (1, 240);

/// Bitrates a browser may ask for, in kbit/s.
pub(super) const BITRATES: (u32, u32) = (500, 500_000);

/// Highest `sdpMLineIndex` accepted; the host offers a handful of media sections at most.
const MAX_MLINE_INDEX: u32 = 15;

/// A message from the browser on the signalling WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalMessage {
    /// `{"type":"hello",…}`: authenticate and ask for an app to be streamed.
    Hello(Hello),
    /// `{"type":"answer","sdp":"…"}`: the browser's SDP answer to the host's offer.
    Answer {
        /// The SDP text.
        sdp: String,
    },
    /// `{"type":"ice","candidate":"…","sdpMLineIndex":0}`: a trickled ICE candidate.
    Ice {
        /// The `candidate:` line; empty means the browser has no more candidates.
        candidate: String,
        /// Media section the candidate belongs to.
        sdp_mline_index: u32,
    },
    /// `{"type":"quit"}`: stop streaming and end the app's session.
    Quit,
}

/// The browser's opening message: who it is and what it wants to stream.
#[derive(Clone, PartialEq, Eq)]
pub struct Hello {
    /// Session token (hex, 1 to 128 characters), checked by the host.
    pub token: String,
    /// The app to launch or resume.
    pub app_id: u32,
    /// Stream width in pixels, 16–7680.
    pub width: u32,
    /// Stream height in pixels, 16–4320.
    pub height: u32,
    /// Frame rate, 1–240.
    pub fps: u32,
    /// Bitrate in kbit/s, 500–500000; `None` lets the host choose.
    pub bitrate_kbps: Option<u32>,
}

// By hand so that logging a message never writes the token out.
impl fmt::Debug for Hello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hello")
            .field("token", &"<redacted>")
            .field("app_id", &self.app_id)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("fps", &self.fps)
            .field("bitrate_kbps", &self.bitrate_kbps)
            .finish()
    }
}

/// Wire form of `hello`; numbers are read wide so that an out-of-range one is reported by
/// field and range rather than as a serde type error.
#[derive(Deserialize)]
struct HelloWire {
    token: String,
    app_id: i64,
    width: i64,
    height: i64,
    fps: i64,
    bitrate_kbps: Option<i64>,
}

#[derive(Deserialize)]
struct AnswerWire {
    sdp: String,
}

#[derive(Deserialize)]
struct IceWire {
    candidate: String,
    // `RTCIceCandidate.toJSON()` may carry null here; with BUNDLE every candidate is on 0.
    #[serde(rename = "sdpMLineIndex")]
    sdp_mline_index: Option<i64>,
}

impl SignalMessage {
    /// Parses one WebSocket text frame of at most [`MAX_SIGNAL_LEN`] bytes.
    pub fn parse(text: &str) -> Result<Self, BrowserError> {
        check_len(text, MAX_SIGNAL_LEN)?;
        let kind: TypeField<'_> = from_json(text)?;
        match kind.value.as_ref() {
            "hello" => Ok(Self::Hello(hello(from_json(text)?)?)),
            "answer" => {
                let AnswerWire { sdp } = from_json(text)?;
                // The frame limit already bounds the SDP's length.
                if sdp.is_empty() {
                    return Err(BrowserError::Empty("sdp"));
                }
                Ok(Self::Answer { sdp })
            }
            "ice" => {
                let IceWire {
                    candidate,
                    sdp_mline_index,
                } = from_json(text)?;
                if candidate.len() > MAX_CANDIDATE_LEN {
                    return Err(BrowserError::FieldTooLong {
                        field: "candidate",
                        len: candidate.len(),
                        max: MAX_CANDIDATE_LEN,
                    });
                }
                let sdp_mline_index = match sdp_mline_index {
                    Some(index) => ranged("sdpMLineIndex", index, 0, MAX_MLINE_INDEX)?,
                    None => 0,
                };
                Ok(Self::Ice {
                    candidate,
                    sdp_mline_index,
                })
            }
            "quit" => Ok(Self::Quit),
            other => Err(BrowserError::UnknownType(quote(other))),
        }
    }
}

fn hello(wire: HelloWire) -> Result<Hello, BrowserError> {
    if wire.token.is_empty() {
        return Err(BrowserError::Empty("token"));
    }
    if wire.token.len() > MAX_TOKEN_LEN {
        return Err(BrowserError::FieldTooLong {
            field: "token",
            len: wire.token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    if !wire.token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BrowserError::NotHex("token"));
    }
    Ok(Hello {
        app_id: ranged("app_id", wire.app_id, 0, u32::MAX)?,
        width: ranged("width", wire.width, WIDTHS.0, WIDTHS.1)?,
        height: ranged("height", wire.height, HEIGHTS.0, HEIGHTS.1)?,
        fps: ranged("fps", wire.fps, FPS.0, FPS.1)?,
        bitrate_kbps: wire
            .bitrate_kbps
            .map(|b| ranged("bitrate_kbps", b, BITRATES.0, BITRATES.1))
            .transpose()?,
        token: wire.token,
    })
}

/// A STUN or TURN server for the browser's `RTCPeerConnection` (`RTCIceServer`); the host's
/// configuration uses the same shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A message from the host to the browser on the signalling WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum HostSignal {
    /// `{"type":"config","ice_servers":[…]}`: how to configure the peer connection.
    Config {
        /// STUN and TURN servers.
        ice_servers: Vec<IceServer>,
    },
    /// `{"type":"launched","session":1,"app":"…","resumed":false}`: the app is running.
    Launched {
        /// The host's session id.
        session: u32,
        /// The app's name.
        app: String,
        /// Whether an existing session was resumed rather than a new one started.
        resumed: bool,
    },
    /// `{"type":"offer","sdp":"…"}`: the host's SDP offer.
    Offer {
        /// The SDP text.
        sdp: String,
    },
    /// `{"type":"ice","candidate":"…","sdpMLineIndex":0}`: a host ICE candidate.
    Ice {
        /// The `candidate:` line; empty means the host has no more candidates.
        candidate: String,
        /// Media section the candidate belongs to.
        #[serde(rename = "sdpMLineIndex")]
        sdp_mline_index: u32,
    },
    /// `{"type":"ended","reason":"…"}`: the stream is over.
    Ended {
        /// Why, for the page to show.
        reason: String,
    },
    /// `{"type":"error","message":"…"}`: a request failed.
    Error {
        /// What went wrong, for the page to show.
        message: String,
    },
}

impl HostSignal {
    /// The JSON text frame for this message.
    pub fn to_json(&self) -> String {
        // Serialising plain strings, numbers and lists cannot fail; the fallback only keeps
        // this function total.
        serde_json::to_string(self).unwrap_or_else(|_| {
            String::from(r#"{"type":"error","message":"internal error: cannot encode reply"}"#)
        })
    }
}
