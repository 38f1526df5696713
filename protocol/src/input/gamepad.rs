//! Gamepad input: Moonlight's button flags, the controller state, arrival, touchpad, motion and
//! battery bodies, and their wire layouts.

use super::{InputError, TOO_SHORT, TouchEventType, finite, invalid};
use crate::codec::{Reader, Writer};

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

/// Reads a multi-controller body; `None` if it is cut short.
pub(super) fn parse_controller(r: &mut Reader<'_>) -> Option<ControllerState> {
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

/// Writes a multi-controller body in the layout [`parse_controller`] reads, constants included.
pub(super) fn encode_controller(c: &ControllerState, w: &mut Writer) {
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

/// Reads a controller arrival body.
pub(super) fn parse_arrival(r: &mut Reader<'_>) -> Result<ControllerArrival, InputError> {
    Ok(ControllerArrival {
        controller_number: r.u8().ok_or(TOO_SHORT)?,
        controller_type: r.u8().ok_or(TOO_SHORT)?,
        capabilities: r.le_u16().ok_or(TOO_SHORT)?,
        supported_buttons: r.le_u32().ok_or(TOO_SHORT)?,
    })
}

/// Writes a controller arrival body in the layout [`parse_arrival`] reads.
pub(super) fn encode_arrival(a: &ControllerArrival, w: &mut Writer) {
    w.u8(a.controller_number);
    w.u8(a.controller_type);
    w.le_u16(a.capabilities);
    w.le_u32(a.supported_buttons);
}

/// Reads a controller touch body.
pub(super) fn parse_controller_touch(r: &mut Reader<'_>) -> Result<ControllerTouch, InputError> {
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

/// Writes a controller touch body in the layout [`parse_controller_touch`] reads.
pub(super) fn encode_controller_touch(t: &ControllerTouch, w: &mut Writer) {
    w.u8(t.controller_number);
    w.u8(t.event_type.to_u8());
    w.u8(0);
    w.u8(t.touchpad_index);
    w.le_u32(t.pointer_id);
    w.le_f32(t.x);
    w.le_f32(t.y);
    w.le_f32(t.pressure);
}

/// Reads a controller motion body.
pub(super) fn parse_motion(r: &mut Reader<'_>) -> Result<ControllerMotion, InputError> {
    let controller_number = r.u8().ok_or(TOO_SHORT)?;
    let raw_type = r.u8().ok_or(TOO_SHORT)?;
    let motion_type =
        MotionType::from_u8(raw_type).ok_or_else(|| invalid("motion type", raw_type.into()))?;
    r.skip(2).ok_or(TOO_SHORT)?;
    Ok(ControllerMotion {
        controller_number,
        motion_type,
        x: finite(r, "motion x")?,
        y: finite(r, "motion y")?,
        z: finite(r, "motion z")?,
    })
}

/// Writes a controller motion body in the layout [`parse_motion`] reads.
pub(super) fn encode_motion(m: &ControllerMotion, w: &mut Writer) {
    w.u8(m.controller_number);
    w.u8(m.motion_type.to_u8());
    w.le_u16(0);
    w.le_f32(m.x);
    w.le_f32(m.y);
    w.le_f32(m.z);
}

/// Reads a controller battery body (three fields and a byte of padding).
pub(super) fn parse_battery(r: &mut Reader<'_>) -> Result<ControllerBattery, InputError> {
    let battery = ControllerBattery {
        controller_number: r.u8().ok_or(TOO_SHORT)?,
        state: r.u8().ok_or(TOO_SHORT)?,
        percent: r.u8().ok_or(TOO_SHORT)?,
    };
    r.skip(1).ok_or(TOO_SHORT)?;
    Ok(battery)
}

/// Writes a controller battery body in the layout [`parse_battery`] reads.
pub(super) fn encode_battery(b: &ControllerBattery, w: &mut Writer) {
    w.u8(b.controller_number);
    w.u8(b.state);
    w.u8(b.percent);
    w.u8(0);
}
