//! What a web browser (the play page) and the host say to each other: JSON signalling on a
//! WebSocket ([`SignalMessage`] in, [`HostSignal`] out) and JSON input on the WebRTC data channel
//! `input` ([`parse_input`] in, [`rumble_message`] out).
//!
//! Browser messages arrive from the network, some before authentication, so each parser checks
//! the message length before parsing, bounds every string, and returns a [`BrowserError`] for
//! anything else it does not like; none of them panics. Fields the parsers do not know are
//! ignored, so the page can send an `RTCIceCandidate.toJSON()` (which adds `sdpMid` and
//! `usernameFragment`) or a newer message with extra fields to an older host.
//!
//! Input messages become the same [`InputEvent`](crate::input::InputEvent)s a Moonlight client's
//! input packets decode to, so one input router serves both.

mod events;
mod keys;
mod signal;

use std::borrow::Cow;

use serde::Deserialize;
use thiserror::Error;

pub use events::{parse_input, rumble_message};
pub use keys::{KEY_CODES, vk_for_code};
pub use signal::{Hello, HostSignal, IceServer, SignalMessage};

/// Longest input message accepted, in bytes (the largest real one, a gamepad state, is ~200).
pub const MAX_INPUT_LEN: usize = 4096;

/// Longest signalling message accepted, in bytes: room for an SDP answer with many codecs.
pub const MAX_SIGNAL_LEN: usize = 65536;

/// Longest peer text an error message quotes, in characters, so logging one stays cheap.
const MAX_QUOTED_CHARS: usize = 64;

/// Why a browser message was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum BrowserError {
    /// The message is longer than the limit for its channel.
    #[error("browser message is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// Bytes received.
        len: usize,
        /// The limit: [`MAX_INPUT_LEN`] or [`MAX_SIGNAL_LEN`].
        max: usize,
    },
    /// Not JSON, or JSON of the wrong shape; serde_json's message, with line and column.
    #[error("malformed browser message: {0}")]
    Json(String),
    /// The `type` (signalling) or `t` (input) field names no message this host knows.
    #[error("unknown browser message type {0:?}")]
    UnknownType(String),
    /// A key event's `code` is not in [`KEY_CODES`].
    #[error("unknown key code {0:?}")]
    UnknownKey(String),
    /// A number outside the range its field allows.
    #[error("{field} is {value}, outside {min}..={max}")]
    OutOfRange {
        /// The JSON field.
        field: &'static str,
        /// The value received.
        value: f64,
        /// Smallest value allowed.
        min: f64,
        /// Largest value allowed.
        max: f64,
    },
    /// A string field longer than its limit.
    #[error("{field} is {len} bytes, more than the {max} allowed")]
    FieldTooLong {
        /// The JSON field.
        field: &'static str,
        /// Bytes received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An array field with more entries than its limit.
    #[error("{field} has {len} entries, more than the {max} allowed")]
    TooManyEntries {
        /// The JSON field.
        field: &'static str,
        /// Entries received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A string field that must not be empty is.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// A field that must be a hex string holds other characters.
    #[error("{0} is not a hex string")]
    NotHex(&'static str),
    /// A string field holds none of the values it allows.
    #[error("{field} has unknown value {value:?}")]
    InvalidValue {
        /// The JSON field.
        field: &'static str,
        /// The value received (at most 64 characters of it).
        value: String,
    },
}

/// Rejects `text` longer than `max` bytes, before any parsing.
fn check_len(text: &str, max: usize) -> Result<(), BrowserError> {
    if text.len() > max {
        return Err(BrowserError::TooLong {
            len: text.len(),
            max,
        });
    }
    Ok(())
}

/// The discriminating field alone; a first pass reads it so an unknown message type is reported
/// by name rather than as serde's list of expected variants.
#[derive(Deserialize)]
struct TypeField<'a> {
    #[serde(borrow, rename = "type")]
    value: Cow<'a, str>,
}

/// The input channel's discriminating field, `t` (short: input messages are frequent).
#[derive(Deserialize)]
struct TField<'a> {
    #[serde(borrow, rename = "t")]
    value: Cow<'a, str>,
}

/// Deserialises `text`, keeping serde_json's message (which names the line and column) but
/// quoting at most a bounded part of whatever peer text it echoes.
fn from_json<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, BrowserError> {
    serde_json::from_str(text).map_err(json_error)
}

fn json_error(error: serde_json::Error) -> BrowserError {
    let full = error.to_string();
    if error.line() == 0 {
        return BrowserError::Json(clip(&full, 2 * MAX_QUOTED_CHARS));
    }
    // serde_json quotes a mistyped string in full ("invalid type: string \"…\""), which can be
    // the whole message; cut the message short but keep the position at its end.
    let position = format!(" at line {} column {}", error.line(), error.column());
    let message = full.strip_suffix(position.as_str()).unwrap_or(&full);
    BrowserError::Json(format!("{}{position}", clip(message, 2 * MAX_QUOTED_CHARS)))
}

/// At most `max` characters of `text`, with an ellipsis when some were cut.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", text.get(..end).unwrap_or_default()),
        None => text.to_owned(),
    }
}

/// Peer text quoted in an error: at most [`MAX_QUOTED_CHARS`] characters.
fn quote(text: &str) -> String {
    clip(text, MAX_QUOTED_CHARS)
}

/// `value` as a `T` if it lies in `min..=max`, else an error naming `field` and the range.
fn ranged<T>(field: &'static str, value: i64, min: T, max: T) -> Result<T, BrowserError>
where
    T: Copy + Into<i64> + TryFrom<i64>,
{
    if (min.into()..=max.into()).contains(&value)
        && let Ok(value) = T::try_from(value)
    {
        return Ok(value);
    }
    // Only for the message: precision lost on huge values does not matter there.
    Err(BrowserError::OutOfRange {
        field,
        value: value as f64,
        min: min.into() as f64,
        max: max.into() as f64,
    })
}

/// `value` if it lies in `min..=max`, else an error naming `field` and the range.
fn ranged_f64(field: &'static str, value: f64, min: f64, max: f64) -> Result<f64, BrowserError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(BrowserError::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

/// `value` rounded to the nearest `i16` (browsers report fractional CSS pixels), or an error
/// naming `field` when it does not fit.
fn round_i16(field: &'static str, value: f64) -> Result<i16, BrowserError> {
    let min = f64::from(i16::MIN);
    let max = f64::from(i16::MAX);
    if (min..=max).contains(&value.round()) {
        // In range after rounding, so the cast is exact.
        Ok(value.round() as i16)
    } else {
        Err(BrowserError::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

/// Entry points for the fuzz target `browser_message`; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use super::signal::{BITRATES, FPS, HEIGHTS, WIDTHS};
    use super::{HostSignal, SignalMessage, parse_input};
    use crate::input::InputEvent;

    /// Feeds UTF-8 `data` to both browser parsers. Every input event produced must survive
    /// Moonlight's own packet encoding (so the router sees nothing a client could not send),
    /// every accepted hello must be in range, and peer text echoed in a host message must
    /// come back unchanged.
    pub fn message(data: &[u8]) {
        let Ok(text) = core::str::from_utf8(data) else {
            return;
        };
        if let Ok(SignalMessage::Hello(hello)) = SignalMessage::parse(text) {
            let within = |value: u32, (min, max): (u32, u32)| (min..=max).contains(&value);
            assert!(within(hello.width, WIDTHS), "{hello:?}");
            assert!(within(hello.height, HEIGHTS), "{hello:?}");
            assert!(within(hello.fps, FPS), "{hello:?}");
            assert!(
                hello.bitrate_kbps.is_none_or(|b| within(b, BITRATES)),
                "{hello:?}"
            );
        }
        if let Ok(events) = parse_input(text) {
            for event in events {
                assert_eq!(InputEvent::parse(&event.encode()), Ok(event));
            }
        }
        let reply = HostSignal::Error {
            message: text.to_owned(),
        };
        let json = reply.to_json();
        assert_eq!(
            serde_json::from_str::<HostSignal>(&json).ok(),
            Some(reply),
            "{json}"
        );
    }
}

#[cfg(test)]
pub(crate) mod tests;
