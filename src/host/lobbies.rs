//! Who may see and join which lobby (see `crate::lobby`), for every way a client gets there:
//! the "Join:" entries of Moonlight's `/applist` (`http::apps`) and its `/launch` of one
//! (`http::launch`), and the play page's list and WebSocket (`http::play`,
//! `webrtc::signalling`). A player (or admin) joins as a player, a spectator only where the
//! lobby admits spectators, each held to its app list; a PIN lobby shows in `/applist` only once
//! its PIN was entered for the client.

use std::net::IpAddr;
use std::sync::Arc;

use super::Host;
use crate::lobby::LobbySettings;
use crate::session::{JoinRequest, LaunchError, LaunchParams, LobbyView, Session};
use crate::state::clients::short_id;
use crate::state::permissions::{Denied, Permissions, Role};

/// Why a client may not join a lobby; the text is what Moonlight and the play page show.
#[derive(Debug, thiserror::Error)]
pub enum JoinRefused {
    /// The client's permissions (or its pairing) rule it out.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The session manager refused it: no such lobby, its PIN not entered, full, ...
    #[error(transparent)]
    Launch(#[from] LaunchError),
}

/// The client's name and permissions; `None` when it is not paired.
fn client_permissions(host: &Host, client_id: &str) -> Option<(String, Permissions)> {
    let clients = host
        .clients
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    clients
        .by_id(client_id)
        .map(|client| (client.name.clone(), client.permissions.clone()))
}

/// The lobbies `/applist` offers the paired client `client_id` as "Join:" entries.
pub fn join_entries(host: &Host, client_id: &str) -> Vec<LobbyView> {
    play_entries(host, client_id)
        .into_iter()
        .filter_map(|(lobby, unlocked)| unlocked.then_some(lobby))
        .collect()
}

/// The lobbies the play page offers the paired client `client_id`: those of `/applist`
/// (`true`) and those it may join once it entered their PIN (`false`), which the page asks
/// for.
pub fn play_entries(host: &Host, client_id: &str) -> Vec<(LobbyView, bool)> {
    let Some((_, permissions)) = client_permissions(host, client_id) else {
        return Vec::new();
    };
    host.sessions
        .lobbies_open_to(client_id, permissions.role != Role::Spectator, |app| {
            permissions.allows_app(app)
        })
}

/// The "Join:" entry's app ID of `session`'s lobby when it is a guest's session: the app the
/// play page shows it running as.
pub fn join_app_id_of(host: &Host, session: &Session) -> Option<u32> {
    let number = session.guest()?.lobby;
    host.sessions
        .lobbies()
        .into_iter()
        .find(|lobby| lobby.lobby == number)
        .map(|lobby| lobby.join_app_id)
}

/// Joins the paired client `client_id` (at `client_ip`) to the lobby whose "Join:" entry is
/// app `app_id` on app `owner_app`, held to its permissions: as a player when its role lets it
/// play, else to watch. What Moonlight's `/launch` and the play page's WebSocket share.
pub async fn join_lobby(
    host: &Host,
    client_id: String,
    client_ip: IpAddr,
    app_id: u32,
    owner_app: u32,
    params: LaunchParams,
) -> Result<Arc<Session>, JoinRefused> {
    let Some((name, permissions)) = client_permissions(host, &client_id) else {
        return Err(Denied::NotPaired {
            client: short_id(&client_id).to_owned(),
        }
        .into());
    };
    let config = host.config();
    let may_play = permissions.role != Role::Spectator;
    if let Err(denied) = permissions.may_join(&name, owner_app, may_play, &config.apps) {
        tracing::info!(client = %short_id(&client_id), %denied, "join refused");
        return Err(denied.into());
    }
    let request = JoinRequest {
        client_id,
        client_name: name,
        client_ip,
        app_id,
        may_play,
        config,
        params,
    };
    host.sessions.join(request).await.map_err(|error| {
        tracing::info!(%error, "join refused");
        JoinRefused::from(error)
    })
}

/// Opens the lobby of a session whose app has `[apps.lobby]` (at its launch).
pub fn open_app_lobby(host: &Host, session: &crate::session::Session, settings: LobbySettings) {
    let name = client_permissions(host, &session.client_id)
        .map_or_else(|| short_id(&session.client_id).to_owned(), |(name, _)| name);
    if let Err(error) = host.sessions.open_lobby(session.id, &name, settings) {
        tracing::warn!(parent: &session.span, %error, "the app's lobby did not open");
    }
}
