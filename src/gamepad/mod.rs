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
//! Every pad takes an app player slot ([`slots`]) when it is created and frees it when it is
//! removed. A session's table is its own, except in a lobby: the owner's and every guest's
//! manager share the owner's table ([`GamepadManager::in_slots`]), so the app sees the owner's
//! pads 0–3 as players 1–4 and each guest's after them, while each guest's rumble still goes
//! back through its own manager's callback to that guest. The device's name says its player.
//!
//! Without a usable `/dev/uinput` (missing, or not writable by Hati's user) pads cannot be
//! created: the manager logs that once per session, with the reason, drops gamepad input, and
//! everything else keeps working. Dropping the manager (or [`GamepadManager::remove_all`])
//! removes the session's pads.
//!
//! The pure parts ([`translate`], [`rumble`], [`slots`]) have no device; [`uinput`] is the
//! device side, and [`factory`] picks it or a recorded pad without a device (`[debug]
//! virtual_pads`).

pub mod factory;
pub mod rumble;
pub mod slots;
pub mod translate;
pub mod uinput;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use evdev::InputEvent as EvdevEvent;
use hati_protocol::input::{ControllerArrival, ControllerState, InputEvent};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use self::factory::{HostPad, RecordedPad, VirtualPads};
pub use self::rumble::Motors;
pub use self::slots::{PadSlots, Player};
pub use self::translate::{PadKind, PadState, translate};
pub use self::uinput::{UinputFactory, UinputPad};
use crate::events::{Event, EventBus};

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

/// One app's player slots, shared by the managers of a lobby's owner and guests (input
/// arrives at human rates: a short lock per pad created or removed).
pub type SharedPadSlots = Arc<Mutex<PadSlots>>;

/// The pad to create: its kind, the client's controller number and the app player slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PadSpec {
    /// Which real pad it imitates.
    pub kind: PadKind,
    /// The client's controller number (rumble goes back under it).
    pub controller: u8,
    /// The app player slot, 0–15.
    pub slot: u8,
}

impl PadSpec {
    /// The player number the app shows, from 1.
    pub fn player(&self) -> u16 {
        u16::from(self.slot) + 1
    }

    /// The device name: the kind's name and the player, e.g. `Hati PS5 (virtual) pad (player 5)`.
    pub fn device_name(&self) -> String {
        format!("{} (player {})", self.kind.identity().name, self.player())
    }

    /// The device's physical location, which names the player too (`hati/player5`).
    pub fn phys(&self) -> String {
        format!("hati/player{}", self.player())
    }
}

/// A pad as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PadView {
    /// The client's controller number.
    pub controller: u8,
    /// The app player slot.
    pub slot: u8,
    /// Which real pad it imitates.
    pub kind: PadKind,
    /// Its `/dev/input/eventN` node, when known (never for a recorded pad).
    pub device: Option<PathBuf>,
    /// Evdev events written to it.
    pub events: u64,
}

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

    /// Creates the pad `spec` describes; its force feedback goes to `rumble` under
    /// `spec.controller`.
    fn create(&mut self, spec: PadSpec, rumble: RumbleCallback) -> Result<Self::Pad, GamepadError>;
}

struct Pad<P> {
    device: P,
    kind: PadKind,
    slot: u8,
    state: PadState,
    events: u64,
    write_failed: bool,
}

/// The virtual pads of one session.
pub struct GamepadManager<F: PadFactory = VirtualPads> {
    session_id: u32,
    joypad: JoypadType,
    factory: F,
    rumble: RumbleCallback,
    player: Player,
    player_slots: SharedPadSlots,
    events: Option<EventBus>,
    pads: [Option<Pad<F::Pad>>; MAX_CONTROLLERS],
    arrivals: [Option<u8>; MAX_CONTROLLERS],
    unavailable: Option<String>,
    create_failure_logged: u16,
    no_slot_logged: u16,
    unmapped_noted: bool,
}

impl<F: PadFactory> std::fmt::Debug for GamepadManager<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GamepadManager")
            .field("session_id", &self.session_id)
            .field("joypad", &self.joypad)
            .field("player", &self.player)
            .field("connected", &self.connected())
            .field("unavailable", &self.unavailable)
            .finish()
    }
}

impl GamepadManager<VirtualPads> {
    /// A manager creating pads on `/dev/uinput`.
    pub fn new(session_id: u32, joypad: JoypadType, rumble: RumbleCallback) -> Self {
        Self::with_factory(session_id, joypad, rumble, VirtualPads::Uinput)
    }
}

impl<F: PadFactory> GamepadManager<F> {
    /// A manager creating pads with `factory`, as the owner of a slot table of its own.
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
            player: Player::Owner,
            player_slots: SharedPadSlots::default(),
            events: None,
            pads: std::array::from_fn(|_| None),
            arrivals: [None; MAX_CONTROLLERS],
            unavailable: None,
            create_failure_logged: 0,
            no_slot_logged: 0,
            unmapped_noted: false,
        }
    }

    /// Takes the app player slots of this session's pads from `slots` as `player`: the lobby
    /// owner's session's table, which its guests' managers share.
    pub fn in_slots(mut self, player: Player, slots: SharedPadSlots) -> Self {
        self.player = player;
        self.player_slots = slots;
        self
    }

    /// Publishes `gamepad_connected` and `gamepad_removed` on `events`.
    pub fn publishing(mut self, events: EventBus) -> Self {
        self.events = Some(events);
        self
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
            .pads
            .get(n)
            .and_then(Option::as_ref)
            .is_some_and(|pad| pad.kind != kind)
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
                && self.pads.get(index).is_some_and(Option::is_some)
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
        let Some(pad) = self.pads.get_mut(n).and_then(Option::as_mut) else {
            return;
        };
        let unmapped = translate::unmapped_buttons(pad.kind, next.buttons);
        if unmapped != 0 && !self.unmapped_noted {
            self.unmapped_noted = true;
            tracing::debug!(session = session_id, controller = n, unmapped = format!("{unmapped:#x}"), kind = ?pad.kind, "buttons this pad type has no key for are ignored");
        }
        let events = translate(pad.kind, &pad.state, &next);
        pad.state = next;
        if events.is_empty() {
            return;
        }
        match pad.device.write(&events) {
            Ok(()) => {
                pad.write_failed = false;
                pad.events = pad.events.saturating_add(events.len() as u64);
            }
            Err(error) => {
                if !pad.write_failed {
                    tracing::warn!(session = session_id, controller = n, %error, "gamepad events dropped");
                }
                pad.write_failed = true;
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

    /// Removes every pad of the session and frees every player slot it held.
    pub fn remove_all(&mut self) {
        for controller in 0..MAX_CONTROLLERS as u8 {
            self.remove(controller);
        }
        // Each removal freed its own slot; this makes sure a departed player keeps none in a
        // table its lobby still shares, whatever path allocated one.
        self.lock_slots().release(self.player);
    }

    /// The pads that exist, with their kinds.
    pub fn connected(&self) -> Vec<(u8, PadKind)> {
        (0u8..)
            .zip(&self.pads)
            .filter_map(|(n, pad)| pad.as_ref().map(|pad| (n, pad.kind)))
            .collect()
    }

    /// The pads that exist, by controller number, as the admin API lists them.
    pub fn pads(&self) -> Vec<PadView> {
        (0u8..)
            .zip(&self.pads)
            .filter_map(|(controller, pad)| {
                pad.as_ref().map(|pad| PadView {
                    controller,
                    slot: pad.slot,
                    kind: pad.kind,
                    device: pad.device.node(),
                    events: pad.events,
                })
            })
            .collect()
    }

    /// Why pads cannot be created in this session, once that is known.
    pub fn unavailable_reason(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    fn remove_pad(&mut self, n: usize) {
        let (Some(pad), Ok(controller)) =
            (self.pads.get_mut(n).and_then(Option::take), u8::try_from(n))
        else {
            return;
        };
        tracing::info!(session = self.session_id, controller = n, slot = pad.slot, kind = ?pad.kind, "gamepad removed");
        let slot = pad.slot;
        // The device goes before its slot is offered to another pad.
        drop(pad);
        self.lock_slots().unplug(self.player, controller);
        self.publish(Event::GamepadRemoved {
            session: self.session_id,
            controller,
            slot,
        });
    }

    fn lock_slots(&self) -> MutexGuard<'_, PadSlots> {
        self.player_slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, event: Event) {
        if let Some(events) = &self.events {
            events.publish(event);
        }
    }

    /// Makes sure pad `n` exists; false when it cannot.
    fn ensure(&mut self, n: usize) -> bool {
        if self.pads.get(n).is_some_and(Option::is_some) {
            return true;
        }
        if self.unavailable.is_some() {
            return false;
        }
        let (Ok(controller), Some(known)) = (u8::try_from(n), self.arrivals.get(n)) else {
            return false;
        };
        let kind = self.joypad.resolve(*known);
        let Some(slot) = self.lock_slots().slot_for(self.player, controller) else {
            let bit = 1u16 << n;
            if self.no_slot_logged & bit == 0 {
                self.no_slot_logged |= bit;
                tracing::debug!(session = self.session_id, controller = n, player = ?self.player, "no gamepad created: every player slot this client may take is held");
            }
            return false;
        };
        let spec = PadSpec {
            kind,
            controller,
            slot,
        };
        let created = self.factory.create(spec, Arc::clone(&self.rumble));
        if created.is_err() {
            // No pad holds the slot: another controller may take it.
            self.lock_slots().unplug(self.player, controller);
        }
        match created {
            Ok(device) => {
                let node = device.node();
                tracing::info!(session = self.session_id, controller = n, slot, ?kind, node = ?node, "gamepad created");
                if let Some(entry) = self.pads.get_mut(n) {
                    *entry = Some(Pad {
                        device,
                        kind,
                        slot,
                        state: PadState::REST,
                        events: 0,
                        write_failed: false,
                    });
                }
                self.publish(Event::GamepadConnected {
                    session: self.session_id,
                    controller,
                    slot,
                    kind: kind.name(),
                });
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

impl<F: PadFactory> Drop for GamepadManager<F> {
    fn drop(&mut self) {
        // Frees the slots in a lobby's shared table even when nobody called remove_all.
        self.remove_all();
    }
}

#[cfg(test)]
mod tests;
