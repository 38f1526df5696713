//! Input injected by the host ([`InputEvent`]) and how the compositor thread feeds it into the
//! Smithay seat.
//!
//! The host sends events with [`crate::InputSender::send`] or
//! [`crate::CompositorHandle::send_input`]; on the compositor thread all of them enter through
//! one function, `State::process_input`, which hands each to the `keyboard`, `pointer`, `touch`
//! or `tablet` submodule. Hit-testing, shared by all of them, lives here. Units and conventions:
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

mod keyboard;
mod pointer;
mod tablet;
mod touch;

use std::collections::HashSet;

use smithay::{
    desktop::{Window, WindowSurfaceType, utils::under_from_surface_tree},
    reexports::wayland_server::protocol::wl_surface::WlSurface,
    utils::{Logical, Point},
};
use tracing::debug;

use crate::state::State;

pub(crate) use keyboard::TextKeymap;
pub(crate) use tablet::pen_tablet;

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
}
