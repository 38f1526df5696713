//! Touch input: contacts going down, moving and up, delivered through `wl_touch`.

use smithay::{
    input::touch::{DownEvent, MotionEvent as TouchMotionEvent, UpEvent},
    utils::SERIAL_COUNTER,
};
use tracing::debug;

use super::TouchKind;
use crate::state::State;

impl State {
    pub(super) fn touch(&mut self, id: u32, kind: TouchKind, x: f64, y: f64, time: u32) {
        let Some(touch) = self.seat.get_touch() else {
            return;
        };
        let location = self.normalised_to_output(x, y);
        let slot = Some(id).into();
        match kind {
            TouchKind::Down => {
                if !self.inject.touch_ids.insert(id) {
                    debug!(id, "touch down for a contact already down");
                    return;
                }
                let serial = SERIAL_COUNTER.next_serial();
                if self.inject.touch_ids.len() == 1 {
                    self.focus_window_at(location, serial);
                }
                let under = self.surface_under(location);
                touch.down(
                    self,
                    under,
                    &DownEvent {
                        slot,
                        location,
                        serial,
                        time,
                    },
                );
            }
            TouchKind::Move => {
                if !self.inject.touch_ids.contains(&id) {
                    return;
                }
                let under = self.surface_under(location);
                touch.motion(
                    self,
                    under,
                    &TouchMotionEvent {
                        slot,
                        location,
                        time,
                    },
                );
            }
            TouchKind::Up => {
                if !self.inject.touch_ids.remove(&id) {
                    return;
                }
                let serial = SERIAL_COUNTER.next_serial();
                touch.up(self, &UpEvent { slot, serial, time });
            }
            TouchKind::Cancel => {
                self.inject.touch_ids.clear();
                touch.cancel(self);
                return;
            }
        }
        touch.frame(self);
    }
}
