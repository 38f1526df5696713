//! Input injected by the host ([`InputEvent`]) and how the compositor thread feeds it into the
//! Smithay seat.
//!
//! All injected input enters through [`State::process_input`]. Units and conventions:
//!
//! - keys are Linux evdev codes (`KEY_*` from `input-event-codes.h`); [`crate::vk_to_evdev`]
//!   maps Windows virtual-key codes. The seat uses a US xkb keymap.
//! - [`InputEvent::Text`] types each character with the key that produces it in the US keymap
//!   (pressing Shift when the character is on the shifted level). A character that the US keymap
//!   lacks is typed through a temporary keymap: the compositor uploads the US keymap with the spare
//!   key `<I248>` (evdev 240, `KEY_UNKNOWN`) bound to that character's keysym, presses and
//!   releases that key, then restores the plain US keymap. Modifiers that the host holds down
//!   stay held, so text should be sent with no modifier pressed.
//! - scroll amounts are Windows `WHEEL_DELTA` units (120 per notch, finer values allowed). They
//!   become `wl_pointer.axis` (15 per notch, libinput's convention) plus `axis_value120`; Windows'
//!   positive vertical (wheel away from the user, scroll up) is Wayland's negative vertical.
//! - touch and pen positions are normalised (0..1 over the output).

use std::collections::{HashMap, HashSet};

use smithay::{
    backend::input::{
        Axis, AxisSource, ButtonState, KeyState, TabletToolDescriptor, TabletToolType,
    },
    desktop::{Window, WindowSurfaceType, utils::under_from_surface_tree},
    input::{
        keyboard::{FilterResult, Keycode, xkb},
        pointer::{AxisFrame, ButtonEvent, MotionEvent, RelativeMotionEvent},
        touch::{DownEvent, MotionEvent as TouchMotionEvent, UpEvent},
    },
    reexports::wayland_server::protocol::wl_surface::WlSurface,
    utils::{Logical, Point, SERIAL_COUNTER},
    wayland::{
        pointer_constraints::{PointerConstraint, with_pointer_constraint},
        tablet_manager::{TabletDescriptor, TabletSeatTrait},
    },
};
use tracing::{debug, warn};

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
/// Linux `BTN_STYLUS` (first barrel button).
const BTN_STYLUS: u32 = 0x14b;
/// Linux `BTN_STYLUS2` (second barrel button).
const BTN_STYLUS2: u32 = 0x14c;
/// Linux `KEY_LEFTSHIFT`.
const KEY_LEFTSHIFT: u32 = 42;
/// Linux `KEY_ENTER`.
const KEY_ENTER: u32 = 28;
/// The evdev code left free in the US keymap that a temporary keymap binds to one character.
const SPARE_EVDEV_KEY: u32 = 240;
/// Offset between evdev codes and xkb keycodes.
const XKB_OFFSET: u32 = 8;
/// Windows `WHEEL_DELTA`: one notch of a wheel.
const WHEEL_DELTA: f64 = 120.0;
/// `wl_pointer.axis` distance of one wheel notch (libinput's convention).
const AXIS_PER_NOTCH: f64 = 15.0;
/// Longest text accepted in one [`InputEvent::Text`].
const MAX_TEXT_CHARS: usize = 1024;

/// One input event injected by the host.
#[derive(Debug, Clone, PartialEq)]
pub enum InputEvent {
    /// A key went down or up. `linux_keycode` is an evdev `KEY_*` code.
    KeyboardKey {
        /// evdev key code (`KEY_A` is 30).
        linux_keycode: u32,
        /// `true` when pressed, `false` when released.
        pressed: bool,
    },
    /// UTF-8 text to type (see the module documentation for how).
    Text(String),
    /// Relative pointer motion in output pixels.
    PointerMotionRelative {
        /// Horizontal motion, positive to the right.
        dx: f64,
        /// Vertical motion, positive downwards.
        dy: f64,
    },
    /// Absolute pointer position in a client reference frame of `width` x `height`, mapped
    /// linearly onto the output.
    PointerMotionAbsolute {
        /// Horizontal position in `0..width`.
        x: f64,
        /// Vertical position in `0..height`.
        y: f64,
        /// Width of the client's reference frame.
        width: f64,
        /// Height of the client's reference frame.
        height: f64,
    },
    /// A pointer button: 1 left, 2 middle, 3 right, 4 X1 (side), 5 X2 (extra).
    PointerButton {
        /// Button number, 1..=5.
        button: u8,
        /// `true` when pressed.
        pressed: bool,
    },
    /// Wheel motion in Windows `WHEEL_DELTA` units (120 per notch).
    Scroll {
        /// Positive scrolls up (wheel away from the user).
        vertical: i32,
        /// Positive scrolls right.
        horizontal: i32,
    },
    /// A touch contact; `x` and `y` are normalised to `0..=1` over the output.
    Touch {
        /// Contact identifier, stable from `Down` to `Up`.
        id: u32,
        /// What happened to the contact.
        kind: TouchKind,
        /// Horizontal position, 0 left to 1 right.
        x: f64,
        /// Vertical position, 0 top to 1 bottom.
        y: f64,
    },
    /// A pen (stylus) event, delivered through `zwp_tablet_v2`.
    Pen(PenEvent),
}

/// What happened to a touch contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TouchKind {
    /// The contact started.
    Down,
    /// The contact moved.
    Move,
    /// The contact was lifted.
    Up,
    /// Every contact was cancelled.
    Cancel,
}

/// What happened to the pen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PenKind {
    /// In range above the surface, not touching.
    Hover,
    /// The tip touched the surface.
    Down,
    /// Moved while touching.
    Move,
    /// The tip was lifted (still in range).
    Up,
    /// Left the range of the tablet (or cancelled).
    Leave,
}

/// A pen sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PenEvent {
    /// What happened.
    pub kind: PenKind,
    /// Horizontal position, normalised 0..=1.
    pub x: f64,
    /// Vertical position, normalised 0..=1.
    pub y: f64,
    /// Tip pressure, 0..=1.
    pub pressure: f64,
    /// Tilt in degrees along x and y, each -90..=90.
    pub tilt: (f64, f64),
    /// Barrel buttons: bit 0 the first (`BTN_STYLUS`), bit 1 the second (`BTN_STYLUS2`).
    pub buttons: u32,
    /// `true` when the eraser end is used.
    pub eraser: bool,
}

/// Per-seat state of injected input that Smithay does not track.
#[derive(Debug, Default)]
pub(crate) struct InjectState {
    /// evdev codes currently held, to drop repeated presses and stray releases.
    pressed_keys: HashSet<u32>,
    /// Pen tool in range, `Some(eraser)`.
    pen_in_range: Option<bool>,
    /// Whether the pen tip is down.
    pen_tip_down: bool,
    /// Barrel buttons held.
    pen_buttons: u32,
    /// Touch contacts currently down.
    touch_ids: HashSet<u32>,
}

/// Finds the key (and Shift level) typing a character with the US keymap.
pub(crate) struct TextKeymap {
    /// `char` to `(evdev code, needs shift)`.
    keys: HashMap<char, (u32, bool)>,
    /// The US keymap as xkb text, restored after a temporary keymap.
    us_keymap: String,
}

impl std::fmt::Debug for TextKeymap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextKeymap")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl TextKeymap {
    /// Compiles the US keymap and indexes the characters of its first two levels.
    pub(crate) fn us() -> Option<Self> {
        let context = xkb::Context::new(xkb::CONTEXT_NO_FLAGS);
        let keymap = xkb::Keymap::new_from_names(
            &context,
            "",
            "",
            "us",
            "",
            None,
            xkb::KEYMAP_COMPILE_NO_FLAGS,
        )?;
        let mut keys = HashMap::new();
        for level in 0..2u32 {
            // Only codes `keyboard_key` accepts (xkb codes up to 255).
            for code in keymap.min_keycode().raw()..=keymap.max_keycode().raw().min(255) {
                let Some(evdev) = code.checked_sub(XKB_OFFSET) else {
                    continue;
                };
                for sym in keymap.key_get_syms_by_level(code.into(), 0, level) {
                    let utf32 = xkb::keysym_to_utf32(*sym);
                    if let Some(ch) = char::from_u32(utf32).filter(|c| *c != '\0') {
                        keys.entry(ch).or_insert((evdev, level == 1));
                    }
                }
            }
        }
        keys.insert('\n', (KEY_ENTER, false));
        let us_keymap = keymap.get_as_string(xkb::KEYMAP_FORMAT_TEXT_V1);
        Some(Self { keys, us_keymap })
    }

    /// The key typing `ch`, with whether Shift is needed.
    pub(crate) fn lookup(&self, ch: char) -> Option<(u32, bool)> {
        self.keys.get(&ch).copied()
    }

    /// A keymap text equal to the US one with the spare key bound to `ch`.
    pub(crate) fn with_spare_key(ch: char) -> String {
        format!(
            "xkb_keymap {{\n\
             xkb_keycodes {{ include \"evdev+aliases(qwerty)\" }};\n\
             xkb_types {{ include \"complete\" }};\n\
             xkb_compat {{ include \"complete\" }};\n\
             xkb_symbols {{ include \"pc+us+inet(evdev)\"\n\
             key <I248> {{ [ U{:04X} ] }}; }};\n\
             }};\n",
            u32::from(ch)
        )
    }
}

impl State {
    /// Feeds one injected event into the seat.
    pub(crate) fn process_input(&mut self, event: InputEvent) {
        let time = self.clock_ms();
        match event {
            InputEvent::KeyboardKey {
                linux_keycode,
                pressed,
            } => {
                self.keyboard_key(linux_keycode, pressed, time);
            }
            InputEvent::Text(text) => self.type_text(&text, time),
            InputEvent::PointerMotionRelative { dx, dy } => {
                if !dx.is_finite() || !dy.is_finite() {
                    return;
                }
                let target = self.pointer_location + Point::from((dx, dy));
                self.pointer_motion(target, Some((dx, dy)), time);
            }
            InputEvent::PointerMotionAbsolute {
                x,
                y,
                width,
                height,
            } => {
                if !(width > 0.0 && height > 0.0 && x.is_finite() && y.is_finite()) {
                    debug!(
                        width,
                        height, "absolute motion with an empty reference frame"
                    );
                    return;
                }
                let size = self.output_size();
                let target = Point::from((x / width * size.0, y / height * size.1));
                self.pointer_motion(target, None, time);
            }
            InputEvent::PointerButton { button, pressed } => {
                self.pointer_button(button, pressed, time)
            }
            InputEvent::Scroll {
                vertical,
                horizontal,
            } => self.scroll(vertical, horizontal, time),
            InputEvent::Touch { id, kind, x, y } => self.touch(id, kind, x, y, time),
            InputEvent::Pen(pen) => self.pen(pen, time),
        }
    }

    fn output_size(&self) -> (f64, f64) {
        (f64::from(self.size.0), f64::from(self.size.1))
    }

    fn normalised_to_output(&self, x: f64, y: f64) -> Point<f64, Logical> {
        let size = self.output_size();
        let x = if x.is_finite() {
            x.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let y = if y.is_finite() {
            y.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Point::from((x * size.0, y * size.1))
    }

    fn keyboard_key(&mut self, linux_keycode: u32, pressed: bool, time: u32) {
        let Some(xkb_code) = linux_keycode.checked_add(XKB_OFFSET).filter(|c| *c <= 255) else {
            debug!(linux_keycode, "key code out of range");
            return;
        };
        let changed = if pressed {
            self.inject.pressed_keys.insert(linux_keycode)
        } else {
            self.inject.pressed_keys.remove(&linux_keycode)
        };
        if !changed {
            return;
        }
        let Some(keyboard) = self.seat.get_keyboard() else {
            return;
        };
        let state = if pressed {
            KeyState::Pressed
        } else {
            KeyState::Released
        };
        keyboard.input::<(), _>(
            self,
            Keycode::new(xkb_code),
            state,
            SERIAL_COUNTER.next_serial(),
            time,
            |_, _, _| FilterResult::Forward,
        );
    }

    fn type_text(&mut self, text: &str, time: u32) {
        for ch in text.chars().take(MAX_TEXT_CHARS) {
            if let Some((code, shift)) = self.text_keymap.as_ref().and_then(|k| k.lookup(ch)) {
                if shift {
                    self.keyboard_key(KEY_LEFTSHIFT, true, time);
                }
                self.keyboard_key(code, true, time);
                self.keyboard_key(code, false, time);
                if shift {
                    self.keyboard_key(KEY_LEFTSHIFT, false, time);
                }
            } else if !ch.is_control() {
                self.type_with_temporary_keymap(ch, time);
            }
        }
    }

    fn type_with_temporary_keymap(&mut self, ch: char, time: u32) {
        let Some(keyboard) = self.seat.get_keyboard() else {
            return;
        };
        let Some(us) = self.text_keymap.as_ref().map(|k| k.us_keymap.clone()) else {
            return;
        };
        if let Err(err) = keyboard.set_keymap_from_string(self, TextKeymap::with_spare_key(ch)) {
            warn!(?err, "cannot build a keymap for a character");
            return;
        }
        self.keyboard_key(SPARE_EVDEV_KEY, true, time);
        self.keyboard_key(SPARE_EVDEV_KEY, false, time);
        if let Err(err) = keyboard.set_keymap_from_string(self, us) {
            warn!(?err, "cannot restore the US keymap");
        }
    }

    /// The client surface under `location` and that surface's origin.
    pub(crate) fn surface_under(
        &self,
        location: Point<f64, Logical>,
    ) -> Option<(WlSurface, Point<f64, Logical>)> {
        self.hit_test(location)
            .map(|(_, surface, origin)| (surface, origin))
    }

    /// The window under `location`.
    pub(crate) fn window_under(&self, location: Point<f64, Logical>) -> Option<Window> {
        self.hit_test(location).map(|(window, _, _)| window)
    }

    fn hit_test(
        &self,
        location: Point<f64, Logical>,
    ) -> Option<(Window, WlSurface, Point<f64, Logical>)> {
        self.windows_top_down()
            .into_iter()
            .find_map(|(window, render_loc)| {
                let local = location - render_loc.to_f64();
                let hit = match self.legacy_x11_surface(&window) {
                    Some(surface) => {
                        under_from_surface_tree(&surface, local, (0, 0), WindowSurfaceType::ALL)
                    }
                    None => window.surface_under(local, WindowSurfaceType::ALL),
                };
                hit.map(|(surface, loc)| (window, surface, (loc + render_loc).to_f64()))
            })
    }

    fn pointer_motion(
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

    fn pointer_button(&mut self, button: u8, pressed: bool, time: u32) {
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

    fn scroll(&mut self, vertical: i32, horizontal: i32, time: u32) {
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

    fn touch(&mut self, id: u32, kind: TouchKind, x: f64, y: f64, time: u32) {
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

    fn pen(&mut self, pen: PenEvent, time: u32) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn us_keymap_types_ascii() {
        let keymap = TextKeymap::us().expect("US keymap compiles");
        assert_eq!(keymap.lookup('a'), Some((30, false)));
        assert_eq!(keymap.lookup('A'), Some((30, true)));
        assert_eq!(keymap.lookup('1'), Some((2, false)));
        assert_eq!(keymap.lookup('!'), Some((2, true)));
        assert_eq!(keymap.lookup(' '), Some((57, false)));
        assert_eq!(keymap.lookup('\n'), Some((KEY_ENTER, false)));
        assert_eq!(keymap.lookup('€'), None);
    }

    #[test]
    fn spare_key_keymap_compiles() {
        let context = xkb::Context::new(xkb::CONTEXT_NO_FLAGS);
        let keymap = xkb::Keymap::new_from_string(
            &context,
            TextKeymap::with_spare_key('€'),
            xkb::KEYMAP_FORMAT_TEXT_V1,
            xkb::KEYMAP_COMPILE_NO_FLAGS,
        )
        .expect("temporary keymap compiles");
        let syms = keymap.key_get_syms_by_level((SPARE_EVDEV_KEY + XKB_OFFSET).into(), 0, 0);
        assert_eq!(
            syms.iter()
                .map(|s| xkb::keysym_to_utf32(*s))
                .collect::<Vec<_>>(),
            [0x20AC]
        );
    }
}
