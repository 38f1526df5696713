//! Input on the play page's `input` data channel: JSON text messages with a `t` field, turned
//! into the [`InputEvent`]s a Moonlight client's input packets decode to.

use serde::Deserialize;

use super::{
    BrowserError, MAX_INPUT_LEN, TField, check_len, from_json, quote, ranged, ranged_f64,
    round_i16, vk_for_code,
};
use crate::input::{
    ButtonAction, ControllerArrival, ControllerState, InputEvent, KeyEvent, MAX_UTF8_TEXT_LEN,
    MouseButton, ROTATION_UNKNOWN, TouchEvent, TouchEventType, button as flag,
};

/// Flags of the W3C "standard" gamepad buttons 0–16, in order. The triggers (6 and 7) have no
/// flag: their analog values arrive in `lt` and `rt`.
const STANDARD_BUTTONS: [u32; 17] = [
    flag::A,
    flag::B,
    flag::X,
    flag::Y,
    flag::LB,
    flag::RB,
    0,
    0,
    flag::BACK,
    flag::PLAY,
    flag::LS_CLICK,
    flag::RS_CLICK,
    flag::UP,
    flag::DOWN,
    flag::LEFT,
    flag::RIGHT,
    flag::SPECIAL,
];

/// Every flag a standard-mapping pad can set, announced in its arrival.
const SUPPORTED_BUTTONS: u32 = flag::A
    | flag::B
    | flag::X
    | flag::Y
    | flag::LB
    | flag::RB
    | flag::BACK
    | flag::PLAY
    | flag::LS_CLICK
    | flag::RS_CLICK
    | flag::UP
    | flag::DOWN
    | flag::LEFT
    | flag::RIGHT
    | flag::SPECIAL;

/// `LI_CTYPE_XBOX`: the standard mapping is the Xbox layout (button 0 is the bottom face
/// button), and browsers do not reliably say which pad it really is.
const CONTROLLER_TYPE_XBOX: u8 = 1;

/// `LI_CCAP_ANALOG_TRIGGERS | LI_CCAP_RUMBLE`: the page sends analog triggers and plays rumble
/// through `GamepadHapticActuator`.
const CAPABILITIES: u16 = 0x01 | 0x02;

/// Highest controller number Moonlight has (its mask is 16 bits).
const MAX_PAD_INDEX: u8 = 15;

/// Most `buttons` or `axes` entries accepted; the standard mapping uses 17 and 4.
const MAX_PAD_ENTRIES: usize = 32;

/// A normal press: the key code carries moonlight-qt's 0x8000 bit and no flags, because a
/// `KeyboardEvent.code` is already a US-layout position (flag 0x01 would say it is not).
const KEY_CODE_HIGH_BITS: u16 = 0x8000;

#[derive(Deserialize)]
struct KeyWire {
    code: String,
}

#[derive(Deserialize)]
struct TextWire {
    text: String,
}

#[derive(Deserialize)]
struct MotionWire {
    dx: f64,
    dy: f64,
}

#[derive(Deserialize)]
struct AbsoluteWire {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

#[derive(Deserialize)]
struct ButtonWire {
    button: i64,
    down: bool,
}

#[derive(Deserialize)]
struct WheelWire {
    #[serde(default)]
    dx: f64,
    #[serde(default)]
    dy: f64,
}

#[derive(Deserialize)]
struct TouchWire {
    kind: String,
    id: i64,
    x: f64,
    y: f64,
}

#[derive(Deserialize)]
struct PadWire {
    index: i64,
    mask: Option<i64>,
    #[serde(default)]
    buttons: Vec<bool>,
    #[serde(default)]
    axes: Vec<f64>,
    #[serde(default)]
    lt: f64,
    #[serde(default)]
    rt: f64,
}

#[derive(Deserialize)]
struct PadOnWire {
    index: i64,
    mask: Option<i64>,
}

#[derive(Deserialize)]
struct PadOffWire {
    index: i64,
    // Required: without it the host would drop every other pad too.
    mask: i64,
}

/// Parses one input data-channel message of at most [`MAX_INPUT_LEN`] bytes into the events it
/// stands for (none for empty text or a zero scroll; two for `wh` with both axes, `padon`, or
/// long text).
pub fn parse_input(text: &str) -> Result<Vec<InputEvent>, BrowserError> {
    check_len(text, MAX_INPUT_LEN)?;
    let kind: TField<'_> = from_json(text)?;
    match kind.value.as_ref() {
        "kd" | "ku" => {
            let KeyWire { code } = from_json(text)?;
            let vk = vk_for_code(&code).ok_or_else(|| BrowserError::UnknownKey(quote(&code)))?;
            let key = KeyEvent {
                flags: 0,
                raw_key_code: KEY_CODE_HIGH_BITS | u16::from(vk),
                modifiers: 0,
            };
            Ok(vec![if kind.value == "kd" {
                InputEvent::KeyDown(key)
            } else {
                InputEvent::KeyUp(key)
            }])
        }
        "text" => {
            let TextWire { text } = from_json(text)?;
            Ok(text_events(&text))
        }
        "mm" => {
            let MotionWire { dx, dy } = from_json(text)?;
            Ok(vec![InputEvent::MouseMoveRelative {
                dx: round_i16("dx", dx)?,
                dy: round_i16("dy", dy)?,
            }])
        }
        "ma" => {
            let AbsoluteWire { x, y, w, h } = from_json(text)?;
            let w = ranged_f64("w", w.round(), 1.0, f64::from(i16::MAX))?;
            let h = ranged_f64("h", h.round(), 1.0, f64::from(i16::MAX))?;
            // Moonlight sends the reference size minus one (x runs over 0..=width).
            Ok(vec![InputEvent::MouseMoveAbsolute {
                x: round_i16("x", x)?,
                y: round_i16("y", y)?,
                width: round_i16("w", w - 1.0)?,
                height: round_i16("h", h - 1.0)?,
            }])
        }
        "mb" => {
            let ButtonWire { button, down } = from_json(text)?;
            // DOM `MouseEvent.button` numbering.
            let button = match ranged("button", button, 0u8, 4)? {
                0 => MouseButton::Left,
                1 => MouseButton::Middle,
                2 => MouseButton::Right,
                3 => MouseButton::X1,
                _ => MouseButton::X2,
            };
            let action = if down {
                ButtonAction::Down
            } else {
                ButtonAction::Up
            };
            Ok(vec![InputEvent::MouseButton { action, button }])
        }
        "wh" => {
            let WheelWire { dx, dy } = from_json(text)?;
            let mut events = Vec::new();
            let dy = clamp_i16(dy);
            if dy != 0 {
                events.push(InputEvent::ScrollVertical(dy));
            }
            let dx = clamp_i16(dx);
            if dx != 0 {
                events.push(InputEvent::ScrollHorizontal(dx));
            }
            Ok(events)
        }
        "touch" => Ok(vec![InputEvent::Touch(touch(from_json(text)?)?)]),
        "pad" => Ok(vec![InputEvent::MultiController(pad(from_json(text)?)?)]),
        "padon" => {
            let PadOnWire { index, mask } = from_json(text)?;
            let index = ranged("index", index, 0, MAX_PAD_INDEX)?;
            let mask = pad_mask(index, mask)?;
            // As moonlight-common-c's LiSendControllerArrivalEvent: the arrival, then an idle
            // state carrying the new mask.
            Ok(vec![
                InputEvent::ControllerArrival(ControllerArrival {
                    controller_number: index,
                    controller_type: CONTROLLER_TYPE_XBOX,
                    capabilities: CAPABILITIES,
                    supported_buttons: SUPPORTED_BUTTONS,
                }),
                InputEvent::MultiController(idle(index, mask)),
            ])
        }
        "padoff" => {
            let PadOffWire { index, mask } = from_json(text)?;
            let index = ranged("index", index, 0, MAX_PAD_INDEX)?;
            let mask = ranged("mask", mask, 0, u16::MAX)? & !(1 << index);
            // Moonlight clients signal removal with an idle state whose mask lacks the pad.
            Ok(vec![InputEvent::MultiController(idle(index, mask))])
        }
        other => Err(BrowserError::UnknownType(quote(other))),
    }
}

/// `{"t":"rumble","index":0,"low":…,"high":…}`: rumble for the page to play on pad `index`
/// (motor strengths 0–65535, as in Moonlight's rumble message).
pub fn rumble_message(index: u8, low: u16, high: u16) -> String {
    format!(r#"{{"t":"rumble","index":{index},"low":{low},"high":{high}}}"#)
}

/// Text as UTF-8 events of at most [`MAX_UTF8_TEXT_LEN`] bytes, split between characters.
fn text_events(text: &str) -> Vec<InputEvent> {
    let mut events = Vec::new();
    let mut start = 0;
    for (at, c) in text.char_indices() {
        if at + c.len_utf8() - start > MAX_UTF8_TEXT_LEN {
            events.extend(
                text.get(start..at)
                    .map(|s| InputEvent::Utf8Text(s.to_owned())),
            );
            start = at;
        }
    }
    if let Some(rest) = text.get(start..).filter(|rest| !rest.is_empty()) {
        events.push(InputEvent::Utf8Text(rest.to_owned()));
    }
    events
}

/// `value` rounded and clamped to `i16` (scroll amounts saturate rather than fail).
fn clamp_i16(value: f64) -> i16 {
    // `as` saturates, so this is the clamp; JSON has no NaN.
    value.round() as i16
}

fn touch(wire: TouchWire) -> Result<TouchEvent, BrowserError> {
    let (event_type, pressure) = match wire.kind.as_str() {
        "down" => (TouchEventType::Down, 1.0),
        "move" => (TouchEventType::Move, 1.0),
        "up" => (TouchEventType::Up, 0.0),
        "cancel" => (TouchEventType::Cancel, 0.0),
        other => {
            return Err(BrowserError::InvalidValue {
                field: "kind",
                value: quote(other),
            });
        }
    };
    // Narrowing to f32 keeps a value in 0..=1 in 0..=1.
    let x = ranged_f64("x", wire.x, 0.0, 1.0)? as f32;
    let y = ranged_f64("y", wire.y, 0.0, 1.0)? as f32;
    Ok(TouchEvent {
        event_type,
        rotation: ROTATION_UNKNOWN,
        pointer_id: ranged("id", wire.id, 0, u32::MAX)?,
        x,
        y,
        pressure_or_distance: pressure,
        // Moonlight's "unknown" contact area: browsers' Touch.radiusX/Y are too unreliable.
        contact_area_major: 0.0,
        contact_area_minor: 0.0,
    })
}

fn pad(wire: PadWire) -> Result<ControllerState, BrowserError> {
    let index = ranged("index", wire.index, 0, MAX_PAD_INDEX)?;
    for (field, len) in [("buttons", wire.buttons.len()), ("axes", wire.axes.len())] {
        if len > MAX_PAD_ENTRIES {
            return Err(BrowserError::TooManyEntries {
                field,
                len,
                max: MAX_PAD_ENTRIES,
            });
        }
    }
    // Missing buttons are released, extra ones (beyond the standard 17) ignored.
    let buttons = wire
        .buttons
        .iter()
        .zip(STANDARD_BUTTONS)
        .filter(|&(&pressed, _)| pressed)
        .fold(0, |flags, (_, flag)| flags | flag);
    let axis = |n: usize| wire.axes.get(n).copied().unwrap_or(0.0);
    Ok(ControllerState {
        controller_number: u16::from(index),
        active_gamepad_mask: pad_mask(index, wire.mask)?,
        buttons,
        left_trigger: trigger(wire.lt),
        right_trigger: trigger(wire.rt),
        // The browser's y axes point down, Moonlight's (XInput's) up.
        left_stick_x: stick(axis(0)),
        left_stick_y: stick(-axis(1)),
        right_stick_x: stick(axis(2)),
        right_stick_y: stick(-axis(3)),
    })
}

/// The mask the page sent (default: this pad alone), always including this pad: a message
/// about pad `index` means it is connected.
fn pad_mask(index: u8, mask: Option<i64>) -> Result<u16, BrowserError> {
    let mask = match mask {
        Some(mask) => ranged("mask", mask, 0, u16::MAX)?,
        None => 0,
    };
    Ok(mask | 1 << index)
}

/// A pad with nothing pressed and the sticks centred.
fn idle(index: u8, mask: u16) -> ControllerState {
    ControllerState {
        controller_number: u16::from(index),
        active_gamepad_mask: mask,
        buttons: 0,
        left_trigger: 0,
        right_trigger: 0,
        left_stick_x: 0,
        left_stick_y: 0,
        right_stick_x: 0,
        right_stick_y: 0,
    }
}

/// A stick axis, -1..=1, as a signed 16-bit value using the whole range.
fn stick(value: f64) -> i16 {
    let value = value.clamp(-1.0, 1.0);
    let scale = if value < 0.0 {
        -f64::from(i16::MIN)
    } else {
        f64::from(i16::MAX)
    };
    // In range after the clamp; `as` would saturate anyway.
    (value * scale).round() as i16
}

/// A trigger, 0..=1, as 0–255.
fn trigger(value: f64) -> u8 {
    (value.clamp(0.0, 1.0) * 255.0).round() as u8
}
