//! Pointer input: motion (honouring pointer constraints), buttons and wheel scrolling.

use smithay::{
    backend::input::{Axis, AxisSource, ButtonState},
    input::pointer::{AxisFrame, ButtonEvent, MotionEvent, RelativeMotionEvent},
    reexports::wayland_server::protocol::wl_surface::WlSurface,
    utils::{Logical, Point, SERIAL_COUNTER},
    wayland::pointer_constraints::{PointerConstraint, with_pointer_constraint},
};
use tracing::debug;

use crate::state::State;

/// Linux `BTN_LEFT`.
const BTN_LEFT: u32 = 0x110;
/// Linux `BTN_RIGHT`.
const BTN_RIGHT: u32 = 0x111;
/// Linux `BTN_MIDDLE`.
const BTN_MIDDLE: u32 = 0x112;
/// Linux `BTN_SIDE` (X1, "back").
const BTN_SIDE: u32 = 0x113;
/// Linux `BTN_EXTRA` (X2, "forward").
const BTN_EXTRA: u32 = 0x114;
/// Windows `WHEEL_DELTA`: one notch of a wheel.
const WHEEL_DELTA: f64 = 120.0;
/// `wl_pointer.axis` distance of one wheel notch (libinput's convention).
const AXIS_PER_NOTCH: f64 = 15.0;

impl State {
    pub(super) fn pointer_motion(
        &mut self,
        target: Point<f64, Logical>,
        delta: Option<(f64, f64)>,
        time: u32,
    ) {
        let Some(pointer) = self.seat.get_pointer() else {
            return;
        };
        let under = self.surface_under(self.pointer_location);
        let mut locked = false;
        let mut confined = None;
        if let Some((surface, surface_loc)) = under
            .as_ref()
            .filter(|(surface, _)| pointer.current_focus().as_ref() == Some(surface))
        {
            with_pointer_constraint(surface, &pointer, |constraint| match constraint {
                Some(c) if c.is_active() => match &*c {
                    PointerConstraint::Locked(_) => locked = true,
                    PointerConstraint::Confined(confine) => {
                        confined = Some((surface.clone(), *surface_loc, confine.region().cloned()));
                    }
                },
                _ => {}
            });
        }
        if let Some((dx, dy)) = delta {
            pointer.relative_motion(
                self,
                under,
                &RelativeMotionEvent {
                    delta: (dx, dy).into(),
                    delta_unaccel: (dx, dy).into(),
                    utime: u64::from(time) * 1000,
                },
            );
        }
        if locked {
            pointer.frame(self);
            return;
        }
        let size = self.output_size();
        let target = Point::from((
            target.x.clamp(0.0, (size.0 - 1.0).max(0.0)),
            target.y.clamp(0.0, (size.1 - 1.0).max(0.0)),
        ));
        let new_under = self.surface_under(target);
        if let Some((surface, surface_loc, region)) = confined {
            let inside_surface = new_under.as_ref().is_some_and(|(s, _)| *s == surface);
            let local = (target - surface_loc).to_i32_round();
            if !inside_surface || region.is_some_and(|r| !r.contains(local)) {
                pointer.frame(self);
                return;
            }
        }
        self.pointer_location = target;
        pointer.motion(
            self,
            new_under.clone(),
            &MotionEvent {
                location: target,
                serial: SERIAL_COUNTER.next_serial(),
                time,
            },
        );
        pointer.frame(self);
        self.activate_pointer_constraint(new_under);
    }

    /// Activates a pending constraint of the surface under the pointer.
    pub(crate) fn activate_pointer_constraint(
        &mut self,
        under: Option<(WlSurface, Point<f64, Logical>)>,
    ) {
        let Some(pointer) = self.seat.get_pointer() else {
            return;
        };
        let Some((surface, surface_loc)) = under else {
            return;
        };
        if pointer.current_focus().as_ref() != Some(&surface) {
            return;
        }
        let local = (self.pointer_location - surface_loc).to_i32_round();
        with_pointer_constraint(&surface, &pointer, |constraint| {
            if let Some(c) = constraint
                && !c.is_active()
                && c.region().is_none_or(|r| r.contains(local))
            {
                c.activate();
            }
        });
    }

    pub(super) fn pointer_button(&mut self, button: u8, pressed: bool, time: u32) {
        let code = match button {
            1 => BTN_LEFT,
            2 => BTN_MIDDLE,
            3 => BTN_RIGHT,
            4 => BTN_SIDE,
            5 => BTN_EXTRA,
            _ => {
                debug!(button, "unknown pointer button");
                return;
            }
        };
        let Some(pointer) = self.seat.get_pointer() else {
            return;
        };
        let serial = SERIAL_COUNTER.next_serial();
        if pressed && !pointer.is_grabbed() {
            self.focus_window_under_pointer(serial);
        }
        let state = if pressed {
            ButtonState::Pressed
        } else {
            ButtonState::Released
        };
        pointer.button(
            self,
            &ButtonEvent {
                serial,
                time,
                button: code,
                state,
            },
        );
        pointer.frame(self);
    }

    pub(super) fn scroll(&mut self, vertical: i32, horizontal: i32, time: u32) {
        let Some(pointer) = self.seat.get_pointer() else {
            return;
        };
        let mut frame = AxisFrame::new(time).source(AxisSource::Wheel);
        if vertical != 0 {
            let v120 = vertical.saturating_neg();
            frame = frame
                .value(
                    Axis::Vertical,
                    f64::from(v120) / WHEEL_DELTA * AXIS_PER_NOTCH,
                )
                .v120(Axis::Vertical, v120);
        }
        if horizontal != 0 {
            frame = frame
                .value(
                    Axis::Horizontal,
                    f64::from(horizontal) / WHEEL_DELTA * AXIS_PER_NOTCH,
                )
                .v120(Axis::Horizontal, horizontal);
        }
        pointer.axis(self, frame);
        pointer.frame(self);
    }
}
