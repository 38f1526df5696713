//! The admin API's lobby endpoints (`hati lobby`, the dashboard): list, open (or change), close,
//! remove a guest, and enter a lobby's PIN for a client. Each answers `(status, JSON)`.

use hati_protocol::query::Query;
use hyper::StatusCode;
use serde_json::{Value, json};

use super::lookup::find_client;
use crate::host::Host;
use crate::lobby::{GuestInput, LobbyError, LobbySettings};

/// `GET /lobbies`.
pub(super) fn list(host: &Host) -> (StatusCode, Value) {
    (StatusCode::OK, json!(host.sessions.lobbies()))
}

/// `POST /lobbies/open?session=ID[&pin=1234][&max_guests=N][&spectators=false]
/// [&guest_input=gamepad_only]`: opens the session's lobby, or changes its settings.
pub(super) fn open(host: &Host, query: &Query) -> (StatusCode, Value) {
    let session: u32 = match query.number("session") {
        Ok(id) => id,
        Err(error) => return bad_request(error.to_string()),
    };
    let settings = match settings(query) {
        Ok(settings) => settings,
        Err(message) => return bad_request(message),
    };
    let owner_name = host
        .sessions
        .by_id(session)
        .and_then(|s| {
            let clients = host
                .clients
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            clients.by_id(&s.client_id).map(|c| c.name.clone())
        })
        .unwrap_or_else(|| "owner".to_owned());
    match host.sessions.open_lobby(session, &owner_name, settings) {
        Ok(view) => (StatusCode::OK, json!({ "lobby": view })),
        Err(error) => refusal(&error),
    }
}

/// `POST /lobbies/close?lobby=N`: every guest's stream ends; the owner's goes on.
pub(super) async fn close(host: &Host, query: &Query) -> (StatusCode, Value) {
    let lobby: u32 = match query.number("lobby") {
        Ok(n) => n,
        Err(error) => return bad_request(error.to_string()),
    };
    match host.sessions.close_lobby(lobby).await {
        Ok(()) => (StatusCode::OK, json!({ "closed": lobby })),
        Err(error) => refusal(&error),
    }
}

/// `POST /lobbies/kick?lobby=N&session=G`: ends guest session G.
pub(super) async fn kick(host: &Host, query: &Query) -> (StatusCode, Value) {
    let (lobby, session): (u32, u32) = match (query.number("lobby"), query.number("session")) {
        (Ok(lobby), Ok(session)) => (lobby, session),
        (Err(error), _) | (_, Err(error)) => return bad_request(error.to_string()),
    };
    match host.sessions.kick(lobby, session).await {
        Ok(()) => (StatusCode::OK, json!({ "kicked": session })),
        Err(error) => refusal(&error),
    }
}

/// `POST /lobbies/unlock?lobby=N&client=NAME_OR_ID&pin=1234`: enters the lobby's PIN for a
/// paired client, which then sees the lobby's "Join:" entry.
pub(super) fn unlock(host: &Host, query: &Query) -> (StatusCode, Value) {
    let lobby: u32 = match query.number("lobby") {
        Ok(n) => n,
        Err(error) => return bad_request(error.to_string()),
    };
    let client = {
        let clients = host
            .clients
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match find_client(&clients, query.get("client").unwrap_or("")) {
            Ok(id) => id,
            Err(refusal) => return refusal,
        }
    };
    match host
        .sessions
        .unlock_lobby(lobby, &client, query.get("pin").unwrap_or(""))
    {
        Ok(()) => (StatusCode::OK, json!({ "unlocked": lobby })),
        Err(error) => refusal(&error),
    }
}

/// The settings a request names; the defaults for the rest.
fn settings(query: &Query) -> Result<LobbySettings, String> {
    let mut settings = LobbySettings::default();
    if let Some(pin) = query.get("pin").filter(|pin| !pin.is_empty()) {
        settings.pin = Some(pin.to_owned());
    }
    if query.get("max_guests").is_some() {
        settings.max_guests = query.number("max_guests").map_err(|e| e.to_string())?;
    }
    match query.get("spectators") {
        None => {}
        Some("true") => settings.spectators = true,
        Some("false") => settings.spectators = false,
        Some(other) => return Err(format!("spectators is true or false (got {other:?})")),
    }
    match query.get("guest_input") {
        None | Some("all") => {}
        Some("gamepad_only") => settings.guest_input = GuestInput::GamepadOnly,
        Some(other) => {
            return Err(format!(
                "guest_input is all or gamepad_only (got {other:?})"
            ));
        }
    }
    settings.validate().map_err(|e| e.to_string())?;
    Ok(settings)
}

fn bad_request(message: String) -> (StatusCode, Value) {
    (StatusCode::BAD_REQUEST, json!({ "error": message }))
}

fn refusal(error: &LobbyError) -> (StatusCode, Value) {
    let status = match error {
        LobbyError::NoSession(_) | LobbyError::NoLobby(_) | LobbyError::NoGuest { .. } => {
            StatusCode::NOT_FOUND
        }
        LobbyError::BadPin | LobbyError::BadMaxGuests(_) => StatusCode::BAD_REQUEST,
        LobbyError::WrongPin { .. } | LobbyError::PinNeeded(_) => StatusCode::FORBIDDEN,
        LobbyError::LockedOut { .. } => StatusCode::TOO_MANY_REQUESTS,
        LobbyError::TooManyLobbies
        | LobbyError::Full { .. }
        | LobbyError::NoSpectators(_)
        | LobbyError::OwnLobby(_) => StatusCode::CONFLICT,
    };
    (status, json!({ "error": error.to_string() }))
}
