//! Moonlight controller state to Linux evdev events: pure code, no device.
//!
//! A multi-controller packet (`docs/PROTOCOL.md` §3.7) carries the whole state of one pad:
//! button flags (`buttonFlags | buttonFlags2 << 16`), two triggers 0–255 and four stick axes
//! (signed 16-bit, XInput convention: up is positive). [`translate`] compares it with the
//! previous state and returns only the evdev events that changed; the device terminates every
//! non-empty batch with `SYN_REPORT` (evdev's `VirtualDevice::emit` appends it).
//!
//! Each [`PadKind`] imitates the kernel driver of the real pad, so games and SDL's mapping
//! database treat the virtual pad like the real one:
//!
//! * Xbox (`xpad`): A/B on `BTN_SOUTH`/`BTN_EAST`, and X/Y on the codes the kernel also calls
//!   `BTN_X`/`BTN_Y`, which are `BTN_NORTH`/`BTN_WEST` (xpad's historical naming, not the
//!   buttons' positions); Y axes inverted with a bitwise NOT as xpad does; triggers
//!   `ABS_Z`/`ABS_RZ`; Share on `KEY_RECORD`; paddles on `BTN_TRIGGER_HAPPY5..8`.
//! * PlayStation (`hid-playstation`): face buttons by position (square `BTN_WEST`, triangle
//!   `BTN_NORTH`), sticks 0–255 centred on 128 with down positive, analog triggers plus digital
//!   `BTN_TL2`/`BTN_TR2`.
//! * Nintendo (`hid-nintendo`): face buttons by position, ZL/ZR digital only, Capture on
//!   `BTN_Z`.
//!
//! The d-pad is `ABS_HAT0X`/`ABS_HAT0Y` for every kind (-1 left/up, 1 right/down; opposite
//! directions pressed together cancel out).

use evdev::{AbsoluteAxisCode, EventType, InputEvent, KeyCode};
use hati_protocol::input::{ControllerState, button};

/// Trigger value from which a digital trigger button counts as pressed (XInput's
/// `XINPUT_GAMEPAD_TRIGGER_THRESHOLD`).
pub const TRIGGER_THRESHOLD: u8 = 30;

/// Which real pad the virtual one imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PadKind {
    /// Xbox One pad (`xpad`).
    Xbox,
    /// DualSense (`hid-playstation`).
    PlayStation,
    /// Switch Pro Controller (`hid-nintendo`).
    Nintendo,
}

impl PadKind {
    /// Its name in the admin API and events, as it serialises.
    pub fn name(self) -> &'static str {
        match self {
            Self::Xbox => "xbox",
            Self::PlayStation => "playstation",
            Self::Nintendo => "nintendo",
        }
    }
}

/// How a virtual pad presents itself to the system; the udev rules match the names (the device
/// adds its player to the name: `... pad (player 5)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PadIdentity {
    /// Device name.
    pub name: &'static str,
    /// USB vendor id.
    pub vendor: u16,
    /// USB product id.
    pub product: u16,
    /// Version.
    pub version: u16,
}

/// One absolute axis of a pad: code and range. `rest` is what [`translate`] makes of
/// [`PadState::REST`] (a centred Y stick is -1 on xpad, 127 on a 0–255 axis after inversion), so
/// a new device starts exactly where the first translated state expects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisSpec {
    /// The axis.
    pub code: AbsoluteAxisCode,
    /// Resting value.
    pub rest: i32,
    /// Minimum.
    pub min: i32,
    /// Maximum.
    pub max: i32,
    /// Noise filter.
    pub fuzz: i32,
    /// Dead zone.
    pub flat: i32,
}

const fn axis(
    code: AbsoluteAxisCode,
    rest: i32,
    min: i32,
    max: i32,
    fuzz: i32,
    flat: i32,
) -> AxisSpec {
    AxisSpec {
        code,
        rest,
        min,
        max,
        fuzz,
        flat,
    }
}

const HAT_X: AxisSpec = axis(AbsoluteAxisCode::ABS_HAT0X, 0, -1, 1, 0, 0);
const HAT_Y: AxisSpec = axis(AbsoluteAxisCode::ABS_HAT0Y, 0, -1, 1, 0, 0);

const XBOX_AXES: &[AxisSpec] = &[
    axis(AbsoluteAxisCode::ABS_X, 0, -32768, 32767, 16, 128),
    axis(AbsoluteAxisCode::ABS_Y, -1, -32768, 32767, 16, 128),
    axis(AbsoluteAxisCode::ABS_RX, 0, -32768, 32767, 16, 128),
    axis(AbsoluteAxisCode::ABS_RY, -1, -32768, 32767, 16, 128),
    axis(AbsoluteAxisCode::ABS_Z, 0, 0, 255, 0, 0),
    axis(AbsoluteAxisCode::ABS_RZ, 0, 0, 255, 0, 0),
    HAT_X,
    HAT_Y,
];

const PLAYSTATION_AXES: &[AxisSpec] = &[
    axis(AbsoluteAxisCode::ABS_X, 128, 0, 255, 0, 0),
    axis(AbsoluteAxisCode::ABS_Y, 127, 0, 255, 0, 0),
    axis(AbsoluteAxisCode::ABS_RX, 128, 0, 255, 0, 0),
    axis(AbsoluteAxisCode::ABS_RY, 127, 0, 255, 0, 0),
    axis(AbsoluteAxisCode::ABS_Z, 0, 0, 255, 0, 0),
    axis(AbsoluteAxisCode::ABS_RZ, 0, 0, 255, 0, 0),
    HAT_X,
    HAT_Y,
];

const NINTENDO_AXES: &[AxisSpec] = &[
    axis(AbsoluteAxisCode::ABS_X, 0, -32768, 32767, 16, 128),
    axis(AbsoluteAxisCode::ABS_Y, -1, -32768, 32767, 16, 128),
    axis(AbsoluteAxisCode::ABS_RX, 0, -32768, 32767, 16, 128),
    axis(AbsoluteAxisCode::ABS_RY, -1, -32768, 32767, 16, 128),
    HAT_X,
    HAT_Y,
];

/// Buttons shared by every kind.
const COMMON_BUTTONS: &[(u32, KeyCode)] = &[
    (button::LB, KeyCode::BTN_TL),
    (button::RB, KeyCode::BTN_TR),
    (button::BACK, KeyCode::BTN_SELECT),
    (button::PLAY, KeyCode::BTN_START),
    (button::SPECIAL, KeyCode::BTN_MODE),
    (button::LS_CLICK, KeyCode::BTN_THUMBL),
    (button::RS_CLICK, KeyCode::BTN_THUMBR),
];

const XBOX_BUTTONS: &[(u32, KeyCode)] = &[
    (button::A, KeyCode::BTN_SOUTH),
    (button::B, KeyCode::BTN_EAST),
    // xpad reports X as BTN_X and Y as BTN_Y, which share their codes with BTN_NORTH and
    // BTN_WEST.
    (button::X, KeyCode::BTN_NORTH),
    (button::Y, KeyCode::BTN_WEST),
    (button::MISC, KeyCode::KEY_RECORD),
    // SDL numbers paddles upper-right, upper-left, lower-right, lower-left; xpad reports the
    // Elite's P1 (upper right), P2 (lower right), P3 (upper left), P4 (lower left) as
    // BTN_TRIGGER_HAPPY5..8.
    (button::PADDLE1, KeyCode::BTN_TRIGGER_HAPPY5),
    (button::PADDLE2, KeyCode::BTN_TRIGGER_HAPPY7),
    (button::PADDLE3, KeyCode::BTN_TRIGGER_HAPPY6),
    (button::PADDLE4, KeyCode::BTN_TRIGGER_HAPPY8),
];

const POSITIONAL_FACE_BUTTONS: &[(u32, KeyCode)] = &[
    (button::A, KeyCode::BTN_SOUTH),
    (button::B, KeyCode::BTN_EAST),
    (button::X, KeyCode::BTN_WEST),
    (button::Y, KeyCode::BTN_NORTH),
];

const NINTENDO_EXTRA_BUTTONS: &[(u32, KeyCode)] = &[(button::MISC, KeyCode::BTN_Z)];

impl PadKind {
    /// The pad's name and USB ids.
    pub fn identity(self) -> PadIdentity {
        match self {
            PadKind::Xbox => PadIdentity {
                name: "Hati X-Box One (virtual) pad",
                vendor: 0x045e,
                product: 0x02ea,
                version: 0x0408,
            },
            PadKind::PlayStation => PadIdentity {
                name: "Hati PS5 (virtual) pad",
                vendor: 0x054c,
                product: 0x0ce6,
                version: 0x8111,
            },
            PadKind::Nintendo => PadIdentity {
                name: "Hati Nintendo (virtual) pad",
                vendor: 0x057e,
                product: 0x2009,
                version: 0x8111,
            },
        }
    }

    /// Every absolute axis the pad has.
    pub fn axes(self) -> &'static [AxisSpec] {
        match self {
            PadKind::Xbox => XBOX_AXES,
            PadKind::PlayStation => PLAYSTATION_AXES,
            PadKind::Nintendo => NINTENDO_AXES,
        }
    }

    /// Every key the pad has.
    pub fn keys(self) -> Vec<KeyCode> {
        let mut keys: Vec<KeyCode> = self.button_map().map(|(_, key)| key).collect();
        if self.has_digital_triggers() {
            keys.extend([KeyCode::BTN_TL2, KeyCode::BTN_TR2]);
        }
        keys
    }

    fn button_map(self) -> impl Iterator<Item = (u32, KeyCode)> {
        let specific: &[&[(u32, KeyCode)]] = match self {
            PadKind::Xbox => &[XBOX_BUTTONS],
            PadKind::PlayStation => &[POSITIONAL_FACE_BUTTONS],
            PadKind::Nintendo => &[POSITIONAL_FACE_BUTTONS, NINTENDO_EXTRA_BUTTONS],
        };
        specific
            .iter()
            .flat_map(|list| list.iter())
            .chain(COMMON_BUTTONS)
            .copied()
    }

    fn has_analog_triggers(self) -> bool {
        !matches!(self, PadKind::Nintendo)
    }

    fn has_digital_triggers(self) -> bool {
        !matches!(self, PadKind::Xbox)
    }

    /// Stick value as this pad reports it; `invert` for Y axes (XInput up-positive to evdev
    /// down-positive).
    fn stick(self, value: i16, invert: bool) -> i32 {
        match self {
            // xpad inverts with a bitwise NOT: 32767 -> -32768, -32768 -> 32767, 0 -> -1.
            PadKind::Xbox | PadKind::Nintendo if invert => i32::from(!value),
            PadKind::Xbox | PadKind::Nintendo => i32::from(value),
            PadKind::PlayStation => {
                let byte = (i32::from(value) + 32768) >> 8;
                if invert { 255 - byte } else { byte }
            }
        }
    }
}

/// The state of one pad, as Moonlight sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PadState {
    /// Button flags, [`button`].
    pub buttons: u32,
    /// Left trigger 0–255.
    pub left_trigger: u8,
    /// Right trigger 0–255.
    pub right_trigger: u8,
    /// Left stick x (right positive).
    pub left_stick_x: i16,
    /// Left stick y (up positive).
    pub left_stick_y: i16,
    /// Right stick x.
    pub right_stick_x: i16,
    /// Right stick y.
    pub right_stick_y: i16,
}

impl From<&ControllerState> for PadState {
    fn from(state: &ControllerState) -> Self {
        Self {
            buttons: state.buttons,
            left_trigger: state.left_trigger,
            right_trigger: state.right_trigger,
            left_stick_x: state.left_stick_x,
            left_stick_y: state.left_stick_y,
            right_stick_x: state.right_stick_x,
            right_stick_y: state.right_stick_y,
        }
    }
}

impl PadState {
    /// The resting state (nothing pressed, sticks centred); a new pad starts here.
    pub const REST: PadState = PadState {
        buttons: 0,
        left_trigger: 0,
        right_trigger: 0,
        left_stick_x: 0,
        left_stick_y: 0,
        right_stick_x: 0,
        right_stick_y: 0,
    };

    fn hat(&self, negative: u32, positive: u32) -> i32 {
        match (self.buttons & negative != 0, self.buttons & positive != 0) {
            (true, false) => -1,
            (false, true) => 1,
            _ => 0,
        }
    }

    /// Every axis value of this state for `kind`, in [`PadKind::axes`] order.
    fn axis_values(&self, kind: PadKind) -> impl Iterator<Item = (AbsoluteAxisCode, i32)> {
        let sticks = [
            (
                AbsoluteAxisCode::ABS_X,
                kind.stick(self.left_stick_x, false),
            ),
            (AbsoluteAxisCode::ABS_Y, kind.stick(self.left_stick_y, true)),
            (
                AbsoluteAxisCode::ABS_RX,
                kind.stick(self.right_stick_x, false),
            ),
            (
                AbsoluteAxisCode::ABS_RY,
                kind.stick(self.right_stick_y, true),
            ),
        ];
        let triggers = [
            (AbsoluteAxisCode::ABS_Z, i32::from(self.left_trigger)),
            (AbsoluteAxisCode::ABS_RZ, i32::from(self.right_trigger)),
        ];
        let hats = [
            (
                AbsoluteAxisCode::ABS_HAT0X,
                self.hat(button::LEFT, button::RIGHT),
            ),
            (
                AbsoluteAxisCode::ABS_HAT0Y,
                self.hat(button::UP, button::DOWN),
            ),
        ];
        let triggers = kind
            .has_analog_triggers()
            .then_some(triggers)
            .into_iter()
            .flatten();
        sticks.into_iter().chain(triggers).chain(hats)
    }

    /// Every key value of this state for `kind`.
    fn key_values(&self, kind: PadKind) -> impl Iterator<Item = (KeyCode, i32)> {
        let buttons = self.buttons;
        let mapped = kind
            .button_map()
            .map(move |(flag, key)| (key, i32::from(buttons & flag != 0)));
        let digital = [
            (
                KeyCode::BTN_TL2,
                i32::from(self.left_trigger >= TRIGGER_THRESHOLD),
            ),
            (
                KeyCode::BTN_TR2,
                i32::from(self.right_trigger >= TRIGGER_THRESHOLD),
            ),
        ];
        mapped.chain(
            kind.has_digital_triggers()
                .then_some(digital)
                .into_iter()
                .flatten(),
        )
    }
}

/// The evdev events that take a `kind` pad from `previous` to `next`: keys first, then axes;
/// empty when nothing the pad can show changed. The caller ends the batch with `SYN_REPORT`.
pub fn translate(kind: PadKind, previous: &PadState, next: &PadState) -> Vec<InputEvent> {
    let mut events = Vec::new();
    for ((key, before), (_, after)) in previous.key_values(kind).zip(next.key_values(kind)) {
        if before != after {
            events.push(InputEvent::new(EventType::KEY.0, key.0, after));
        }
    }
    for ((code, before), (_, after)) in previous.axis_values(kind).zip(next.axis_values(kind)) {
        if before != after {
            events.push(InputEvent::new(EventType::ABSOLUTE.0, code.0, after));
        }
    }
    events
}

/// Flags in `buttons` that `kind` has nowhere to put (for a one-time debug note).
pub fn unmapped_buttons(kind: PadKind, buttons: u32) -> u32 {
    let dpad = button::UP | button::DOWN | button::LEFT | button::RIGHT;
    let mapped = kind.button_map().fold(dpad, |all, (flag, _)| all | flag);
    buttons & !mapped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, value: i32) -> (u16, u16, i32) {
        (EventType::KEY.0, code.0, value)
    }

    fn abs(code: AbsoluteAxisCode, value: i32) -> (u16, u16, i32) {
        (EventType::ABSOLUTE.0, code.0, value)
    }

    fn run(kind: PadKind, previous: PadState, next: PadState) -> Vec<(u16, u16, i32)> {
        translate(kind, &previous, &next)
            .into_iter()
            .map(|e| (e.event_type().0, e.code(), e.value()))
            .collect()
    }

    fn pressed(buttons: u32) -> PadState {
        PadState {
            buttons,
            ..PadState::REST
        }
    }

    #[test]
    fn nothing_changed_emits_nothing() {
        for kind in [PadKind::Xbox, PadKind::PlayStation, PadKind::Nintendo] {
            assert!(run(kind, PadState::REST, PadState::REST).is_empty());
            let busy = PadState {
                buttons: 0x3f_f7ff,
                left_trigger: 9,
                left_stick_y: -5,
                ..PadState::REST
            };
            assert!(run(kind, busy, busy).is_empty());
        }
    }

    #[test]
    fn xbox_face_buttons_follow_xpad() {
        let events = run(
            PadKind::Xbox,
            PadState::REST,
            pressed(button::A | button::B | button::X | button::Y),
        );
        assert_eq!(
            events,
            [
                key(KeyCode::BTN_SOUTH, 1),
                key(KeyCode::BTN_EAST, 1),
                key(KeyCode::BTN_NORTH, 1),
                key(KeyCode::BTN_WEST, 1),
            ]
        );
    }

    #[test]
    fn positional_face_buttons_for_playstation_and_nintendo() {
        for kind in [PadKind::PlayStation, PadKind::Nintendo] {
            assert_eq!(
                run(kind, PadState::REST, pressed(button::X)),
                [key(KeyCode::BTN_WEST, 1)]
            );
            assert_eq!(
                run(kind, PadState::REST, pressed(button::Y)),
                [key(KeyCode::BTN_NORTH, 1)]
            );
        }
    }

    #[test]
    fn only_changes_are_emitted() {
        let before = pressed(button::A | button::LB);
        let after = pressed(button::A | button::RB | button::PLAY);
        assert_eq!(
            run(PadKind::Xbox, before, after),
            [
                key(KeyCode::BTN_TL, 0),
                key(KeyCode::BTN_TR, 1),
                key(KeyCode::BTN_START, 1)
            ]
        );
    }

    #[test]
    fn common_buttons() {
        let all = button::BACK | button::SPECIAL | button::LS_CLICK | button::RS_CLICK;
        assert_eq!(
            run(PadKind::Xbox, PadState::REST, pressed(all)),
            [
                key(KeyCode::BTN_SELECT, 1),
                key(KeyCode::BTN_MODE, 1),
                key(KeyCode::BTN_THUMBL, 1),
                key(KeyCode::BTN_THUMBR, 1),
            ]
        );
    }

    #[test]
    fn extended_buttons() {
        let paddles = button::PADDLE1 | button::PADDLE2 | button::PADDLE3 | button::PADDLE4;
        assert_eq!(
            run(
                PadKind::Xbox,
                PadState::REST,
                pressed(paddles | button::MISC)
            ),
            [
                key(KeyCode::KEY_RECORD, 1),
                key(KeyCode::BTN_TRIGGER_HAPPY5, 1),
                key(KeyCode::BTN_TRIGGER_HAPPY7, 1),
                key(KeyCode::BTN_TRIGGER_HAPPY6, 1),
                key(KeyCode::BTN_TRIGGER_HAPPY8, 1),
            ]
        );
        assert_eq!(
            run(PadKind::Nintendo, PadState::REST, pressed(button::MISC)),
            [key(KeyCode::BTN_Z, 1)]
        );
        assert_eq!(
            unmapped_buttons(PadKind::PlayStation, button::TOUCHPAD | button::A),
            button::TOUCHPAD
        );
        assert_eq!(unmapped_buttons(PadKind::Xbox, paddles | button::UP), 0);
    }

    #[test]
    fn dpad_is_a_hat() {
        assert_eq!(
            run(
                PadKind::Xbox,
                PadState::REST,
                pressed(button::UP | button::RIGHT)
            ),
            [
                abs(AbsoluteAxisCode::ABS_HAT0X, 1),
                abs(AbsoluteAxisCode::ABS_HAT0Y, -1)
            ]
        );
        assert_eq!(
            run(PadKind::Xbox, pressed(button::UP), pressed(button::DOWN)),
            [abs(AbsoluteAxisCode::ABS_HAT0Y, 1)]
        );
        assert_eq!(
            run(
                PadKind::Xbox,
                pressed(button::LEFT),
                pressed(button::LEFT | button::RIGHT)
            ),
            [abs(AbsoluteAxisCode::ABS_HAT0X, 0)]
        );
    }

    #[test]
    fn xbox_sticks_invert_y_like_xpad() {
        let next = PadState {
            left_stick_x: 1000,
            left_stick_y: 32767,
            right_stick_x: -32768,
            right_stick_y: -32768,
            ..PadState::REST
        };
        assert_eq!(
            run(PadKind::Xbox, PadState::REST, next),
            [
                abs(AbsoluteAxisCode::ABS_X, 1000),
                abs(AbsoluteAxisCode::ABS_Y, -32768),
                abs(AbsoluteAxisCode::ABS_RX, -32768),
                abs(AbsoluteAxisCode::ABS_RY, 32767),
            ]
        );
        // Centre: ~0 is -1, which is what xpad reports for a centred stick too.
        let centred = PadState {
            left_stick_x: 5,
            ..PadState::REST
        };
        assert_eq!(
            run(PadKind::Xbox, PadState::REST, centred),
            [abs(AbsoluteAxisCode::ABS_X, 5)]
        );
    }

    #[test]
    fn playstation_sticks_are_bytes() {
        let next = PadState {
            left_stick_x: 32767,
            left_stick_y: 32767,
            right_stick_x: -32768,
            ..PadState::REST
        };
        assert_eq!(
            run(PadKind::PlayStation, PadState::REST, next),
            [
                abs(AbsoluteAxisCode::ABS_X, 255),
                abs(AbsoluteAxisCode::ABS_Y, 0),
                abs(AbsoluteAxisCode::ABS_RX, 0),
            ]
        );
    }

    #[test]
    fn triggers() {
        let next = PadState {
            left_trigger: 255,
            right_trigger: 10,
            ..PadState::REST
        };
        assert_eq!(
            run(PadKind::Xbox, PadState::REST, next),
            [
                abs(AbsoluteAxisCode::ABS_Z, 255),
                abs(AbsoluteAxisCode::ABS_RZ, 10)
            ]
        );
        assert_eq!(
            run(PadKind::PlayStation, PadState::REST, next),
            [
                key(KeyCode::BTN_TL2, 1),
                abs(AbsoluteAxisCode::ABS_Z, 255),
                abs(AbsoluteAxisCode::ABS_RZ, 10)
            ]
        );
        assert_eq!(
            run(PadKind::Nintendo, PadState::REST, next),
            [key(KeyCode::BTN_TL2, 1)]
        );
        let released = PadState {
            left_trigger: TRIGGER_THRESHOLD - 1,
            ..next
        };
        assert_eq!(
            run(PadKind::Nintendo, next, released),
            [key(KeyCode::BTN_TL2, 0)]
        );
    }

    #[test]
    fn from_protocol_state() {
        let state = ControllerState {
            controller_number: 1,
            active_gamepad_mask: 0b11,
            buttons: button::A | button::PADDLE1,
            left_trigger: 1,
            right_trigger: 2,
            left_stick_x: 3,
            left_stick_y: 4,
            right_stick_x: 5,
            right_stick_y: 6,
        };
        let pad = PadState::from(&state);
        assert_eq!(pad.buttons, button::A | button::PADDLE1);
        assert_eq!((pad.left_trigger, pad.right_stick_y), (1, 6));
    }

    #[test]
    fn every_mapped_key_is_declared_once() {
        for kind in [PadKind::Xbox, PadKind::PlayStation, PadKind::Nintendo] {
            let keys = kind.keys();
            let mut unique = keys.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), keys.len(), "{kind:?}");
            let axes: Vec<_> = kind.axes().iter().map(|a| a.code).collect();
            let full = PadState {
                buttons: u32::MAX,
                left_trigger: 255,
                right_trigger: 255,
                left_stick_x: 1,
                left_stick_y: 1,
                right_stick_x: 1,
                right_stick_y: 1,
            };
            for event in translate(kind, &PadState::REST, &full) {
                match event.event_type() {
                    EventType::KEY => {
                        assert!(keys.contains(&KeyCode(event.code())), "{kind:?} {event:?}")
                    }
                    _ => assert!(
                        axes.contains(&AbsoluteAxisCode(event.code())),
                        "{kind:?} {event:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn resting_values_match_axis_rest() {
        for kind in [PadKind::Xbox, PadKind::PlayStation, PadKind::Nintendo] {
            let rest: Vec<_> = PadState::REST.axis_values(kind).collect();
            for spec in kind.axes() {
                let value = rest
                    .iter()
                    .find(|(code, _)| *code == spec.code)
                    .map(|(_, v)| *v);
                assert_eq!(value, Some(spec.rest), "{kind:?} {:?}", spec.code);
            }
        }
    }
}
