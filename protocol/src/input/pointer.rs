//! Pointer input: mouse buttons, touch-screen contacts and pen samples, with the touch and pen
//! wire layouts. Mouse motion, button and scroll fields sit on [`InputEvent`](super::InputEvent)
//! itself, so its dispatch lays those out.

use super::{InputError, TOO_SHORT, finite, invalid};
use crate::codec::{Reader, Writer};

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

    pub(super) fn from_u8(value: u8) -> Result<Self, InputError> {
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

    pub(super) fn from_u8(value: u8) -> Result<Self, InputError> {
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

/// Reads a touch body.
pub(super) fn parse_touch(r: &mut Reader<'_>) -> Result<TouchEvent, InputError> {
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

/// Writes a touch body in the layout [`parse_touch`] reads.
pub(super) fn encode_touch(t: &TouchEvent, w: &mut Writer) {
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

/// Reads a pen body.
pub(super) fn parse_pen(r: &mut Reader<'_>) -> Result<PenEvent, InputError> {
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

/// Writes a pen body in the layout [`parse_pen`] reads.
pub(super) fn encode_pen(p: &PenEvent, w: &mut Writer) {
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
