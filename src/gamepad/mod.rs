//! Virtual gamepads: Moonlight controllers become Linux evdev pads on `/dev/uinput`.
//!
//! The session manager creates one [`GamepadManager`] per session with the app's
//! `joypad_type` and a rumble callback, and passes it every [`InputEvent`] the control stream
//! decodes ([`GamepadManager::handle`] ignores the non-gamepad ones):
//!
//! * a controller arrival (`docs/PROTOCOL.md` §3.7) creates the pad with the type it names
//!   when the app's type is `auto`;
//! * a multi-controller event creates the pad if needed and writes only what changed
//!   ([`translate`]); a pad whose bit is clear in the active mask is removed;
//! * force feedback the game plays comes back through the rumble callback as
//!   `(controller, Motors)`: the session sends it to the client as a rumble message (0x010b).
//!
//! Without a usable `/dev/uinput` (missing, or not writable by Hati's user) pads cannot be
//! created: the manager logs that once per session, with the reason, drops gamepad input, and
//! everything else keeps working. Dropping the manager (or [`GamepadManager::remove_all`])
//! removes the session's pads.
//!
//! The pure parts ([`translate`], [`rumble`]) have no device; [`uinput`] is the device side.

pub mod rumble;
pub mod slots;
pub mod translate;
pub mod uinput;

use std::path::PathBuf;
use std::sync::Arc;

use evdev::InputEvent as EvdevEvent;
use hati_protocol::input::{ControllerArrival, ControllerState, InputEvent};
use serde::Deserialize;
use thiserror::Error;

pub use self::rumble::Motors;
pub use self::translate::{PadKind, PadState, translate};
pub use self::uinput::{UinputFactory, UinputPad};

/// Most pads a session can have (controller numbers 0–15).
pub const MAX_CONTROLLERS: usize = 16;

/// Controller types of the arrival event.
pub mod controller_type {
    /// Unknown.
    pub const UNKNOWN: u8 = 0;
    /// Xbox.
    pub const XBOX: u8 = 1;
    /// PlayStation.
    pub const PLAYSTATION: u8 = 2;
    /// Nintendo.
    pub const NINTENDO: u8 = 3;
}

/// Per-app `joypad_type`: which pad the virtual one imitates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoypadType {
    /// Always an Xbox One pad (the default: every game knows it).
    #[default]
    Xbox,
    /// Always a DualSense.
    Ps,
    /// Always a Switch Pro Controller.
    Switch,
    /// Whatever the client's controller is (from its arrival event); Xbox when unknown.
    Auto,
}

impl JoypadType {
    /// The pad kind to create, given the controller type from the arrival event (if any).
    pub fn resolve(self, controller_type: Option<u8>) -> PadKind {
        match self {
            JoypadType::Xbox => PadKind::Xbox,
            JoypadType::Ps => PadKind::PlayStation,
            JoypadType::Switch => PadKind::Nintendo,
            JoypadType::Auto => match controller_type {
                Some(controller_type::PLAYSTATION) => PadKind::PlayStation,
                Some(controller_type::NINTENDO) => PadKind::Nintendo,
                _ => PadKind::Xbox,
            },
        }
    }
}

/// Receives rumble for the client: `(controller number, motor values)`. Called from the pad's
/// force-feedback thread.
pub type RumbleCallback = Arc<dyn Fn(u8, Motors) + Send + Sync>;

/// Why a pad could not be created or written.
#[derive(Debug, Error)]
pub enum GamepadError {
    /// `/dev/uinput` is missing or not writable; no pad can be created.
    #[error("virtual gamepads unavailable: {reason}")]
    Unavailable {
        /// Why, and what to do about it.
        reason: String,
    },
    /// The kernel refused the device.
    #[error("cannot create a virtual gamepad: {0}")]
    Create(std::io::Error),
    /// Writing events failed.
    #[error("cannot write gamepad events: {0}")]
    Write(std::io::Error),
    /// The force-feedback thread could not be started.
    #[error("cannot start the gamepad force-feedback thread: {0}")]
    Thread(std::io::Error),
}

/// A pad device the manager writes translated events to.
pub trait PadDevice {
    /// Writes one batch of events, followed by `SYN_REPORT`.
    fn write(&mut self, events: &[EvdevEvent]) -> Result<(), GamepadError>;

    /// The device node (`/dev/input/eventN`), when known.
    fn node(&self) -> Option<PathBuf> {
        None
    }
}

/// Creates pad devices.
pub trait PadFactory {
    /// The device type.
    type Pad: PadDevice;

    /// Creates pad `controller` of `kind`; its force feedback goes to `rumble`.
    fn create(
        &mut self,
        kind: PadKind,
        controller: u8,
        rumble: RumbleCallback,
    ) -> Result<Self::Pad, GamepadError>;
}

struct Slot<P> {
    pad: P,
    kind: PadKind,
    state: PadState,
    write_failed: bool,
}

/// The virtual pads of one session.
pub struct GamepadManager<F: PadFactory = UinputFactory> {
    session_id: u32,
    joypad: JoypadType,
    factory: F,
    rumble: RumbleCallback,
    slots: [Option<Slot<F::Pad>>; MAX_CONTROLLERS],
    arrivals: [Option<u8>; MAX_CONTROLLERS],
    unavailable: Option<String>,
    create_failure_logged: u16,
    unmapped_noted: bool,
}

impl<F: PadFactory> std::fmt::Debug for GamepadManager<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GamepadManager")
            .field("session_id", &self.session_id)
            .field("joypad", &self.joypad)
            .field("connected", &self.connected())
            .field("unavailable", &self.unavailable)
            .finish()
    }
}

impl GamepadManager<UinputFactory> {
    /// A manager creating pads on `/dev/uinput`.
    pub fn new(session_id: u32, joypad: JoypadType, rumble: RumbleCallback) -> Self {
        Self::with_factory(session_id, joypad, rumble, UinputFactory)
    }
}

impl<F: PadFactory> GamepadManager<F> {
    /// A manager creating pads with `factory`.
    pub fn with_factory(
        session_id: u32,
        joypad: JoypadType,
        rumble: RumbleCallback,
        factory: F,
    ) -> Self {
        Self {
            session_id,
            joypad,
            factory,
            rumble,
            slots: std::array::from_fn(|_| None),
            arrivals: [None; MAX_CONTROLLERS],
            unavailable: None,
            create_failure_logged: 0,
            unmapped_noted: false,
        }
    }

    /// Applies a gamepad event; returns false (doing nothing) for any other event.
    pub fn handle(&mut self, event: &InputEvent) -> bool {
        match event {
            InputEvent::ControllerArrival(arrival) => self.arrival(arrival),
            InputEvent::MultiController(state) => self.update(state),
            _ => return false,
        }
        true
    }

    /// A controller announced itself: remember its type and create its pad.
    pub fn arrival(&mut self, arrival: &ControllerArrival) {
        let n = usize::from(arrival.controller_number);
        let Some(known) = self.arrivals.get_mut(n) else {
            tracing::debug!(
                session = self.session_id,
                controller = n,
                "controller number out of range"
            );
            return;
        };
        *known = Some(arrival.controller_type);
        let kind = self.joypad.resolve(Some(arrival.controller_type));
        tracing::debug!(
            session = self.session_id,
            controller = n,
            controller_type = arrival.controller_type,
            capabilities = arrival.capabilities,
            "controller arrived"
        );
        // A pad created from state before the arrival may be of the wrong kind.
        if self
            .slots
            .get(n)
            .and_then(Option::as_ref)
            .is_some_and(|slot| slot.kind != kind)
        {
            self.remove_pad(n);
        }
        self.ensure(n);
    }

    /// A controller's full state: remove pads whose mask bit is clear, then create this pad if
    /// needed and write what changed.
    pub fn update(&mut self, state: &ControllerState) {
        for index in 0..MAX_CONTROLLERS {
            if state.active_gamepad_mask & (1 << index) == 0
                && self.slots.get(index).is_some_and(Option::is_some)
            {
                // index < 16, so it fits a u8.
                self.remove(index as u8);
            }
        }
        let n = usize::from(state.controller_number);
        if n >= MAX_CONTROLLERS {
            tracing::debug!(
                session = self.session_id,
                controller = n,
                "controller number out of range"
            );
            return;
        }
        if state.active_gamepad_mask & (1 << n) == 0 {
            return;
        }
        if !self.ensure(n) {
            return;
        }
        let next = PadState::from(state);
        let session_id = self.session_id;
        let Some(slot) = self.slots.get_mut(n).and_then(Option::as_mut) else {
            return;
        };
        let unmapped = translate::unmapped_buttons(slot.kind, next.buttons);
        if unmapped != 0 && !self.unmapped_noted {
            self.unmapped_noted = true;
            tracing::debug!(session = session_id, controller = n, unmapped = format!("{unmapped:#x}"), kind = ?slot.kind, "buttons this pad type has no key for are ignored");
        }
        let events = translate(slot.kind, &slot.state, &next);
        slot.state = next;
        if events.is_empty() {
            return;
        }
        match slot.pad.write(&events) {
            Ok(()) => slot.write_failed = false,
            Err(error) => {
                if !slot.write_failed {
                    tracing::warn!(session = session_id, controller = n, %error, "gamepad events dropped");
                }
                slot.write_failed = true;
            }
        }
    }

    /// Removes pad `controller`, if it exists, and forgets its arrival.
    pub fn remove(&mut self, controller: u8) {
        let n = usize::from(controller);
        self.remove_pad(n);
        if let Some(known) = self.arrivals.get_mut(n) {
            *known = None;
        }
    }

    /// Removes every pad of the session.
    pub fn remove_all(&mut self) {
        for controller in 0..MAX_CONTROLLERS as u8 {
            self.remove(controller);
        }
    }

    /// The pads that exist, with their kinds.
    pub fn connected(&self) -> Vec<(u8, PadKind)> {
        (0u8..)
            .zip(&self.slots)
            .filter_map(|(n, slot)| slot.as_ref().map(|slot| (n, slot.kind)))
            .collect()
    }

    /// Why pads cannot be created in this session, once that is known.
    pub fn unavailable_reason(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    fn remove_pad(&mut self, n: usize) {
        if let Some(slot) = self.slots.get_mut(n).and_then(Option::take) {
            tracing::info!(session = self.session_id, controller = n, kind = ?slot.kind, "gamepad removed");
            drop(slot);
        }
    }

    /// Makes sure pad `n` exists; false when it cannot.
    fn ensure(&mut self, n: usize) -> bool {
        if self.slots.get(n).is_some_and(Option::is_some) {
            return true;
        }
        if self.unavailable.is_some() {
            return false;
        }
        let (Ok(controller), Some(known)) = (u8::try_from(n), self.arrivals.get(n)) else {
            return false;
        };
        let kind = self.joypad.resolve(*known);
        match self
            .factory
            .create(kind, controller, Arc::clone(&self.rumble))
        {
            Ok(pad) => {
                let node = pad.node();
                tracing::info!(session = self.session_id, controller = n, ?kind, node = ?node, "gamepad created");
                if let Some(slot) = self.slots.get_mut(n) {
                    *slot = Some(Slot {
                        pad,
                        kind,
                        state: PadState::REST,
                        write_failed: false,
                    });
                }
                true
            }
            Err(GamepadError::Unavailable { reason }) => {
                tracing::warn!(
                    session = self.session_id,
                    %reason,
                    "virtual gamepads are unavailable in this session; gamepad input is ignored, everything else keeps working"
                );
                self.unavailable = Some(reason);
                false
            }
            Err(error) => {
                let bit = 1u16 << n;
                if self.create_failure_logged & bit == 0 {
                    self.create_failure_logged |= bit;
                    tracing::warn!(session = self.session_id, controller = n, %error, "cannot create gamepad");
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests;
