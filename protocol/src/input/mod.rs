//! Input packets carried inside control messages of type 0x0206: the envelope of
//! `docs/PROTOCOL.md` §3.6 and every event layout of §3.7.
//!
//! [`InputEvent::parse`] takes exactly one input packet (the whole control payload) and returns a
//! typed event; [`InputEvent::encode`] writes the client's byte layout back, which the tests and
//! the fuzz target use for round trips. Byte order is mixed on purpose: the `size` field and the
//! mouse and scroll fields are big-endian, everything else is little-endian.
//!
//! The event bodies live by device, each type next to its wire layout: `keyboard` ([`KeyEvent`]),
//! `pointer` (mouse buttons, touch, pen) and `gamepad` (controllers and their [`button`] flags);
//! their types are re-exported here. The envelope, [`InputEvent`] and its dispatch are in this file.

use thiserror::Error;

pub use self::gamepad::{
    ControllerArrival, ControllerBattery, ControllerMotion, ControllerState, ControllerTouch,
    MotionType, button,
};
use self::gamepad::{
    encode_arrival, encode_battery, encode_controller, encode_controller_touch, encode_motion,
    parse_arrival, parse_battery, parse_controller, parse_controller_touch, parse_motion,
};
pub use self::keyboard::KeyEvent;
use self::keyboard::{encode_key, parse_key};
pub use self::pointer::{
    ButtonAction, MouseButton, PenEvent, PenTool, ROTATION_UNKNOWN, TILT_UNKNOWN, TouchEvent,
    TouchEventType,
};
use self::pointer::{encode_pen, encode_touch, parse_pen, parse_touch};
use crate::codec::{Reader, Writer};

mod gamepad;
mod keyboard;
mod pointer;

/// Largest input packet accepted, in bytes. The biggest layout (touch and pen) is 36 bytes and
/// UTF-8 text is at most 40; anything far beyond that is not a Moonlight input packet.
pub const MAX_INPUT_PACKET_LEN: usize = 1024;

/// Most UTF-8 bytes a text event may carry (`UTF8_TEXT_EVENT_MAX_COUNT`).
pub const MAX_UTF8_TEXT_LEN: usize = 32;

/// Length of the `size` + `magic` header that starts every input packet.
pub const INPUT_HEADER_LEN: usize = 8;

/// The event-type magics of §3.7 (LE32 on the wire).
pub mod magic {
    /// Key down.
    pub const KEY_DOWN: u32 = 0x0000_0003;
    /// Key up.
    pub const KEY_UP: u32 = 0x0000_0004;
    /// Absolute mouse position.
    pub const MOUSE_MOVE_ABSOLUTE: u32 = 0x0000_0005;
    /// Relative mouse motion (generation ≥ 5).
    pub const MOUSE_MOVE_RELATIVE: u32 = 0x0000_0007;
    /// Mouse button pressed (generation ≥ 5).
    pub const MOUSE_BUTTON_DOWN: u32 = 0x0000_0008;
    /// Mouse button released (generation ≥ 5).
    pub const MOUSE_BUTTON_UP: u32 = 0x0000_0009;
    /// Vertical scroll (generation ≥ 5).
    pub const SCROLL_VERTICAL: u32 = 0x0000_000A;
    /// Multi-controller state (generation ≥ 5).
    pub const MULTI_CONTROLLER: u32 = 0x0000_000C;
    /// Enable haptics; equal to the generation-4 multi-controller magic.
    pub const ENABLE_HAPTICS: u32 = 0x0000_000D;
    /// One UTF-8 code point.
    pub const UTF8_TEXT: u32 = 0x0000_0017;
    /// Horizontal scroll (Sunshine extension).
    pub const SCROLL_HORIZONTAL: u32 = 0x5500_0001;
    /// Touch (Sunshine extension).
    pub const TOUCH: u32 = 0x5500_0002;
    /// Pen (Sunshine extension).
    pub const PEN: u32 = 0x5500_0003;
    /// Controller arrival (Sunshine extension).
    pub const CONTROLLER_ARRIVAL: u32 = 0x5500_0004;
    /// Controller touchpad (Sunshine extension).
    pub const CONTROLLER_TOUCH: u32 = 0x5500_0005;
    /// Controller motion sensor (Sunshine extension).
    pub const CONTROLLER_MOTION: u32 = 0x5500_0006;
    /// Controller battery (Sunshine extension).
    pub const CONTROLLER_BATTERY: u32 = 0x5500_0007;
}

/// Why an input packet was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InputError {
    /// Fewer than 8 bytes: not even the `size` and `magic` fields are present.
    #[error("input packet shorter than its 8-byte header")]
    TooShort,
    /// The packet is longer than [`MAX_INPUT_PACKET_LEN`].
    #[error("input packet longer than {MAX_INPUT_PACKET_LEN} bytes")]
    TooLong,
    /// The BE32 `size` field does not equal the packet length minus 4.
    #[error("input size field {declared} does not match packet length minus 4 ({actual})")]
    SizeMismatch {
        /// Value of the `size` field.
        declared: u32,
        /// Bytes that actually follow the `size` field.
        actual: usize,
    },
    /// A known event arrived with a total length other than the one its layout has.
    #[error("{event} packet is {actual} bytes, expected {expected}")]
    WrongLength {
        /// The event kind.
        event: &'static str,
        /// Total length of the layout in §3.7.
        expected: usize,
        /// Total length received.
        actual: usize,
    },
    /// A UTF-8 text event with no text, or more than [`MAX_UTF8_TEXT_LEN`] bytes of it.
    #[error("UTF-8 text event carries {len} bytes, expected 1 to {MAX_UTF8_TEXT_LEN}")]
    TextLength {
        /// Bytes of text received.
        len: usize,
    },
    /// A UTF-8 text event whose bytes are not valid UTF-8.
    #[error("UTF-8 text event is not valid UTF-8")]
    InvalidUtf8,
    /// A field holds a value outside the set §3.7 defines for it.
    #[error("invalid value {value} for input field {field}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// The value received.
        value: u32,
    },
    /// A float field is NaN or infinite.
    #[error("input field {field} is not a finite number")]
    NonFiniteFloat {
        /// The field.
        field: &'static str,
    },
}

/// One decoded input packet.
#[derive(Debug, Clone, PartialEq)]
pub enum InputEvent {
    /// Key pressed (magic 0x03).
    KeyDown(KeyEvent),
    /// Key released (magic 0x04).
    KeyUp(KeyEvent),
    /// One code point of text (magic 0x17), at most 32 bytes of UTF-8.
    Utf8Text(String),
    /// Relative mouse motion (magic 0x07).
    MouseMoveRelative {
        /// Horizontal delta (BE16 signed).
        dx: i16,
        /// Vertical delta (BE16 signed).
        dy: i16,
    },
    /// Absolute mouse position (magic 0x05), relative to a reference area.
    MouseMoveAbsolute {
        /// x (BE16).
        x: i16,
        /// y (BE16).
        y: i16,
        /// Reference width; the client sends the real width minus 1 (BE16).
        width: i16,
        /// Reference height; the client sends the real height minus 1 (BE16).
        height: i16,
    },
    /// Mouse button (magic 0x08 down, 0x09 up).
    MouseButton {
        /// Press or release.
        action: ButtonAction,
        /// Which button.
        button: MouseButton,
    },
    /// Vertical scroll (magic 0x0A) in WHEEL_DELTA units, 120 per notch (BE16 signed).
    ScrollVertical(i16),
    /// Horizontal scroll (magic 0x55000001), in WHEEL_DELTA units (BE16 signed).
    ScrollHorizontal(i16),
    /// Full state of one gamepad (magic 0x0C).
    MultiController(ControllerState),
    /// A gamepad appeared (magic 0x55000004).
    ControllerArrival(ControllerArrival),
    /// Touch-screen contact (magic 0x55000002).
    Touch(TouchEvent),
    /// Pen (magic 0x55000003).
    Pen(PenEvent),
    /// Gamepad touchpad contact (magic 0x55000005).
    ControllerTouch(ControllerTouch),
    /// Gamepad motion sensor sample (magic 0x55000006).
    ControllerMotion(ControllerMotion),
    /// Gamepad battery state (magic 0x55000007).
    ControllerBattery(ControllerBattery),
    /// The client's haptics announcement (magic 0x0D); hosts may ignore it.
    EnableHaptics {
        /// The LE16 `enable` field is nonzero (the client sends 1).
        enabled: bool,
    },
    /// An event type this crate does not know; the body is skipped.
    Unknown {
        /// The LE32 magic.
        magic: u32,
    },
}

impl InputEvent {
    /// Parses exactly one input packet (§3.6 envelope plus a §3.7 body).
    pub fn parse(packet: &[u8]) -> Result<Self, InputError> {
        if packet.len() > MAX_INPUT_PACKET_LEN {
            return Err(InputError::TooLong);
        }
        let mut r = Reader::new(packet);
        let (Some(size), Some(magic)) = (r.be_u32(), r.le_u32()) else {
            return Err(InputError::TooShort);
        };
        let actual = packet.len() - 4;
        if usize::try_from(size).ok() != Some(actual) {
            return Err(InputError::SizeMismatch {
                declared: size,
                actual,
            });
        }
        let total = packet.len();
        let expect = |event: &'static str, expected: usize| {
            if total == expected {
                Ok(())
            } else {
                Err(InputError::WrongLength {
                    event,
                    expected,
                    actual: total,
                })
            }
        };

        // Every read below is within the length checked by `expect`, so `TOO_SHORT` can only be
        // returned if a body layout disagreed with its length; it is an error, never a panic.
        let event = match magic {
            magic::KEY_DOWN | magic::KEY_UP => {
                expect("key", 14)?;
                let key = parse_key(&mut r)?;
                if magic == magic::KEY_DOWN {
                    Self::KeyDown(key)
                } else {
                    Self::KeyUp(key)
                }
            }
            magic::UTF8_TEXT => {
                let text = r.rest();
                if text.is_empty() || text.len() > MAX_UTF8_TEXT_LEN {
                    return Err(InputError::TextLength { len: text.len() });
                }
                let text = core::str::from_utf8(text).map_err(|_| InputError::InvalidUtf8)?;
                Self::Utf8Text(text.to_owned())
            }
            magic::MOUSE_MOVE_RELATIVE => {
                expect("relative mouse", 12)?;
                Self::MouseMoveRelative {
                    dx: r.be_i16().ok_or(TOO_SHORT)?,
                    dy: r.be_i16().ok_or(TOO_SHORT)?,
                }
            }
            magic::MOUSE_MOVE_ABSOLUTE => {
                expect("absolute mouse", 18)?;
                let x = r.be_i16().ok_or(TOO_SHORT)?;
                let y = r.be_i16().ok_or(TOO_SHORT)?;
                r.skip(2).ok_or(TOO_SHORT)?;
                Self::MouseMoveAbsolute {
                    x,
                    y,
                    width: r.be_i16().ok_or(TOO_SHORT)?,
                    height: r.be_i16().ok_or(TOO_SHORT)?,
                }
            }
            magic::MOUSE_BUTTON_DOWN | magic::MOUSE_BUTTON_UP => {
                expect("mouse button", 9)?;
                Self::MouseButton {
                    action: if magic == magic::MOUSE_BUTTON_DOWN {
                        ButtonAction::Down
                    } else {
                        ButtonAction::Up
                    },
                    button: MouseButton::from_u8(r.u8().ok_or(TOO_SHORT)?)?,
                }
            }
            magic::SCROLL_VERTICAL => {
                expect("vertical scroll", 14)?;
                let amount = r.be_i16().ok_or(TOO_SHORT)?;
                r.skip(4).ok_or(TOO_SHORT)?;
                Self::ScrollVertical(amount)
            }
            magic::SCROLL_HORIZONTAL => {
                expect("horizontal scroll", 10)?;
                Self::ScrollHorizontal(r.be_i16().ok_or(TOO_SHORT)?)
            }
            magic::MULTI_CONTROLLER => {
                expect("multi-controller", 34)?;
                Self::MultiController(parse_controller(&mut r).ok_or(TOO_SHORT)?)
            }
            magic::CONTROLLER_ARRIVAL => {
                expect("controller arrival", 16)?;
                Self::ControllerArrival(parse_arrival(&mut r)?)
            }
            magic::TOUCH => {
                expect("touch", 36)?;
                Self::Touch(parse_touch(&mut r)?)
            }
            magic::PEN => {
                expect("pen", 36)?;
                Self::Pen(parse_pen(&mut r)?)
            }
            magic::CONTROLLER_TOUCH => {
                expect("controller touch", 28)?;
                Self::ControllerTouch(parse_controller_touch(&mut r)?)
            }
            magic::CONTROLLER_MOTION => {
                expect("controller motion", 24)?;
                Self::ControllerMotion(parse_motion(&mut r)?)
            }
            magic::CONTROLLER_BATTERY => {
                expect("controller battery", 12)?;
                Self::ControllerBattery(parse_battery(&mut r)?)
            }
            magic::ENABLE_HAPTICS => {
                expect("enable haptics", 10)?;
                Self::EnableHaptics {
                    enabled: r.le_u16().ok_or(TOO_SHORT)? != 0,
                }
            }
            other => {
                // Skip the body of an event we do not know; its length was checked above.
                r.rest();
                Self::Unknown { magic: other }
            }
        };
        debug_assert!(r.is_empty());
        Ok(event)
    }

    /// Serialises the event the way moonlight-common-c does (padding and constants included).
    ///
    /// [`InputEvent::Unknown`] encodes as a bare header with an empty body.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        let magic = self.magic();
        match self {
            Self::KeyDown(key) | Self::KeyUp(key) => encode_key(key, &mut w),
            Self::Utf8Text(text) => w.bytes(text.as_bytes()),
            Self::MouseMoveRelative { dx, dy } => {
                w.be_i16(*dx);
                w.be_i16(*dy);
            }
            Self::MouseMoveAbsolute {
                x,
                y,
                width,
                height,
            } => {
                w.be_i16(*x);
                w.be_i16(*y);
                w.be_i16(0);
                w.be_i16(*width);
                w.be_i16(*height);
            }
            Self::MouseButton { button, .. } => w.u8(button.to_u8()),
            Self::ScrollVertical(amount) => {
                w.be_i16(*amount);
                w.be_i16(*amount);
                w.be_i16(0);
            }
            Self::ScrollHorizontal(amount) => w.be_i16(*amount),
            Self::MultiController(c) => encode_controller(c, &mut w),
            Self::ControllerArrival(a) => encode_arrival(a, &mut w),
            Self::Touch(t) => encode_touch(t, &mut w),
            Self::Pen(p) => encode_pen(p, &mut w),
            Self::ControllerTouch(t) => encode_controller_touch(t, &mut w),
            Self::ControllerMotion(m) => encode_motion(m, &mut w),
            Self::ControllerBattery(b) => encode_battery(b, &mut w),
            Self::EnableHaptics { enabled } => w.le_u16(u16::from(*enabled)),
            Self::Unknown { .. } => {}
        }
        let body = w.into_inner();
        // The body is at most a few dozen bytes (text is capped at 32 by its constructor's
        // users; a longer String still cannot reach u32::MAX in practice), saturate to be safe.
        let size = u32::try_from(body.len().saturating_add(4)).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(INPUT_HEADER_LEN + body.len());
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&magic.to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// The LE32 magic this event is sent with.
    pub fn magic(&self) -> u32 {
        match self {
            Self::KeyDown(_) => magic::KEY_DOWN,
            Self::KeyUp(_) => magic::KEY_UP,
            Self::Utf8Text(_) => magic::UTF8_TEXT,
            Self::MouseMoveRelative { .. } => magic::MOUSE_MOVE_RELATIVE,
            Self::MouseMoveAbsolute { .. } => magic::MOUSE_MOVE_ABSOLUTE,
            Self::MouseButton {
                action: ButtonAction::Down,
                ..
            } => magic::MOUSE_BUTTON_DOWN,
            Self::MouseButton {
                action: ButtonAction::Up,
                ..
            } => magic::MOUSE_BUTTON_UP,
            Self::ScrollVertical(_) => magic::SCROLL_VERTICAL,
            Self::ScrollHorizontal(_) => magic::SCROLL_HORIZONTAL,
            Self::MultiController(_) => magic::MULTI_CONTROLLER,
            Self::ControllerArrival(_) => magic::CONTROLLER_ARRIVAL,
            Self::Touch(_) => magic::TOUCH,
            Self::Pen(_) => magic::PEN,
            Self::ControllerTouch(_) => magic::CONTROLLER_TOUCH,
            Self::ControllerMotion(_) => magic::CONTROLLER_MOTION,
            Self::ControllerBattery(_) => magic::CONTROLLER_BATTERY,
            Self::EnableHaptics { .. } => magic::ENABLE_HAPTICS,
            Self::Unknown { magic } => *magic,
        }
    }
}

/// Reads an LE32 float field, rejecting NaN and infinities.
fn finite(r: &mut Reader<'_>, field: &'static str) -> Result<f32, InputError> {
    let value = r.le_f32().ok_or(TOO_SHORT)?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(InputError::NonFiniteFloat { field })
    }
}

/// The error a read past the end of a body becomes.
const TOO_SHORT: InputError = InputError::TooShort;

/// A field value outside the set §3.7 defines for it.
fn invalid(field: &'static str, value: u32) -> InputError {
    InputError::InvalidValue { field, value }
}

/// Entry points for the fuzz targets in `fuzz/`; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use super::InputEvent;

    /// Parses an input packet; an accepted one must re-encode to an equal event.
    pub fn input(data: &[u8]) {
        if let Ok(event) = InputEvent::parse(data) {
            if let InputEvent::KeyDown(k) | InputEvent::KeyUp(k) = &event {
                let _ = k.key_code();
            }
            assert_eq!(InputEvent::parse(&event.encode()), Ok(event));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
