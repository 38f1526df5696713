//! Input packets carried inside control messages of type 0x0206: the envelope of
//! `docs/PROTOCOL.md` §3.6 and every event layout of §3.7.
//!
//! [`InputEvent::parse`] takes exactly one input packet (the whole control payload) and returns a
//! typed event; [`InputEvent::encode`] writes the client's byte layout back, which the tests and
//! the fuzz target use for round trips. Byte order is mixed on purpose: the `size` field and the
//! mouse and scroll fields are big-endian, everything else is little-endian.

use thiserror::Error;

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

/// Mouse button press or release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonAction {
    /// Pressed (magic 0x08).
    Down,
    /// Released (magic 0x09).
    Up,
}

/// A mouse button, as numbered on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MouseButton {
    /// 1.
    Left,
    /// 2.
    Middle,
    /// 3.
    Right,
    /// 4.
    X1,
    /// 5.
    X2,
}

impl MouseButton {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Left => 1,
            Self::Middle => 2,
            Self::Right => 3,
            Self::X1 => 4,
            Self::X2 => 5,
        }
    }

    fn from_u8(value: u8) -> Result<Self, InputError> {
        Ok(match value {
            1 => Self::Left,
            2 => Self::Middle,
            3 => Self::Right,
            4 => Self::X1,
            5 => Self::X2,
            _ => return Err(invalid("mouse button", value.into())),
        })
    }
}

/// Touch and pen event types (§3.7 value tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TouchEventType {
    /// 0: hovering.
    Hover,
    /// 1: contact started.
    Down,
    /// 2: contact ended.
    Up,
    /// 3: contact moved.
    Move,
    /// 4: cancel this pointer (only the pointer id is valid).
    Cancel,
    /// 5: pen buttons changed only.
    ButtonOnly,
    /// 6: hover ended.
    HoverLeave,
    /// 7: cancel every pointer.
    CancelAll,
}

impl TouchEventType {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Hover => 0,
            Self::Down => 1,
            Self::Up => 2,
            Self::Move => 3,
            Self::Cancel => 4,
            Self::ButtonOnly => 5,
            Self::HoverLeave => 6,
            Self::CancelAll => 7,
        }
    }

    fn from_u8(value: u8) -> Result<Self, InputError> {
        Ok(match value {
            0 => Self::Hover,
            1 => Self::Down,
            2 => Self::Up,
            3 => Self::Move,
            4 => Self::Cancel,
            5 => Self::ButtonOnly,
            6 => Self::HoverLeave,
            7 => Self::CancelAll,
            _ => return Err(invalid("touch event type", value.into())),
        })
    }
}

/// Pen tool type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PenTool {
    /// 0: unknown.
    Unknown,
    /// 1: pen tip.
    Pen,
    /// 2: eraser.
    Eraser,
}

impl PenTool {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::Pen => 1,
            Self::Eraser => 2,
        }
    }

    fn from_u8(value: u8) -> Result<Self, InputError> {
        Ok(match value {
            0 => Self::Unknown,
            1 => Self::Pen,
            2 => Self::Eraser,
            _ => return Err(invalid("pen tool", value.into())),
        })
    }
}

/// Controller motion sensor; also the `motionType` of host message 0x5501.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MotionType {
    /// 1: accelerometer, m/s² including gravity.
    Accelerometer,
    /// 2: gyroscope, degrees per second.
    Gyroscope,
}

impl MotionType {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Accelerometer => 1,
            Self::Gyroscope => 2,
        }
    }

    /// Decodes the wire value; `None` for anything but 1 or 2.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Accelerometer),
            2 => Some(Self::Gyroscope),
            _ => None,
        }
    }
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

/// Body of a key down or key up event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEvent {
    /// Sunshine flags: 0x01 = the key code is not normalised to the US layout.
    pub flags: u8,
    /// The keyCode field as sent (LE16); moonlight-qt sets 0x8000.
    pub raw_key_code: u16,
    /// Modifier bits: Shift 0x01, Ctrl 0x02, Alt 0x04, Meta 0x08.
    pub modifiers: u8,
}

impl KeyEvent {
    /// The Windows virtual-key code: the low byte of [`Self::raw_key_code`].
    pub fn key_code(&self) -> u8 {
        let [low, _high] = self.raw_key_code.to_le_bytes();
        low
    }
}

/// Moonlight's gamepad button flags (`buttonFlags`, and `buttonFlags2` shifted left by 16;
/// moonlight-common-c's `*_FLAG`): the virtual pads and the browser parser read these.
pub mod button {
    /// D-pad up.
    pub const UP: u32 = 0x0001;
    /// D-pad down.
    pub const DOWN: u32 = 0x0002;
    /// D-pad left.
    pub const LEFT: u32 = 0x0004;
    /// D-pad right.
    pub const RIGHT: u32 = 0x0008;
    /// Start / Menu / Options / Plus.
    pub const PLAY: u32 = 0x0010;
    /// Back / View / Create / Minus.
    pub const BACK: u32 = 0x0020;
    /// Left stick click.
    pub const LS_CLICK: u32 = 0x0040;
    /// Right stick click.
    pub const RS_CLICK: u32 = 0x0080;
    /// Left shoulder.
    pub const LB: u32 = 0x0100;
    /// Right shoulder.
    pub const RB: u32 = 0x0200;
    /// Guide / PS / Home.
    pub const SPECIAL: u32 = 0x0400;
    /// South face button (A on Xbox).
    pub const A: u32 = 0x1000;
    /// East face button (B on Xbox).
    pub const B: u32 = 0x2000;
    /// West face button (X on Xbox).
    pub const X: u32 = 0x4000;
    /// North face button (Y on Xbox).
    pub const Y: u32 = 0x8000;
    /// Paddle 1 (upper right, SDL numbering).
    pub const PADDLE1: u32 = 0x01_0000;
    /// Paddle 2 (upper left).
    pub const PADDLE2: u32 = 0x02_0000;
    /// Paddle 3 (lower right).
    pub const PADDLE3: u32 = 0x04_0000;
    /// Paddle 4 (lower left).
    pub const PADDLE4: u32 = 0x08_0000;
    /// Touchpad click.
    pub const TOUCHPAD: u32 = 0x10_0000;
    /// Share / Mic / Capture.
    pub const MISC: u32 = 0x20_0000;
}

/// State of one gamepad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerState {
    /// Controller number, 0–15.
    pub controller_number: u16,
    /// One bit per attached pad; a cleared bit signals removal.
    pub active_gamepad_mask: u16,
    /// Button flags: `buttonFlags | buttonFlags2 << 16`.
    pub buttons: u32,
    /// Left trigger, 0–255.
    pub left_trigger: u8,
    /// Right trigger, 0–255.
    pub right_trigger: u8,
    /// Left stick x.
    pub left_stick_x: i16,
    /// Left stick y.
    pub left_stick_y: i16,
    /// Right stick x.
    pub right_stick_x: i16,
    /// Right stick y.
    pub right_stick_y: i16,
}

/// A gamepad announcing itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerArrival {
    /// Controller number.
    pub controller_number: u8,
    /// Type: 0 unknown, 1 Xbox, 2 PlayStation, 3 Nintendo, 4 Steam (kept raw: an open set).
    pub controller_type: u8,
    /// Capability bits (0x01 analog triggers … 0x100 dual touchpad).
    pub capabilities: u16,
    /// Button flags the pad has.
    pub supported_buttons: u32,
}

/// A touch-screen contact; coordinates are normalised to 0–1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TouchEvent {
    /// Event type.
    pub event_type: TouchEventType,
    /// Contact rotation in degrees, [`ROTATION_UNKNOWN`] if unknown.
    pub rotation: u16,
    /// Pointer id.
    pub pointer_id: u32,
    /// x, 0–1.
    pub x: f32,
    /// y, 0–1.
    pub y: f32,
    /// Pressure when touching, distance when hovering.
    pub pressure_or_distance: f32,
    /// Contact ellipse major axis.
    pub contact_area_major: f32,
    /// Contact ellipse minor axis.
    pub contact_area_minor: f32,
}

/// Rotation value meaning "unknown" in touch and pen events.
pub const ROTATION_UNKNOWN: u16 = 0xFFFF;

/// Tilt value meaning "unknown" in pen events.
pub const TILT_UNKNOWN: u8 = 0xFF;

/// A pen sample; coordinates are normalised to 0–1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PenEvent {
    /// Event type.
    pub event_type: TouchEventType,
    /// Tool.
    pub tool: PenTool,
    /// Pen buttons: 0x01 primary, 0x02 secondary, 0x04 tertiary.
    pub buttons: u8,
    /// x, 0–1.
    pub x: f32,
    /// y, 0–1.
    pub y: f32,
    /// Pressure when touching, distance when hovering.
    pub pressure_or_distance: f32,
    /// Rotation in degrees, [`ROTATION_UNKNOWN`] if unknown.
    pub rotation: u16,
    /// Tilt in degrees 0–90, [`TILT_UNKNOWN`] if unknown.
    pub tilt: u8,
    /// Contact ellipse major axis.
    pub contact_area_major: f32,
    /// Contact ellipse minor axis.
    pub contact_area_minor: f32,
}

/// A gamepad touchpad contact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerTouch {
    /// Controller number.
    pub controller_number: u8,
    /// Event type.
    pub event_type: TouchEventType,
    /// Touchpad index: 0, or 1 on dual-touchpad pads.
    pub touchpad_index: u8,
    /// Pointer id.
    pub pointer_id: u32,
    /// x, 0–1.
    pub x: f32,
    /// y, 0–1.
    pub y: f32,
    /// Pressure, 0–1.
    pub pressure: f32,
}

/// A gamepad motion sample (SDL axes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerMotion {
    /// Controller number.
    pub controller_number: u8,
    /// Sensor.
    pub motion_type: MotionType,
    /// x.
    pub x: f32,
    /// y.
    pub y: f32,
    /// z.
    pub z: f32,
}

/// A gamepad battery report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerBattery {
    /// Controller number.
    pub controller_number: u8,
    /// 0 unknown, 1 not present, 2 discharging, 3 charging, 4 not charging, 5 full.
    pub state: u8,
    /// Percent, 0xFF if unknown.
    pub percent: u8,
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
        // returned if a layout here disagreed with its length; it is an error, never a panic.
        let event = match magic {
            magic::KEY_DOWN | magic::KEY_UP => {
                expect("key", 14)?;
                let key = KeyEvent {
                    flags: r.u8().ok_or(TOO_SHORT)?,
                    raw_key_code: r.le_u16().ok_or(TOO_SHORT)?,
                    modifiers: r.u8().ok_or(TOO_SHORT)?,
                };
                r.skip(2).ok_or(TOO_SHORT)?;
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
                Self::ControllerArrival(ControllerArrival {
                    controller_number: r.u8().ok_or(TOO_SHORT)?,
                    controller_type: r.u8().ok_or(TOO_SHORT)?,
                    capabilities: r.le_u16().ok_or(TOO_SHORT)?,
                    supported_buttons: r.le_u32().ok_or(TOO_SHORT)?,
                })
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
                let controller_number = r.u8().ok_or(TOO_SHORT)?;
                let raw_type = r.u8().ok_or(TOO_SHORT)?;
                let motion_type = MotionType::from_u8(raw_type)
                    .ok_or_else(|| invalid("motion type", raw_type.into()))?;
                r.skip(2).ok_or(TOO_SHORT)?;
                Self::ControllerMotion(ControllerMotion {
                    controller_number,
                    motion_type,
                    x: finite(&mut r, "motion x")?,
                    y: finite(&mut r, "motion y")?,
                    z: finite(&mut r, "motion z")?,
                })
            }
            magic::CONTROLLER_BATTERY => {
                expect("controller battery", 12)?;
                let battery = ControllerBattery {
                    controller_number: r.u8().ok_or(TOO_SHORT)?,
                    state: r.u8().ok_or(TOO_SHORT)?,
                    percent: r.u8().ok_or(TOO_SHORT)?,
                };
                r.skip(1).ok_or(TOO_SHORT)?;
                Self::ControllerBattery(battery)
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
            Self::KeyDown(key) | Self::KeyUp(key) => {
                w.u8(key.flags);
                w.le_u16(key.raw_key_code);
                w.u8(key.modifiers);
                w.le_u16(0);
            }
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
            Self::MultiController(c) => {
                let [b0, b1, b2, b3] = c.buttons.to_le_bytes();
                w.le_u16(0x001A);
                w.le_u16(c.controller_number);
                w.le_u16(c.active_gamepad_mask);
                w.le_u16(0x0014);
                w.bytes(&[b0, b1]);
                w.u8(c.left_trigger);
                w.u8(c.right_trigger);
                w.le_i16(c.left_stick_x);
                w.le_i16(c.left_stick_y);
                w.le_i16(c.right_stick_x);
                w.le_i16(c.right_stick_y);
                w.le_u16(0x009C);
                w.bytes(&[b2, b3]);
                w.le_u16(0x0055);
            }
            Self::ControllerArrival(a) => {
                w.u8(a.controller_number);
                w.u8(a.controller_type);
                w.le_u16(a.capabilities);
                w.le_u32(a.supported_buttons);
            }
            Self::Touch(t) => {
                w.u8(t.event_type.to_u8());
                w.u8(0);
                w.le_u16(t.rotation);
                w.le_u32(t.pointer_id);
                for f in [
                    t.x,
                    t.y,
                    t.pressure_or_distance,
                    t.contact_area_major,
                    t.contact_area_minor,
                ] {
                    w.le_f32(f);
                }
            }
            Self::Pen(p) => {
                w.u8(p.event_type.to_u8());
                w.u8(p.tool.to_u8());
                w.u8(p.buttons);
                w.u8(0);
                w.le_f32(p.x);
                w.le_f32(p.y);
                w.le_f32(p.pressure_or_distance);
                w.le_u16(p.rotation);
                w.u8(p.tilt);
                w.u8(0);
                w.le_f32(p.contact_area_major);
                w.le_f32(p.contact_area_minor);
            }
            Self::ControllerTouch(t) => {
                w.u8(t.controller_number);
                w.u8(t.event_type.to_u8());
                w.u8(0);
                w.u8(t.touchpad_index);
                w.le_u32(t.pointer_id);
                w.le_f32(t.x);
                w.le_f32(t.y);
                w.le_f32(t.pressure);
            }
            Self::ControllerMotion(m) => {
                w.u8(m.controller_number);
                w.u8(m.motion_type.to_u8());
                w.le_u16(0);
                w.le_f32(m.x);
                w.le_f32(m.y);
                w.le_f32(m.z);
            }
            Self::ControllerBattery(b) => {
                w.u8(b.controller_number);
                w.u8(b.state);
                w.u8(b.percent);
                w.u8(0);
            }
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

fn parse_controller(r: &mut Reader<'_>) -> Option<ControllerState> {
    let _header_b = r.le_u16()?;
    let controller_number = r.le_u16()?;
    let active_gamepad_mask = r.le_u16()?;
    let _mid_b = r.le_u16()?;
    let flags_low = r.le_u16()?;
    let left_trigger = r.u8()?;
    let right_trigger = r.u8()?;
    let left_stick_x = r.le_i16()?;
    let left_stick_y = r.le_i16()?;
    let right_stick_x = r.le_i16()?;
    let right_stick_y = r.le_i16()?;
    let _tail_a = r.le_u16()?;
    let flags_high = r.le_u16()?;
    let _tail_b = r.le_u16()?;
    Some(ControllerState {
        controller_number,
        active_gamepad_mask,
        buttons: u32::from(flags_low) | u32::from(flags_high) << 16,
        left_trigger,
        right_trigger,
        left_stick_x,
        left_stick_y,
        right_stick_x,
        right_stick_y,
    })
}

fn parse_touch(r: &mut Reader<'_>) -> Result<TouchEvent, InputError> {
    let event_type = TouchEventType::from_u8(r.u8().ok_or(TOO_SHORT)?)?;
    r.skip(1).ok_or(TOO_SHORT)?;
    Ok(TouchEvent {
        event_type,
        rotation: r.le_u16().ok_or(TOO_SHORT)?,
        pointer_id: r.le_u32().ok_or(TOO_SHORT)?,
        x: finite(r, "touch x")?,
        y: finite(r, "touch y")?,
        pressure_or_distance: finite(r, "touch pressure")?,
        contact_area_major: finite(r, "touch contact major")?,
        contact_area_minor: finite(r, "touch contact minor")?,
    })
}

fn parse_pen(r: &mut Reader<'_>) -> Result<PenEvent, InputError> {
    let event_type = TouchEventType::from_u8(r.u8().ok_or(TOO_SHORT)?)?;
    let tool = PenTool::from_u8(r.u8().ok_or(TOO_SHORT)?)?;
    let buttons = r.u8().ok_or(TOO_SHORT)?;
    r.skip(1).ok_or(TOO_SHORT)?;
    let x = finite(r, "pen x")?;
    let y = finite(r, "pen y")?;
    let pressure_or_distance = finite(r, "pen pressure")?;
    let rotation = r.le_u16().ok_or(TOO_SHORT)?;
    let tilt = r.u8().ok_or(TOO_SHORT)?;
    r.skip(1).ok_or(TOO_SHORT)?;
    Ok(PenEvent {
        event_type,
        tool,
        buttons,
        x,
        y,
        pressure_or_distance,
        rotation,
        tilt,
        contact_area_major: finite(r, "pen contact major")?,
        contact_area_minor: finite(r, "pen contact minor")?,
    })
}

fn parse_controller_touch(r: &mut Reader<'_>) -> Result<ControllerTouch, InputError> {
    let controller_number = r.u8().ok_or(TOO_SHORT)?;
    let event_type = TouchEventType::from_u8(r.u8().ok_or(TOO_SHORT)?)?;
    r.skip(1).ok_or(TOO_SHORT)?;
    Ok(ControllerTouch {
        controller_number,
        event_type,
        touchpad_index: r.u8().ok_or(TOO_SHORT)?,
        pointer_id: r.le_u32().ok_or(TOO_SHORT)?,
        x: finite(r, "controller touch x")?,
        y: finite(r, "controller touch y")?,
        pressure: finite(r, "controller touch pressure")?,
    })
}

fn finite(r: &mut Reader<'_>, field: &'static str) -> Result<f32, InputError> {
    let value = r.le_f32().ok_or(TOO_SHORT)?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(InputError::NonFiniteFloat { field })
    }
}

const TOO_SHORT: InputError = InputError::TooShort;

fn invalid(field: &'static str, value: u32) -> InputError {
    InputError::InvalidValue { field, value }
}

/// A borrowed cursor over untrusted bytes (rustls `codec::Reader` style): every read returns
/// `None` instead of panicking when too few bytes are left.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Takes the next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.buf.split_at_checked(n)?;
        self.buf = tail;
        Some(head)
    }

    /// Takes the next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// Skips `n` bytes.
    pub(crate) fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    /// Takes everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }

    /// Whether every byte has been consumed.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    pub(crate) fn le_u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    pub(crate) fn be_u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn le_i16(&mut self) -> Option<i16> {
        self.array().map(i16::from_le_bytes)
    }

    pub(crate) fn be_i16(&mut self) -> Option<i16> {
        self.array().map(i16::from_be_bytes)
    }

    pub(crate) fn le_u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    pub(crate) fn be_u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn le_u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    pub(crate) fn le_f32(&mut self) -> Option<f32> {
        self.array().map(f32::from_le_bytes)
    }
}

/// Appends fixed-width fields to a byte vector.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn le_u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }

    pub(crate) fn be_u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }

    pub(crate) fn le_i16(&mut self, v: i16) {
        self.bytes(&v.to_le_bytes());
    }

    pub(crate) fn be_i16(&mut self, v: i16) {
        self.bytes(&v.to_be_bytes());
    }

    pub(crate) fn le_u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    pub(crate) fn be_u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }

    pub(crate) fn le_u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    pub(crate) fn le_f32(&mut self, v: f32) {
        self.bytes(&v.to_le_bytes());
    }
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
