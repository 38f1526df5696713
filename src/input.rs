//! Where the client's input goes (PROTOCOL.md §3.7): keyboard, text, mouse, scroll, touch and
//! pen into the session's desktop (the compositor's seat), gamepads into virtual pads. Sessions
//! without a desktop log keyboard and mouse input at debug level.

use std::sync::Mutex;
use std::time::Instant;

use hati_compositor::{
    InputEvent as SeatEvent, InputSender, PenEvent as SeatPen, PenKind, TouchKind, vk_to_evdev,
};
use hati_protocol::input::{
    ButtonAction, InputEvent, PenEvent, PenTool, TILT_UNKNOWN, TouchEvent, TouchEventType,
};

use crate::gamepad::{GamepadManager, PadView};

/// Receives the client's decoded input events, in order.
pub trait InputSink: Send + Sync {
    /// Handles one event that reached the host at `received`.
    fn handle(&self, event: InputEvent, received: Instant);

    /// The session ended: release devices now rather than when the last reference drops
    /// (an input event in flight may still hold one). Idempotent.
    fn release(&self) {}

    /// The session's virtual pads (none where input has no gamepads).
    fn gamepads(&self) -> Vec<PadView> {
        Vec::new()
    }
}

/// Logs every event at debug level (sessions without a desktop or gamepads).
#[derive(Debug, Default)]
pub struct LoggingInputSink;

impl InputSink for LoggingInputSink {
    fn handle(&self, event: InputEvent, _received: Instant) {
        tracing::debug!(?event, "input");
    }
}

/// A session's input: its desktop's seat and its virtual gamepads.
pub struct SessionInput {
    seat: Option<InputSender>,
    // Gamepad state changes per event; input arrives at human rates, not per frame.
    gamepads: Mutex<GamepadManager>,
}

impl SessionInput {
    /// Routes to `seat` (if the session has a desktop) and `gamepads`.
    pub fn new(seat: Option<InputSender>, gamepads: GamepadManager) -> Self {
        Self {
            seat,
            gamepads: Mutex::new(gamepads),
        }
    }
}

impl InputSink for SessionInput {
    fn handle(&self, event: InputEvent, received: Instant) {
        if matches!(
            event,
            InputEvent::MultiController(_) | InputEvent::ControllerArrival(_)
        ) {
            self.gamepads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .handle(&event);
            return;
        }
        let Some(seat) = &self.seat else {
            tracing::debug!(?event, "input for a session without a desktop");
            return;
        };
        for seat_event in to_seat_events(&event) {
            if let Err(error) = seat.send_received(seat_event, received) {
                tracing::debug!(%error, "the desktop is gone; input dropped");
            }
        }
    }

    fn release(&self) {
        self.remove_gamepads();
    }

    fn gamepads(&self) -> Vec<PadView> {
        self.gamepads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pads()
    }
}

impl SessionInput {
    fn remove_gamepads(&self) {
        self.gamepads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove_all();
    }
}

impl Drop for SessionInput {
    fn drop(&mut self) {
        self.remove_gamepads();
    }
}

/// Translates one Moonlight input event into seat events (none for events a seat has no use for).
pub fn to_seat_events(event: &InputEvent) -> Vec<SeatEvent> {
    match event {
        InputEvent::KeyDown(key) | InputEvent::KeyUp(key) => {
            let pressed = matches!(event, InputEvent::KeyDown(_));
            match vk_to_evdev(key.key_code()) {
                Some(linux_keycode) => vec![SeatEvent::KeyboardKey {
                    linux_keycode,
                    pressed,
                }],
                None => {
                    tracing::debug!(vk = key.key_code(), "key without a Linux equivalent");
                    Vec::new()
                }
            }
        }
        InputEvent::Utf8Text(text) => vec![SeatEvent::Text(text.clone())],
        InputEvent::MouseMoveRelative { dx, dy } => {
            vec![SeatEvent::PointerMotionRelative {
                dx: f64::from(*dx),
                dy: f64::from(*dy),
            }]
        }
        InputEvent::MouseMoveAbsolute {
            x,
            y,
            width,
            height,
        } => {
            // The client sends its reference size minus one: x runs over 0..=width.
            vec![SeatEvent::PointerMotionAbsolute {
                x: f64::from(*x),
                y: f64::from(*y),
                width: f64::from(*width).max(1.0),
                height: f64::from(*height).max(1.0),
            }]
        }
        InputEvent::MouseButton { action, button } => vec![SeatEvent::PointerButton {
            button: button.to_u8(),
            pressed: matches!(action, ButtonAction::Down),
        }],
        InputEvent::ScrollVertical(amount) => vec![SeatEvent::Scroll {
            vertical: i32::from(*amount),
            horizontal: 0,
        }],
        InputEvent::ScrollHorizontal(amount) => vec![SeatEvent::Scroll {
            vertical: 0,
            horizontal: i32::from(*amount),
        }],
        InputEvent::Touch(touch) => touch_event(touch).into_iter().collect(),
        InputEvent::Pen(pen) => pen_event(pen).into_iter().collect(),
        _ => Vec::new(),
    }
}

fn touch_event(touch: &TouchEvent) -> Option<SeatEvent> {
    let kind = match touch.event_type {
        TouchEventType::Down => TouchKind::Down,
        TouchEventType::Move => TouchKind::Move,
        // Cancelling one contact lifts it; cancel-all cancels every contact.
        TouchEventType::Up | TouchEventType::Cancel => TouchKind::Up,
        TouchEventType::CancelAll => TouchKind::Cancel,
        TouchEventType::Hover | TouchEventType::ButtonOnly | TouchEventType::HoverLeave => {
            return None;
        }
    };
    Some(SeatEvent::Touch {
        id: touch.pointer_id,
        kind,
        x: f64::from(touch.x).clamp(0.0, 1.0),
        y: f64::from(touch.y).clamp(0.0, 1.0),
    })
}

fn pen_event(pen: &PenEvent) -> Option<SeatEvent> {
    let kind = match pen.event_type {
        TouchEventType::Hover | TouchEventType::ButtonOnly => PenKind::Hover,
        TouchEventType::Down => PenKind::Down,
        TouchEventType::Move => PenKind::Move,
        TouchEventType::Up => PenKind::Up,
        TouchEventType::Cancel | TouchEventType::HoverLeave | TouchEventType::CancelAll => {
            PenKind::Leave
        }
    };
    // Moonlight sends tilt from vertical and its direction; Wayland wants tilt along x and y.
    let tilt = if pen.tilt == TILT_UNKNOWN {
        (0.0, 0.0)
    } else {
        let angle = f64::from(pen.tilt);
        let direction = if pen.rotation == u16::MAX {
            0.0
        } else {
            f64::from(pen.rotation).to_radians()
        };
        (angle * direction.sin(), -angle * direction.cos())
    };
    Some(SeatEvent::Pen(SeatPen {
        kind,
        x: f64::from(pen.x).clamp(0.0, 1.0),
        y: f64::from(pen.y).clamp(0.0, 1.0),
        pressure: if matches!(kind, PenKind::Down | PenKind::Move) {
            f64::from(pen.pressure_or_distance).clamp(0.0, 1.0)
        } else {
            0.0
        },
        tilt,
        buttons: u32::from(pen.buttons & 0x03),
        eraser: matches!(pen.tool, PenTool::Eraser),
    }))
}

#[cfg(test)]
mod tests {
    use hati_protocol::input::{KeyEvent, MouseButton};

    use super::*;

    #[test]
    fn keyboard_and_mouse_map_to_seat_events() {
        let key = KeyEvent {
            flags: 0,
            raw_key_code: 0x8041,
            modifiers: 0,
        };
        assert_eq!(
            to_seat_events(&InputEvent::KeyDown(key)),
            [SeatEvent::KeyboardKey {
                linux_keycode: 30,
                pressed: true
            }]
        );
        assert_eq!(
            to_seat_events(&InputEvent::MouseButton {
                action: ButtonAction::Up,
                button: MouseButton::Right
            }),
            [SeatEvent::PointerButton {
                button: 3,
                pressed: false
            }]
        );
        assert_eq!(
            to_seat_events(&InputEvent::ScrollVertical(-120)),
            [SeatEvent::Scroll {
                vertical: -120,
                horizontal: 0
            }]
        );
        assert_eq!(
            to_seat_events(&InputEvent::MouseMoveAbsolute {
                x: 639,
                y: 0,
                width: 1279,
                height: 719
            }),
            [SeatEvent::PointerMotionAbsolute {
                x: 639.0,
                y: 0.0,
                width: 1279.0,
                height: 719.0
            }]
        );
    }

    #[test]
    fn hover_touch_is_dropped_and_cancel_all_cancels() {
        let touch = |event_type| TouchEvent {
            event_type,
            rotation: 0,
            pointer_id: 3,
            x: 0.5,
            y: 2.0,
            pressure_or_distance: 1.0,
            contact_area_major: 0.0,
            contact_area_minor: 0.0,
        };
        assert!(to_seat_events(&InputEvent::Touch(touch(TouchEventType::Hover))).is_empty());
        assert_eq!(
            to_seat_events(&InputEvent::Touch(touch(TouchEventType::Down))),
            [SeatEvent::Touch {
                id: 3,
                kind: TouchKind::Down,
                x: 0.5,
                y: 1.0
            }]
        );
        assert!(matches!(
            to_seat_events(&InputEvent::Touch(touch(TouchEventType::CancelAll)))[..],
            [SeatEvent::Touch {
                kind: TouchKind::Cancel,
                ..
            }]
        ));
    }
}
