//! Which pads the host creates (`[debug] virtual_pads`): real ones on `/dev/uinput`, or
//! recorded ones that have no device.
//!
//! Recording is a mock at the device boundary and nothing else: where the kernel has no
//! `/dev/uinput` (containers, CI), it lets the e2e tests watch pads arrive, take their player
//! slots, receive events and go, through the admin API and the event bus. Everything above the
//! device (the manager, slots, translation, events) runs as it does with real pads.

use std::path::PathBuf;

use evdev::InputEvent as EvdevEvent;
use serde::Deserialize;

use super::uinput::{UinputFactory, UinputPad};
use super::{GamepadError, PadDevice, PadFactory, PadSpec, RumbleCallback};

/// `[debug] virtual_pads`: which pads the host creates; also the factory creating them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VirtualPads {
    /// Real pads on `/dev/uinput` (the default).
    #[default]
    Uinput,
    /// Pads without a device: they accept every write and are only listed (tests, where the
    /// kernel lacks `/dev/uinput`).
    Record,
}

/// A pad [`VirtualPads`] created.
#[derive(Debug)]
pub enum HostPad {
    /// A device on `/dev/uinput`.
    Uinput(UinputPad),
    /// No device.
    Record(RecordedPad),
}

/// A pad without a device: writes are accepted (the manager counts them), nothing rumbles.
#[derive(Debug)]
pub struct RecordedPad;

impl PadFactory for VirtualPads {
    type Pad = HostPad;

    fn create(&mut self, spec: PadSpec, rumble: RumbleCallback) -> Result<HostPad, GamepadError> {
        match self {
            VirtualPads::Uinput => UinputFactory.create(spec, rumble).map(HostPad::Uinput),
            VirtualPads::Record => Ok(HostPad::Record(RecordedPad)),
        }
    }
}

impl PadDevice for HostPad {
    fn write(&mut self, events: &[EvdevEvent]) -> Result<(), GamepadError> {
        match self {
            HostPad::Uinput(pad) => pad.write(events),
            HostPad::Record(RecordedPad) => Ok(()),
        }
    }

    fn node(&self) -> Option<PathBuf> {
        match self {
            HostPad::Uinput(pad) => pad.node(),
            HostPad::Record(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::gamepad::PadKind;

    #[test]
    fn recorded_pads_accept_writes_and_have_no_device() {
        let spec = PadSpec {
            kind: PadKind::PlayStation,
            controller: 2,
            slot: 6,
        };
        let mut pad = VirtualPads::Record
            .create(spec, Arc::new(|_, _| {}))
            .unwrap();
        assert!(matches!(pad, HostPad::Record(RecordedPad)));
        let press = EvdevEvent::new(evdev::EventType::KEY.0, evdev::KeyCode::BTN_SOUTH.0, 1);
        pad.write(&[press]).unwrap();
        assert_eq!(pad.node(), None);
        assert_eq!(spec.device_name(), "Hati PS5 (virtual) pad (player 7)");
        assert_eq!(spec.phys(), "hati/player7");
    }

    #[test]
    fn the_debug_key_defaults_to_uinput_and_a_typo_names_the_key() {
        let config = Config::default_config().unwrap();
        assert_eq!(config.debug.virtual_pads, VirtualPads::Uinput);
        let config = Config::from_toml("[debug]\nvirtual_pads = \"record\"\n", "u", None).unwrap();
        assert_eq!(config.debug.virtual_pads, VirtualPads::Record);
        let error = Config::from_toml("[debug]\nvirtual_pads = \"fake\"\n", "cfg.toml", None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("cfg.toml:2") && error.contains("debug.virtual_pads"),
            "{error}"
        );
        assert!(error.contains("`uinput` or `record`"), "{error}");
    }
}
