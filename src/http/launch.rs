//! `GET /launch`, `/resume` and `/cancel` (PROTOCOL.md §1.6–1.7): create, re-key and end the
//! client's session. Sessions are keyed by the client's certificate, never its address. A
//! client's role and app list ([`crate::state::permissions`]) are checked before anything
//! starts, here for `hati serve` and `hati gateway` alike.

use hati_protocol::query::{Query, QueryError};
use hati_protocol::xml::XmlReply;

use super::RequestContext;
use crate::host::{Host, lobbies};
use crate::lobby::LobbyError;
use crate::session::{LaunchError, LaunchParams, LaunchRequest, MoonlightKey};
use crate::state::clients::short_id;
use crate::state::permissions::Denied;

/// `surroundAudioInfo` for stereo, the default when a client omits it.
const STEREO_SURROUND_INFO: u32 = 0x0003_0002;

/// `/launch`: asks the session manager to start the app's desktop, audio sink and app.
pub async fn launch(host: &Host, context: &RequestContext, query: &Query) -> XmlReply {
    let Some(client) = context.client_fingerprint() else {
        return XmlReply::unauthorized("/launch");
    };
    let params = match launch_params(query) {
        Ok(params) => params,
        Err(error) => return XmlReply::error(400, error.to_string()),
    };
    let app_id: u32 = match query.number("appid") {
        Ok(id) => id,
        Err(error) => return XmlReply::error(400, error.to_string()),
    };
    let corever = params.key.as_ref().map_or(0, |key| key.corever);
    if host.gateway.get().is_none()
        && let Some((_, owner_app)) = host.sessions.lobby_for_app_id(app_id)
    {
        return match join(host, context, client, app_id, owner_app, params).await {
            Ok(()) => XmlReply::ok()
                .element("sessionUrl0", session_url(host, context, corever, None))
                .element("gamesession", 1),
            Err(refusal) => refusal,
        };
    }
    if let Err(denied) = host.may_launch(&client, app_id) {
        return refused("/launch", &client, &denied);
    }
    if let Some(gateway) = host.gateway.get() {
        let config = host.config();
        let Some(app) = config.app(app_id) else {
            return XmlReply::error(404, format!("no app with ID {app_id}"));
        };
        let launch = crate::gateway::ClientLaunch {
            client_id: client,
            client_ip: context.peer.ip(),
            front_ip: context.local_ip(),
            app_id,
            app: app.title.clone(),
            params,
        };
        return match gateway.launch(launch).await {
            Ok(front) => XmlReply::ok()
                .element(
                    "sessionUrl0",
                    session_url(host, context, corever, Some(front.rtsp)),
                )
                .element("gamesession", 1),
            Err(error) => XmlReply::error(error.status(), error.to_string()),
        };
    }
    let request = LaunchRequest {
        client_id: client,
        client_ip: context.peer.ip(),
        app_id,
        config: host.config(),
        params,
        placement: None,
    };
    match host.sessions.launch(request).await {
        Ok(session) => {
            if let Some(settings) = session.app.lobby.clone() {
                lobbies::open_app_lobby(host, &session, settings);
            }
            XmlReply::ok()
                .element("sessionUrl0", session_url(host, context, corever, None))
                .element("gamesession", 1)
        }
        Err(error) => XmlReply::error(launch_status(&error), error.to_string()),
    }
}

/// The status code Moonlight shows with each refusal.
pub(super) fn launch_status(error: &LaunchError) -> u32 {
    match error {
        LaunchError::UnknownApp(_) => 404,
        LaunchError::AlreadyRunning => 400,
        LaunchError::NotRunning => 503,
        LaunchError::WrongClientKind => 409,
        LaunchError::Resources { .. } | LaunchError::EndedWhileLaunching(_) => 500,
        LaunchError::Lobby(LobbyError::NoLobby(_) | LobbyError::NoSession(_)) => 404,
        LaunchError::Lobby(LobbyError::Full { .. } | LobbyError::LockedOut { .. }) => 503,
        LaunchError::Lobby(_) => 403,
    }
}

/// The status code Moonlight shows with a refusal by the client's permissions; the message
/// names the client, the app and why.
fn denied_status(denied: &Denied) -> u32 {
    match denied {
        Denied::NotPaired { .. } => 401,
        Denied::Spectator { .. } | Denied::NotPlayer { .. } | Denied::App { .. } => 403,
    }
}

/// The reply to a launch or resume the client's permissions refuse (logged: the owner may
/// wonder why a client cannot start an app).
fn refused(request: &str, client: &str, denied: &Denied) -> XmlReply {
    tracing::info!(client = %short_id(client), %denied, "{request} refused");
    XmlReply::error(denied_status(denied), denied.to_string())
}

/// `/resume`: moonlight-python sends only the key, key ID, audio info and `corever`.
pub async fn resume(host: &Host, context: &RequestContext, query: &Query) -> XmlReply {
    let Some(client) = context.client_fingerprint() else {
        return XmlReply::unauthorized("/resume");
    };
    // The client's permissions may have changed since it launched: the running app is held to
    // them as a new launch is.
    // A guest is held to what joining needs (a spectator may watch), an owner to launching.
    let (running_app, guest) = match host.gateway.get() {
        Some(gateway) => (gateway.session_of(&client).map(|s| s.app_id), false),
        None => host
            .sessions
            .by_client(&client)
            .map_or((None, false), |s| (Some(s.app_id), s.guest().is_some())),
    };
    if let Some(app_id) = running_app
        && let Err(denied) = if guest {
            host.may_join(&client, app_id)
        } else {
            host.may_launch(&client, app_id)
        }
    {
        return refused("/resume", &client, &denied);
    }
    let (rikey, rikeyid) = match keys(query) {
        Ok(keys) => keys,
        Err(error) => return XmlReply::error(400, error.to_string()),
    };
    let corever = query.number("corever").unwrap_or(0);
    let key = MoonlightKey {
        rikey,
        rikeyid,
        corever,
    };
    if let Some(gateway) = host.gateway.get() {
        return match gateway.resume(&client, &key).await {
            Ok(front) => XmlReply::ok()
                .element(
                    "sessionUrl0",
                    session_url(host, context, corever, Some(front.rtsp)),
                )
                .element("resume", 1),
            Err(error) => XmlReply::error(error.status(), error.to_string()),
        };
    }
    match host.sessions.resume(&client, Some(key)) {
        Ok(_) => XmlReply::ok()
            .element("sessionUrl0", session_url(host, context, corever, None))
            .element("resume", 1),
        Err(error) => XmlReply::error(launch_status(&error), error.to_string()),
    }
}

/// `/cancel`: ends the client's session and the app, answering once everything is released.
pub async fn cancel(host: &Host, context: &RequestContext) -> XmlReply {
    if let Some(client) = context.client_fingerprint() {
        match host.gateway.get() {
            Some(gateway) => {
                gateway.cancel(&client).await;
            }
            None => {
                host.sessions.cancel(&client).await;
            }
        }
    }
    XmlReply::ok().element("cancel", 1)
}

fn launch_params(query: &Query) -> Result<LaunchParams, QueryError> {
    let (rikey, rikeyid) = keys(query)?;
    let mode = query.get("mode").and_then(|mode| {
        let mut parts = mode.split('x').map(|p| p.parse::<u32>().ok());
        Some((parts.next()??, parts.next()??, parts.next()??))
    });
    Ok(LaunchParams {
        mode,
        surround_info: query
            .number("surroundAudioInfo")
            .unwrap_or(STEREO_SURROUND_INFO),
        key: Some(MoonlightKey {
            rikey,
            rikeyid,
            corever: query.number("corever").unwrap_or(0),
        }),
    })
}

fn keys(query: &Query) -> Result<([u8; 16], i32), QueryError> {
    let rikey: [u8; 16] = query
        .hex("rikey")?
        .try_into()
        .map_err(|_| QueryError::Malformed {
            name: "rikey",
            reason: "expected 32 hex digits",
        })?;
    // Clients send the key ID as a signed 32-bit number (it can be negative).
    let rikeyid = query.number::<i64>("rikeyid")?;
    let rikeyid = i32::try_from(rikeyid)
        .or_else(|_| u32::try_from(rikeyid).map(|v| v as i32))
        .map_err(|_| QueryError::Malformed {
            name: "rikeyid",
            reason: "expected a 32-bit number",
        })?;
    Ok((rikey, rikeyid))
}

/// `rtspenc://` when the client can encrypt RTSP (`corever` ≥ 1), so requests can be matched to
/// their session by key.
fn session_url(
    host: &Host,
    context: &RequestContext,
    corever: u32,
    front_rtsp: Option<u16>,
) -> String {
    let scheme = if corever >= 1 { "rtspenc" } else { "rtsp" };
    // A gateway's session is reached on its own front RTSP port, at the front address.
    let (address, port) = match (host.gateway.get(), front_rtsp) {
        (Some(gateway), Some(port)) => (gateway.front_address(context.local_ip()), port),
        _ => (context.local_ip(), host.ports.rtsp),
    };
    // SocketAddr brackets IPv6 addresses, as a URL needs.
    format!("{scheme}://{}", std::net::SocketAddr::new(address, port))
}

/// `/launch` of a "Join:" entry (app `app_id`, whose lobby runs app `owner_app`): the client
/// joins as a guest, and the reply is the same as a launch's.
async fn join(
    host: &Host,
    context: &RequestContext,
    client_id: String,
    app_id: u32,
    owner_app: u32,
    params: LaunchParams,
) -> Result<(), XmlReply> {
    let client_ip = context.peer.ip();
    match lobbies::join_lobby(host, client_id, client_ip, app_id, owner_app, params).await {
        Ok(_) => Ok(()),
        Err(lobbies::JoinRefused::Denied(denied @ Denied::NotPaired { .. })) => {
            Err(XmlReply::error(401, denied.to_string()))
        }
        Err(lobbies::JoinRefused::Denied(denied)) => Err(XmlReply::error(403, denied.to_string())),
        Err(lobbies::JoinRefused::Launch(error)) => {
            Err(XmlReply::error(launch_status(&error), error.to_string()))
        }
    }
}
