//! Lobbies in the session manager: opening one on a running session, a client joining it, a
//! guest leaving or being removed, and the owner's end closing it (the bookkeeping is `lobby`).
//!
//! A guest gets a session of its own — its own ID, Moonlight key, RTSP handshake, control
//! stream, pipelines, encoder, FEC, pacing, adaptive bitrate and key-frame requests — that
//! borrows what the owner's session owns: its desktop (the guest's video source attaches to
//! the same compositor and scales to the guest's mode), its audio sink's monitor and its seat.
//! The guest's gamepads are its own virtual pads (so their rumble goes back to the guest), in
//! player slots of the owner's table after the owner's (`gamepad::slots`). A guest's session
//! releases nothing of the owner's when it ends (only its own pads and their slots); the owner's
//! end ends every guest first (`lobby_closed`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use hati_protocol::input::InputEvent;
use serde::Serialize;

use super::manager::NewSession;
use super::{LaunchError, LaunchParams, Session, SessionManager, SessionState, lock};
use crate::config::Config;
use crate::events::{EndReason, Event};
use crate::gamepad::{GamepadManager, Player};
use crate::input::SessionInput;
use crate::lobby::{Guest, GuestInput, GuestRole, LobbyError, LobbySettings, Owner};
use crate::state::clients::short_id;

/// What a guest's session borrows from, and how it takes part.
#[derive(Debug, Clone)]
pub struct GuestLink {
    /// The lobby's number.
    pub lobby: u32,
    /// The owner's session.
    pub owner: u32,
    /// Player or spectator.
    pub role: GuestRole,
    /// What a player may send besides gamepads.
    pub input: GuestInput,
    /// The owner's audio sink (name, PulseAudio server), if its app plays into one.
    pub(super) sink: Option<(String, String)>,
}

impl GuestLink {
    /// Whether the lobby's rule lets this guest's `event` through.
    pub fn accepts(&self, event: &InputEvent) -> bool {
        match (self.role, self.input) {
            (GuestRole::Spectator, _) => false,
            (GuestRole::Player, GuestInput::All) => true,
            (GuestRole::Player, GuestInput::GamepadOnly) => matches!(
                event,
                InputEvent::MultiController(_)
                    | InputEvent::ControllerArrival(_)
                    | InputEvent::ControllerTouch(_)
                    | InputEvent::ControllerMotion(_)
                    | InputEvent::ControllerBattery(_)
            ),
        }
    }
}

/// A client's launch of a lobby's "Join:" entry.
#[derive(Debug)]
pub struct JoinRequest {
    /// The client's certificate fingerprint (or browser credential hash).
    pub client_id: String,
    /// The client's name, for the lobby's guest list.
    pub client_name: String,
    /// The client's address.
    pub client_ip: IpAddr,
    /// The "Join:" entry's app ID.
    pub app_id: u32,
    /// Whether its role lets it play (else it may only watch).
    pub may_play: bool,
    /// The configuration in force.
    pub config: Arc<Config>,
    /// What `/launch` carried (the guest's own mode and key).
    pub params: LaunchParams,
}

/// An open lobby as the admin API, the dashboard and `hati lobby` show it.
#[derive(Debug, Clone, Serialize)]
pub struct LobbyView {
    /// Its number.
    pub lobby: u32,
    /// Its "Join:" entry's app ID.
    pub join_app_id: u32,
    /// Its "Join:" entry's title.
    pub join_title: String,
    /// The owner's session.
    pub session: u32,
    /// The owner's client ID (short).
    pub owner: String,
    /// The owner's client name.
    pub owner_name: String,
    /// The app.
    pub app: String,
    /// Whether clients must enter a PIN first.
    pub pin: bool,
    /// Most guests at once.
    pub max_guests: u32,
    /// Whether view-only guests are admitted.
    pub spectators: bool,
    /// What input players may send besides gamepads.
    pub guest_input: GuestInput,
    /// Guests, in join order.
    pub guests: Vec<GuestView>,
}

/// One guest in a [`LobbyView`].
#[derive(Debug, Clone, Serialize)]
pub struct GuestView {
    /// The guest's session.
    pub session: u32,
    /// Its client ID (short).
    pub client: String,
    /// Its client's name.
    pub name: String,
    /// Player or spectator.
    pub role: GuestRole,
}

impl LobbyView {
    fn of(lobby: &crate::lobby::Lobby) -> Self {
        Self {
            lobby: lobby.number,
            join_app_id: lobby.app_id,
            join_title: lobby.join_title(),
            session: lobby.owner.session,
            owner: short_id(&lobby.owner.client_id).to_owned(),
            owner_name: lobby.owner.client_name.clone(),
            app: lobby.owner.app_title.clone(),
            pin: lobby.settings.pin.is_some(),
            max_guests: lobby.settings.max_guests,
            spectators: lobby.settings.spectators,
            guest_input: lobby.settings.guest_input,
            guests: lobby
                .guests
                .iter()
                .map(|g| GuestView {
                    session: g.session,
                    client: short_id(&g.client_id).to_owned(),
                    name: g.client_name.clone(),
                    role: g.role,
                })
                .collect(),
        }
    }
}

impl SessionManager {
    /// Opens session `session`'s lobby (or changes its settings); `owner_name` is the owner's
    /// client name for the "Join:" entry.
    pub fn open_lobby(
        &self,
        session: u32,
        owner_name: &str,
        settings: LobbySettings,
    ) -> Result<LobbyView, LobbyError> {
        let owner = self
            .by_id(session)
            .filter(|s| s.guest().is_none() && s.state() != SessionState::Ended)
            .ok_or(LobbyError::NoSession(session))?;
        let taken: Vec<u32> = owner.config.apps.iter().map(|a| a.id()).collect();
        let (view, opened) = {
            let mut lobbies = lock(&self.lobbies);
            let opened = lobbies.of_owner(session).is_none();
            let lobby = lobbies.open(
                Owner {
                    session,
                    client_id: owner.client_id.clone(),
                    client_name: owner_name.to_owned(),
                    app_id: owner.app_id,
                    app_title: owner.app.title.clone(),
                },
                settings,
                &taken,
            )?;
            (LobbyView::of(lobby), opened)
        };
        // A session that ended meanwhile would leave its lobby open: close it again.
        if owner.state() == SessionState::Ended {
            lock(&self.lobbies).close(view.lobby);
            return Err(LobbyError::NoSession(session));
        }
        tracing::info!(parent: &owner.span, lobby = view.lobby, pin = view.pin, max_guests = view.max_guests, "lobby {}", if opened { "opened" } else { "settings changed" });
        self.services().events.publish(Event::LobbyOpened {
            lobby: view.lobby,
            session,
            app: view.app.clone(),
            pin: view.pin,
            max_guests: view.max_guests,
        });
        Ok(view)
    }

    /// Every open lobby, oldest first.
    pub fn lobbies(&self) -> Vec<LobbyView> {
        lock(&self.lobbies)
            .all()
            .iter()
            .map(LobbyView::of)
            .collect()
    }

    /// The open lobbies `client_id` may see as "Join:" entries (`may_play`: its role lets it
    /// play; else only lobbies that admit spectators), those with a PIN only once it entered
    /// it; `allows_app` is its app list.
    pub fn joinable_lobbies(
        &self,
        client_id: &str,
        may_play: bool,
        allows_app: impl Fn(u32) -> bool,
    ) -> Vec<LobbyView> {
        self.lobbies_open_to(client_id, may_play, allows_app)
            .into_iter()
            .filter_map(|(lobby, unlocked)| unlocked.then_some(lobby))
            .collect()
    }

    /// The open lobbies `client_id` may join by its role and app list (the rule of
    /// [`Self::joinable_lobbies`]), each with whether the PIN lets it in yet: the play page
    /// shows the locked ones too and asks for their PIN, which Moonlight cannot.
    pub fn lobbies_open_to(
        &self,
        client_id: &str,
        may_play: bool,
        allows_app: impl Fn(u32) -> bool,
    ) -> Vec<(LobbyView, bool)> {
        lock(&self.lobbies)
            .all()
            .iter()
            .filter(|l| l.owner.client_id != client_id)
            .filter(|l| may_play || l.settings.spectators)
            .filter(|l| allows_app(l.owner.app_id))
            .map(|l| (LobbyView::of(l), l.unlocked_for(client_id)))
            .collect()
    }

    /// The lobby whose "Join:" entry is app `app_id`: its number and the owner's app ID.
    pub fn lobby_for_app_id(&self, app_id: u32) -> Option<(u32, u32)> {
        lock(&self.lobbies)
            .by_app_id(app_id)
            .map(|l| (l.number, l.owner.app_id))
    }

    /// `client_id` entered `pin` for lobby `number`.
    pub fn unlock_lobby(&self, number: u32, client_id: &str, pin: &str) -> Result<(), LobbyError> {
        lock(&self.lobbies).unlock(number, client_id, pin, Instant::now())
    }

    /// Closes lobby `number`: every guest's session ends (`lobby_closed`), then
    /// `lobby_closed`. The owner's session goes on.
    pub async fn close_lobby(&self, number: u32) -> Result<(), LobbyError> {
        let lobby = lock(&self.lobbies)
            .close(number)
            .ok_or(LobbyError::NoLobby(number))?;
        for guest in &lobby.guests {
            // Box: ending a guest runs `finish`, which may close a lobby (not for a guest).
            Box::pin(self.end_session(guest.session, EndReason::LobbyClosed)).await;
        }
        tracing::info!(
            lobby = number,
            session = lobby.owner.session,
            "lobby closed"
        );
        self.services().events.publish(Event::LobbyClosed {
            lobby: number,
            session: lobby.owner.session,
        });
        Ok(())
    }

    /// Removes guest session `guest` from lobby `number` (the owner's or an admin's decision).
    pub async fn kick(&self, number: u32, guest: u32) -> Result<(), LobbyError> {
        let in_lobby = lock(&self.lobbies)
            .of_guest(guest)
            .is_some_and(|(lobby, _)| lobby.number == number);
        if !in_lobby {
            return Err(LobbyError::NoGuest {
                lobby: number,
                session: guest,
            });
        }
        Box::pin(self.end_session(guest, EndReason::Kicked)).await;
        Ok(())
    }

    /// A client launched a lobby's "Join:" entry: a session of its own on the owner's
    /// desktop, sound and seat, waiting for the client's stream like any launch.
    pub async fn join(self: &Arc<Self>, request: JoinRequest) -> Result<Arc<Session>, LaunchError> {
        let JoinRequest {
            client_id,
            client_name,
            client_ip,
            app_id,
            may_play,
            config,
            params,
        } = request;
        let (number, owner_session, guest_input) = {
            let lobbies = lock(&self.lobbies);
            let lobby = lobbies
                .by_app_id(app_id)
                .ok_or(LaunchError::UnknownApp(app_id))?;
            (
                lobby.number,
                lobby.owner.session,
                lobby.settings.guest_input,
            )
        };
        let role = lock(&self.lobbies).admit(number, &client_id, may_play)?;
        let owner = self
            .by_id(owner_session)
            .filter(|s| s.state() != SessionState::Ended)
            .ok_or(LobbyError::NoLobby(number))?;
        self.make_way_for_new_launch(&client_id).await;
        let session = self.register(NewSession {
            client_id: client_id.clone(),
            client_ip,
            placement: None,
            app_id: owner.app_id,
            app: owner.app.clone(),
            config,
            params,
        })?;
        let link = GuestLink {
            lobby: number,
            owner: owner_session,
            role,
            input: guest_input,
            sink: owner.audio_sink(),
        };
        let _ = session.guest.set(link);
        if let Some(desktop) = owner.desktop() {
            let _ = session.desktop.set(desktop.clone());
        }
        let seat = owner.desktop().map(|d| d.input_sender());
        let rumble = session.rumble_callback();
        let gamepads = GamepadManager::with_factory(
            session.id,
            owner.app.joypad_type,
            rumble,
            session.config.debug.virtual_pads,
        )
        .in_slots(Player::Guest(session.id), owner.pad_slots.clone())
        .publishing(self.services().events.clone());
        let input = Arc::new(SessionInput::new(seat, gamepads));
        let admitted = {
            let mut lifecycle = lock(&session.lifecycle);
            let mut lobbies = lock(&self.lobbies);
            let admitted = lifecycle.transition(SessionState::WaitingForClient)
                && lobbies.add_guest(
                    number,
                    Guest {
                        session: session.id,
                        client_id: client_id.clone(),
                        client_name,
                        role,
                    },
                );
            if admitted {
                let _ = session.input.set(input);
            }
            admitted
        };
        if !admitted {
            self.end_session(session.id, EndReason::LobbyClosed).await;
            return Err(LobbyError::NoLobby(number).into());
        }
        tracing::info!(parent: &session.span, lobby = number, owner = owner_session, ?role, "guest joined");
        self.services().events.publish(Event::SessionLaunched {
            session: session.id,
            client: short_id(&client_id).to_owned(),
            app: session.app.title.clone(),
        });
        self.services().events.publish(Event::GuestJoined {
            lobby: number,
            session: session.id,
            client: short_id(&client_id).to_owned(),
            role,
        });
        session.end_if_still_waiting(super::manager::START_TIMEOUT);
        session.arm_client_timeout();
        Ok(session)
    }

    /// Part of a session's end (`finish`), before its resources go: an owner's lobby closes
    /// (its guests end first); a guest leaves its lobby.
    pub(super) async fn leave_lobby(&self, session: &Session, reason: EndReason) {
        let owned = lock(&self.lobbies).of_owner(session.id).map(|l| l.number);
        if let Some(number) = owned {
            let _ = self.close_lobby(number).await;
        }
        if let Some(link) = session.guest() {
            // Gone already when its lobby is closing (that is why this guest ends).
            lock(&self.lobbies).remove_guest(session.id);
            tracing::info!(parent: &session.span, lobby = link.lobby, ?reason, "guest left");
            self.services().events.publish(Event::GuestLeft {
                lobby: link.lobby,
                session: session.id,
                client: short_id(&session.client_id).to_owned(),
                reason,
            });
        }
    }
}
