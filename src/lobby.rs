//! Lobbies ("play together"): a running session opened to other paired clients, who join the
//! same app, desktop and sound as guests with their own streams. This module is the
//! bookkeeping only — which lobbies are open, their settings, who is in each, who entered the
//! PIN — with no session or device in it (so the config, the events and the sessions can all name its
//! types); `session::guests` joins and ends the guests' sessions.
//!
//! A Moonlight client cannot send anything but an app ID with `/launch`, so an open lobby shows
//! as one more app, "Join: <app> (<owner>)", with ID [`LOBBY_APP_BASE`] + the lobby's number,
//! to the clients allowed to join it; a lobby with a PIN shows only to clients that entered the
//! PIN (`hati lobby unlock`, the admin API or the play page) since it opened.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// App IDs of "Join:" entries start here: above the IDs config titles hash to (`0x7fff_ffff`
/// masked) only in the rare case a title hashes into this range, which [`Lobbies::open`]
/// steps over.
pub const LOBBY_APP_BASE: u32 = 0x7f00_0000;
/// Most guests one lobby admits (players and spectators together): Moonlight's 16 controller
/// slots leave 12 after the owner's four.
pub const MAX_GUESTS: u32 = 12;
/// Most lobbies open at once (one per session at most anyway).
pub const MAX_LOBBIES: usize = 64;
/// Wrong PINs a client may enter for one lobby before it must wait [`PIN_LOCKOUT`].
pub const MAX_PIN_FAILURES: u32 = 5;
/// How long a client that entered too many wrong PINs is refused.
pub const PIN_LOCKOUT: Duration = Duration::from_secs(60);
/// Clients whose PIN attempts one lobby remembers (an unauthenticated page can try many
/// names; the oldest is forgotten first).
const MAX_TRACKED_CLIENTS: usize = 256;

/// What keyboard and mouse input guests may send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestInput {
    /// Keyboard, mouse, touch, pen and gamepads, like the owner.
    #[default]
    All,
    /// Gamepads only (Steam Remote Play Together's default): the rest is dropped and counted.
    GamepadOnly,
}

/// How a guest takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestRole {
    /// Sends input (by the lobby's [`GuestInput`] rule) and gets player slots for its pads.
    Player,
    /// Watches: every input it sends is dropped at the host and counted.
    Spectator,
}

/// A lobby's settings, from `hati lobby open`, the admin API or the app's `[apps.lobby]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LobbySettings {
    /// Clients must enter this PIN (4 to 8 digits) before they see the lobby.
    pub pin: Option<String>,
    /// Most guests at once, 1 to [`MAX_GUESTS`].
    pub max_guests: u32,
    /// Whether view-only guests are admitted (clients with the spectator role).
    pub spectators: bool,
    /// What input players may send besides gamepads.
    pub guest_input: GuestInput,
}

impl Default for LobbySettings {
    fn default() -> Self {
        Self {
            pin: None,
            max_guests: 3,
            spectators: true,
            guest_input: GuestInput::All,
        }
    }
}

impl LobbySettings {
    /// Checks the PIN's form and the guest limit.
    pub fn validate(&self) -> Result<(), LobbyError> {
        if let Some(pin) = &self.pin
            && (!(4..=8).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(LobbyError::BadPin);
        }
        if !(1..=MAX_GUESTS).contains(&self.max_guests) {
            return Err(LobbyError::BadMaxGuests(self.max_guests));
        }
        Ok(())
    }
}

/// Why a lobby could not be opened, joined or unlocked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LobbyError {
    /// No such session (or it is a guest's, which cannot be opened).
    #[error("no session {0} that could be opened (it ended, or it is a guest's)")]
    NoSession(u32),
    /// No lobby with this number.
    #[error("no open lobby {0}")]
    NoLobby(u32),
    /// The PIN is not 4 to 8 digits.
    #[error("a lobby PIN is 4 to 8 digits")]
    BadPin,
    /// The guest limit is out of range.
    #[error("max_guests must be 1 to {MAX_GUESTS} (got {0})")]
    BadMaxGuests(u32),
    /// Too many lobbies are open.
    #[error("{MAX_LOBBIES} lobbies are open already")]
    TooManyLobbies,
    /// The lobby needs a PIN and this client has not entered it.
    #[error("lobby {0} needs its PIN: enter it on the host's /lobby page first")]
    PinNeeded(u32),
    /// A wrong PIN was entered.
    #[error("wrong PIN for lobby {lobby} ({left} tries left before a {lockout} s wait)")]
    WrongPin {
        /// The lobby.
        lobby: u32,
        /// Tries left.
        left: u32,
        /// The wait after the last one, s.
        lockout: u64,
    },
    /// Too many wrong PINs: wait.
    #[error("too many wrong PINs for lobby {lobby}: try again in {seconds} s")]
    LockedOut {
        /// The lobby.
        lobby: u32,
        /// Seconds left.
        seconds: u64,
    },
    /// The lobby is full.
    #[error("lobby {lobby} is full ({max} guests)")]
    Full {
        /// The lobby.
        lobby: u32,
        /// Its limit.
        max: u32,
    },
    /// A spectator asked to join a lobby that admits none.
    #[error("lobby {0} admits players only, and this client may only watch (role spectator)")]
    NoSpectators(u32),
    /// The owner's own client cannot be its guest.
    #[error("this client owns lobby {0}")]
    OwnLobby(u32),
    /// No such guest in the lobby.
    #[error("session {session} is no guest of lobby {lobby}")]
    NoGuest {
        /// The lobby.
        lobby: u32,
        /// The session asked for.
        session: u32,
    },
}

/// One guest of a lobby.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Guest {
    /// The guest's own session.
    pub session: u32,
    /// Its client ID.
    pub client_id: String,
    /// Its client's name.
    pub client_name: String,
    /// How it takes part.
    pub role: GuestRole,
}

/// The owner side of a lobby, when it opens.
#[derive(Debug, Clone)]
pub struct Owner {
    /// The owner's session.
    pub session: u32,
    /// Its client ID.
    pub client_id: String,
    /// Its client's name.
    pub client_name: String,
    /// The app the session runs.
    pub app_id: u32,
    /// The app's title.
    pub app_title: String,
}

#[derive(Debug, Clone, Copy)]
struct PinFailures {
    count: u32,
    last: Instant,
}

/// One open lobby.
#[derive(Debug, Clone)]
pub struct Lobby {
    /// Its number: small, never reused while the host runs.
    pub number: u32,
    /// Who opened it, and on what.
    pub owner: Owner,
    /// Its settings.
    pub settings: LobbySettings,
    /// Guests, in join order.
    pub guests: Vec<Guest>,
    /// Its "Join:" entry's app ID.
    pub app_id: u32,
    unlocked: HashSet<String>,
    failures: HashMap<String, PinFailures>,
}

impl Lobby {
    /// The title of its "Join:" entry.
    pub fn join_title(&self) -> String {
        format!(
            "Join: {} ({})",
            self.owner.app_title, self.owner.client_name
        )
    }

    /// Whether `client_id` may see and join it as far as the PIN goes.
    pub fn unlocked_for(&self, client_id: &str) -> bool {
        self.settings.pin.is_none() || self.unlocked.contains(client_id)
    }
}

/// Every open lobby of the host.
#[derive(Debug, Default)]
pub struct Lobbies {
    open: Vec<Lobby>,
    last_number: u32,
}

impl Lobbies {
    /// Opens a lobby on `owner`'s session, or changes the settings of the one already open
    /// there; `taken_app_ids` are the configured apps' IDs, which a "Join:" ID must not be.
    pub fn open(
        &mut self,
        owner: Owner,
        settings: LobbySettings,
        taken_app_ids: &[u32],
    ) -> Result<&Lobby, LobbyError> {
        settings.validate()?;
        if let Some(index) = self
            .open
            .iter()
            .position(|l| l.owner.session == owner.session)
        {
            let lobby = &mut self.open[index];
            if lobby.settings.pin != settings.pin {
                lobby.unlocked.clear();
            }
            lobby.settings = settings;
            return Ok(&self.open[index]);
        }
        if self.open.len() >= MAX_LOBBIES {
            return Err(LobbyError::TooManyLobbies);
        }
        let number = loop {
            self.last_number = self.last_number.wrapping_add(1) % (u32::MAX - LOBBY_APP_BASE);
            let number = self.last_number.max(1);
            let taken = taken_app_ids.contains(&(LOBBY_APP_BASE + number))
                || self.open.iter().any(|l| l.number == number);
            if !taken {
                break number;
            }
        };
        self.open.push(Lobby {
            number,
            owner,
            settings,
            guests: Vec::new(),
            app_id: LOBBY_APP_BASE + number,
            unlocked: HashSet::new(),
            failures: HashMap::new(),
        });
        Ok(self.open.last().expect("just pushed"))
    }

    /// Closes lobby `number`; what it was (its guests still to end).
    pub fn close(&mut self, number: u32) -> Option<Lobby> {
        let index = self.open.iter().position(|l| l.number == number)?;
        Some(self.open.remove(index))
    }

    /// The lobby open on session `session` (its owner's).
    pub fn of_owner(&self, session: u32) -> Option<&Lobby> {
        self.open.iter().find(|l| l.owner.session == session)
    }

    /// The lobby with this number.
    pub fn get(&self, number: u32) -> Option<&Lobby> {
        self.open.iter().find(|l| l.number == number)
    }

    /// The lobby whose "Join:" entry has this app ID.
    pub fn by_app_id(&self, app_id: u32) -> Option<&Lobby> {
        self.open.iter().find(|l| l.app_id == app_id)
    }

    /// The lobby `session` is a guest of, and the guest.
    pub fn of_guest(&self, session: u32) -> Option<(&Lobby, &Guest)> {
        self.open.iter().find_map(|lobby| {
            lobby
                .guests
                .iter()
                .find(|g| g.session == session)
                .map(|guest| (lobby, guest))
        })
    }

    /// Every open lobby, oldest first.
    pub fn all(&self) -> &[Lobby] {
        &self.open
    }

    /// `client_id` entered `pin` for lobby `number`: on success it sees and may join the lobby
    /// until it closes or its PIN changes.
    pub fn unlock(
        &mut self,
        number: u32,
        client_id: &str,
        pin: &str,
        now: Instant,
    ) -> Result<(), LobbyError> {
        let lobby = self
            .open
            .iter_mut()
            .find(|l| l.number == number)
            .ok_or(LobbyError::NoLobby(number))?;
        let Some(expected) = lobby.settings.pin.as_deref() else {
            return Ok(());
        };
        if let Some(failures) = lobby.failures.get(client_id)
            && failures.count >= MAX_PIN_FAILURES
        {
            let waited = now.saturating_duration_since(failures.last);
            if waited < PIN_LOCKOUT {
                return Err(LobbyError::LockedOut {
                    lobby: number,
                    seconds: (PIN_LOCKOUT - waited).as_secs().max(1),
                });
            }
            lobby.failures.remove(client_id);
        }
        if crate::crypto::constant_time_eq(expected.as_bytes(), pin.as_bytes()) {
            lobby.failures.remove(client_id);
            lobby.unlocked.insert(client_id.to_owned());
            return Ok(());
        }
        if lobby.failures.len() >= MAX_TRACKED_CLIENTS && !lobby.failures.contains_key(client_id) {
            let oldest = lobby
                .failures
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                lobby.failures.remove(&oldest);
            }
        }
        let failures = lobby
            .failures
            .entry(client_id.to_owned())
            .or_insert(PinFailures {
                count: 0,
                last: now,
            });
        failures.count += 1;
        failures.last = now;
        Err(LobbyError::WrongPin {
            lobby: number,
            left: MAX_PIN_FAILURES.saturating_sub(failures.count),
            lockout: PIN_LOCKOUT.as_secs(),
        })
    }

    /// Whether `client_id`, which may play (`may_play`) or only watch, may join lobby
    /// `number` now; the role it would join with.
    pub fn admit(
        &self,
        number: u32,
        client_id: &str,
        may_play: bool,
    ) -> Result<GuestRole, LobbyError> {
        let lobby = self.get(number).ok_or(LobbyError::NoLobby(number))?;
        if lobby.owner.client_id == client_id {
            return Err(LobbyError::OwnLobby(number));
        }
        if !lobby.unlocked_for(client_id) {
            return Err(LobbyError::PinNeeded(number));
        }
        let role = if may_play {
            GuestRole::Player
        } else if lobby.settings.spectators {
            GuestRole::Spectator
        } else {
            return Err(LobbyError::NoSpectators(number));
        };
        let max = lobby.settings.max_guests;
        if lobby.guests.len() >= usize::try_from(max).unwrap_or(usize::MAX) {
            return Err(LobbyError::Full { lobby: number, max });
        }
        Ok(role)
    }

    /// Adds `guest` to lobby `number` (after [`Self::admit`]); false if the lobby closed
    /// meanwhile.
    pub fn add_guest(&mut self, number: u32, guest: Guest) -> bool {
        match self.open.iter_mut().find(|l| l.number == number) {
            Some(lobby) => {
                lobby.guests.push(guest);
                true
            }
            None => false,
        }
    }

    /// Removes the guest whose session is `session`; its lobby's number and the guest.
    pub fn remove_guest(&mut self, session: u32) -> Option<(u32, Guest)> {
        self.open.iter_mut().find_map(|lobby| {
            let index = lobby.guests.iter().position(|g| g.session == session)?;
            Some((lobby.number, lobby.guests.remove(index)))
        })
    }
}

#[cfg(test)]
mod tests;
