//! Pen input through `zwp_tablet_v2`: the virtual tablet, its pen and eraser tools, and how a
//! [`PenEvent`] becomes proximity, tip, motion and button events.

use smithay::{
    backend::input::{ButtonState, TabletToolDescriptor, TabletToolType},
    utils::SERIAL_COUNTER,
    wayland::tablet_manager::{TabletDescriptor, TabletSeatTrait},
};

use super::{PenEvent, PenKind};
use crate::state::State;

/// Linux `BTN_STYLUS` (first barrel button).
const BTN_STYLUS: u32 = 0x14b;
/// Linux `BTN_STYLUS2` (second barrel button).
const BTN_STYLUS2: u32 = 0x14c;

impl State {
    pub(super) fn pen(&mut self, pen: PenEvent, time: u32) {
        let tablet_seat = self.seat.tablet_seat();
        let Some(tablet) = tablet_seat.get_tablet(&pen_tablet()) else {
            return;
        };
        let location = self.normalised_to_output(pen.x, pen.y);
        // Switching between tip and eraser is a different tool leaving and entering.
        if let Some(eraser) = self.inject.pen_in_range
            && (eraser != pen.eraser || pen.kind == PenKind::Leave)
        {
            if let Some(tool) = tablet_seat.get_tool(&pen_tool(eraser)) {
                if self.inject.pen_tip_down {
                    tool.tip_up(time);
                }
                tool.proximity_out(time);
            }
            self.inject.pen_in_range = None;
            self.inject.pen_tip_down = false;
            self.inject.pen_buttons = 0;
        }
        if pen.kind == PenKind::Leave {
            return;
        }
        let dh = self.display_handle.clone();
        let tool = tablet_seat.add_tool::<State>(self, &dh, &pen_tool(pen.eraser));
        let under = self.surface_under(location);
        let serial = SERIAL_COUNTER.next_serial();
        if pen.pressure.is_finite() {
            tool.pressure(pen.pressure.clamp(0.0, 1.0));
        }
        if pen.tilt.0.is_finite() && pen.tilt.1.is_finite() {
            tool.tilt((pen.tilt.0.clamp(-90.0, 90.0), pen.tilt.1.clamp(-90.0, 90.0)));
        }
        if under.is_none() {
            return;
        }
        tool.motion(location, under, &tablet, serial, time);
        self.inject.pen_in_range = Some(pen.eraser);
        let tip_down = matches!(pen.kind, PenKind::Down | PenKind::Move);
        if tip_down != self.inject.pen_tip_down {
            if tip_down {
                self.focus_window_at(location, serial);
                tool.tip_down(serial, time);
            } else {
                tool.tip_up(time);
            }
            self.inject.pen_tip_down = tip_down;
        }
        let changed = self.inject.pen_buttons ^ pen.buttons;
        for (bit, code) in [(1u32, BTN_STYLUS), (2, BTN_STYLUS2)] {
            if changed & bit != 0 {
                let state = if pen.buttons & bit != 0 {
                    ButtonState::Pressed
                } else {
                    ButtonState::Released
                };
                tool.button(code, state, SERIAL_COUNTER.next_serial(), time);
            }
        }
        self.inject.pen_buttons = pen.buttons & 3;
    }
}

/// The one virtual tablet every seat has.
pub(crate) fn pen_tablet() -> TabletDescriptor {
    TabletDescriptor {
        name: "Hati virtual pen tablet".into(),
        usb_id: None,
        syspath: None,
    }
}

/// The pen tool (or its eraser end).
fn pen_tool(eraser: bool) -> TabletToolDescriptor {
    TabletToolDescriptor {
        tool_type: if eraser {
            TabletToolType::Eraser
        } else {
            TabletToolType::Pen
        },
        hardware_serial: if eraser { 2 } else { 1 },
        hardware_id_wacom: 0,
        capabilities: smithay::backend::input::TabletToolCapabilities::PRESSURE
            | smithay::backend::input::TabletToolCapabilities::TILT,
    }
}
