//! Browser play on the HTTP and HTTPS ports: the page (`/play`, embedded, no build step), its
//! JSON API (`/play/api/`) and the WebSocket that carries WebRTC signalling (`/play/ws`).
//!
//! A browser pairs like a Moonlight client: the page shows a PIN, the owner enters it on the host
//! (`hati pair`, the dashboard, the PIN page), and the browser gets a credential it keeps and
//! sends as `Authorization: Bearer` (never as a cookie, so another site cannot make the browser
//! send it). State changes need `Content-Type: application/json`, which another site cannot send
//! without a CORS preflight this server never grants.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{BODY_TIMEOUT, MAX_BODY, RequestContext, response};
use crate::host::Host;
use crate::lobby::LobbyError;
use crate::net::ConnectionPermit;
use crate::pairing::{BrowserPairRequest, PairError};
use crate::state::clients::{PairedClient, short_id};
use crate::state::permissions::Role;

/// The page.
const PAGE: &str = include_str!("play.html");

/// What the page may load and connect to: itself only.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; media-src 'self' blob:; \
     connect-src 'self' ws: wss:; frame-ancestors 'none'";

/// Whether `path` is browser play's.
pub fn is_play_path(path: &str) -> bool {
    path == "/play" || path.starts_with("/play/")
}

/// Serves a browser-play request. `permit` is the connection's place in the connection budget:
/// a WebSocket keeps it for its whole life.
pub async fn serve(
    mut request: Request<Incoming>,
    host: &Arc<Host>,
    context: &RequestContext,
    permit: Arc<ConnectionPermit>,
) -> Response<BoxBody<Bytes, Infallible>> {
    if !host.config().webrtc.enabled {
        return error(
            StatusCode::NOT_FOUND,
            "browser play is off on this host ([webrtc] enabled = false)",
        );
    }
    let path = request.uri().path().to_owned();
    match (request.method().clone(), path.as_str()) {
        (Method::GET, "/play") => page(),
        (Method::GET, "/play/ws") => upgrade(&mut request, host, context, permit),
        (Method::POST, "/play/api/pair") => {
            let body = match json_body::<PairBody>(request).await {
                Ok(body) => body,
                Err(refusal) => return refusal,
            };
            pair(host, context, body).await
        }
        (method, path) => {
            let Some(client) = authorised(host, request.headers()) else {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "this browser is not paired with the host (or was unpaired): pair it again",
                );
            };
            match (method, path) {
                (Method::GET, "/play/api/apps") => apps(host, &client),
                (Method::POST, "/play/api/lobbies/unlock") => {
                    // A state change: same site and JSON only, as the pairing call.
                    if let Err(refusal) = same_origin(request.headers()) {
                        return refusal;
                    }
                    match json_body::<UnlockBody>(request).await {
                        Ok(body) => unlock(host, &client, &body),
                        Err(refusal) => refusal,
                    }
                }
                (Method::POST, "/play/api/quit") => {
                    // The Bearer header already rules out cross-site requests (it needs a
                    // preflight); the page sends no body.
                    let ended = match host.gateway.get() {
                        Some(gateway) => gateway.cancel(&client.id).await,
                        None => host.sessions.cancel(&client.id).await,
                    };
                    json_reply(StatusCode::OK, &json!({ "ended": ended }))
                }
                (Method::GET, path) => match icon_id(path) {
                    Some(id) => icon(host, id),
                    None => error(StatusCode::NOT_FOUND, &format!("{path} is not served here")),
                },
                (_, path) => error(StatusCode::NOT_FOUND, &format!("{path} is not served here")),
            }
        }
    }
}

fn page() -> Response<BoxBody<Bytes, Infallible>> {
    let mut page = response(StatusCode::OK, "text/html; charset=utf-8", PAGE.into());
    let headers = page.headers_mut();
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(PAGE_POLICY),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    page.map(BodyExt::boxed)
}

/// `POST /play/api/pair`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PairBody {
    name: String,
    pin: String,
}

async fn pair(
    host: &Host,
    context: &RequestContext,
    body: PairBody,
) -> Response<BoxBody<Bytes, Infallible>> {
    let peer = context.peer.ip();
    let name: String = body.name.chars().take(64).collect();
    let request = BrowserPairRequest {
        address: peer,
        device_name: if name.trim().is_empty() {
            "browser".to_owned()
        } else {
            name.clone()
        },
        pin: body.pin,
    };
    let page = format!(
        "http://{}/pin",
        std::net::SocketAddr::new(context.local.ip(), host.ports.http)
    );
    let outcome = host
        .pairing
        .pair_browser(request, &host.clients, |attempt, secret| {
            tracing::info!(
                attempt,
                client = %peer,
                device = %name,
                "a browser is waiting to pair: enter the PIN its page shows with `{}`, or open {page}#{secret}",
                host.pair_command,
            );
        })
        .await;
    match outcome {
        Ok((client, token)) => {
            tracing::info!(client = %client.name, id = %short_id(&client.id), "browser paired");
            json_reply(
                StatusCode::OK,
                &json!({ "token": token, "client": { "id": client.id, "name": client.name } }),
            )
        }
        Err(failure) => {
            tracing::warn!(client = %peer, error = %failure, "browser pairing failed");
            let status = match failure {
                PairError::Malformed(_) => StatusCode::BAD_REQUEST,
                PairError::WrongPin => StatusCode::FORBIDDEN,
                PairError::AlreadyPairing | PairError::Superseded => StatusCode::CONFLICT,
                PairError::LockedOut(_) => StatusCode::TOO_MANY_REQUESTS,
                PairError::PinTimeout(_) => StatusCode::REQUEST_TIMEOUT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, &failure.to_string())
        }
    }
}

/// The paired browser whose credential the request carries.
pub fn authorised(host: &Host, headers: &hyper::HeaderMap) -> Option<PairedClient> {
    let token = headers
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .trim();
    host.clients
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .browser(token)
        .cloned()
}

/// The apps the browser may launch (its permissions, as `/applist` offers them), the lobbies
/// it may join (also those still waiting for their PIN), and its running session if it has
/// one.
fn apps(host: &Host, client: &PairedClient) -> Response<BoxBody<Bytes, Infallible>> {
    let config = host.config();
    let apps: Vec<Value> = host
        .visible_apps(&client.id, &config)
        .into_iter()
        .map(|app| json!({ "id": app.id(), "title": app.title, "has_icon": true }))
        .collect();
    let watch_only = client.permissions.role == Role::Spectator;
    let lobbies: Vec<Value> = crate::host::lobbies::play_entries(host, &client.id)
        .into_iter()
        .map(|(lobby, unlocked)| {
            // The card shows the owner's app's icon.
            let app = host
                .sessions
                .lobby_for_app_id(lobby.join_app_id)
                .map(|(_, app)| app);
            json!({
                "id": lobby.join_app_id,
                "lobby": lobby.lobby,
                "title": lobby.join_title,
                "app": lobby.app,
                "app_id": app,
                "owner": lobby.owner_name,
                "pin": lobby.pin,
                "locked": !unlocked,
                "watch": watch_only,
            })
        })
        .collect();
    let session = match host.gateway.get() {
        // The page knows a session's states by a single host's names.
        Some(gateway) => gateway.session_of(&client.id).map(|session| {
            let state = match session.state {
                crate::gateway::PlacedState::Launching => "launching",
                crate::gateway::PlacedState::Launched => "waiting_for_client",
                crate::gateway::PlacedState::Streaming => "streaming",
                crate::gateway::PlacedState::Paused => "paused",
            };
            json!({ "id": session.id, "app_id": session.app_id, "state": state })
        }),
        None => host.sessions.by_client(&client.id).map(|session| {
            // A guest's session runs as its "Join:" entry, which the page resumes it by.
            let app_id =
                crate::host::lobbies::join_app_id_of(host, &session).unwrap_or(session.app_id);
            json!({ "id": session.id, "app_id": app_id, "state": session.state() })
        }),
    };
    json_reply(
        StatusCode::OK,
        &json!({
            "host": config.hostname,
            "client": { "id": client.id, "name": client.name },
            "apps": apps,
            "lobbies": lobbies,
            "session": session,
        }),
    )
}

/// `POST /play/api/lobbies/unlock`: the PIN the player typed on a lobby's card.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnlockBody {
    lobby: u32,
    pin: String,
}

/// Enters a lobby's PIN for the browser; a wrong one counts towards the lobby's lockout. Only
/// lobbies the page offers this browser are unlocked here.
fn unlock(
    host: &Host,
    client: &PairedClient,
    body: &UnlockBody,
) -> Response<BoxBody<Bytes, Infallible>> {
    let offered = crate::host::lobbies::play_entries(host, &client.id)
        .iter()
        .any(|(lobby, _)| lobby.lobby == body.lobby);
    let outcome = if offered {
        host.sessions
            .unlock_lobby(body.lobby, &client.id, &body.pin)
    } else {
        Err(LobbyError::NoLobby(body.lobby))
    };
    match outcome {
        Ok(()) => json_reply(StatusCode::OK, &json!({ "unlocked": body.lobby })),
        Err(failure) => {
            tracing::info!(client = %client.name, lobby = body.lobby, error = %failure, "lobby PIN refused");
            let status = match failure {
                LobbyError::NoLobby(_) => StatusCode::NOT_FOUND,
                LobbyError::LockedOut { .. } => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::FORBIDDEN,
            };
            error(status, &failure.to_string())
        }
    }
}

/// `/play/api/apps/<id>/icon` → `<id>`.
fn icon_id(path: &str) -> Option<u32> {
    path.strip_prefix("/play/api/apps/")?
        .strip_suffix("/icon")?
        .parse()
        .ok()
}

fn icon(host: &Host, id: u32) -> Response<BoxBody<Bytes, Infallible>> {
    let config = host.config();
    let Some(app) = config.app(id) else {
        return error(StatusCode::NOT_FOUND, &format!("no app with ID {id}"));
    };
    match app.icon_png() {
        Ok(png) => response(StatusCode::OK, "image/png", png.into()).map(BodyExt::boxed),
        Err(failure) => {
            tracing::warn!(app = %app.title, error = %failure, "cannot serve the app icon");
            error(StatusCode::INTERNAL_SERVER_ERROR, &failure.to_string())
        }
    }
}

/// Answers a WebSocket handshake and hands the connection to the signalling task.
fn upgrade(
    request: &mut Request<Incoming>,
    host: &Arc<Host>,
    context: &RequestContext,
    permit: Arc<ConnectionPermit>,
) -> Response<BoxBody<Bytes, Infallible>> {
    let headers = request.headers();
    let is_websocket = headers
        .get(hyper::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let version_13 = headers
        .get(hyper::header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let Some(key) = headers.get(hyper::header::SEC_WEBSOCKET_KEY) else {
        return error(
            StatusCode::BAD_REQUEST,
            "/play/ws is a WebSocket: the request lacks Sec-WebSocket-Key",
        );
    };
    if !is_websocket || !version_13 {
        return error(
            StatusCode::BAD_REQUEST,
            "/play/ws is a WebSocket (version 13): the upgrade headers are missing",
        );
    }
    // Another site's page may open a WebSocket here (no CORS for those): refuse it, so it
    // cannot even start a session with a credential it somehow learned.
    if let Err(refusal) = same_origin(headers) {
        return refusal;
    }
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(request);
    let host = host.clone();
    let peer = context.peer;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                crate::webrtc::signalling::run(
                    hyper_util::rt::TokioIo::new(upgraded),
                    host,
                    peer,
                    permit,
                )
                .await
            }
            Err(failure) => tracing::debug!(%peer, error = %failure, "WebSocket upgrade failed"),
        }
    });
    let mut reply = Response::new(Full::new(Bytes::new()).boxed());
    *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = reply.headers_mut();
    headers.insert(
        hyper::header::UPGRADE,
        HeaderValue::from_static("websocket"),
    );
    headers.insert(
        hyper::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(hyper::header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    reply
}

/// Refuses a request whose `Origin` (when the browser sends one) is not this host's.
#[allow(clippy::result_large_err)] // a refusal reply, built once per refused request
fn same_origin(headers: &hyper::HeaderMap) -> Result<(), Response<BoxBody<Bytes, Infallible>>> {
    let Some(origin) = headers.get(hyper::header::ORIGIN) else {
        return Ok(());
    };
    let host_header = headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let origin = origin.to_str().unwrap_or_default();
    let matches = ["http://", "https://"]
        .iter()
        .any(|scheme| origin.strip_prefix(scheme) == Some(host_header));
    if matches {
        Ok(())
    } else {
        Err(error(
            StatusCode::FORBIDDEN,
            "a request from another site is not accepted",
        ))
    }
}

#[allow(clippy::result_large_err)] // a refusal reply, built once per refused request
fn require_json(headers: &hyper::HeaderMap) -> Result<(), Response<BoxBody<Bytes, Infallible>>> {
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if is_json {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send JSON with Content-Type: application/json",
        ))
    }
}

/// Reads a small JSON body of type `T`, or the reply that refuses it.
#[allow(clippy::result_large_err)] // a refusal reply, built once per refused request
async fn json_body<T: serde::de::DeserializeOwned>(
    request: Request<Incoming>,
) -> Result<T, Response<BoxBody<Bytes, Infallible>>> {
    require_json(request.headers())?;
    let collect = Limited::new(request.into_body(), MAX_BODY).collect();
    let body = match tokio::time::timeout(BODY_TIMEOUT, collect).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(_)) => return Err(error(StatusCode::PAYLOAD_TOO_LARGE, "request too large")),
        Err(_) => return Err(error(StatusCode::REQUEST_TIMEOUT, "request body too slow")),
    };
    serde_json::from_slice(&body).map_err(|failure| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("the request body is not what this endpoint takes: {failure}"),
        )
    })
}

fn json_reply(status: StatusCode, value: &Value) -> Response<BoxBody<Bytes, Infallible>> {
    let mut reply = response(status, "application/json", value.to_string().into());
    reply
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    reply.map(BodyExt::boxed)
}

fn error(status: StatusCode, message: &str) -> Response<BoxBody<Bytes, Infallible>> {
    json_reply(status, &json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icon_paths_name_an_app_id() {
        assert_eq!(icon_id("/play/api/apps/123/icon"), Some(123));
        assert_eq!(icon_id("/play/api/apps/x/icon"), None);
        assert_eq!(icon_id("/play/api/apps/123"), None);
        assert_eq!(icon_id("/play/api/apps/99999999999/icon"), None);
    }

    #[test]
    fn only_this_hosts_origin_may_open_the_websocket() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            hyper::header::HOST,
            HeaderValue::from_static("10.0.0.2:47989"),
        );
        assert!(same_origin(&headers).is_ok(), "no Origin: not a browser");
        headers.insert(
            hyper::header::ORIGIN,
            HeaderValue::from_static("http://10.0.0.2:47989"),
        );
        assert!(same_origin(&headers).is_ok());
        headers.insert(
            hyper::header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(same_origin(&headers).is_err());
        headers.insert(
            hyper::header::ORIGIN,
            HeaderValue::from_static("http://10.0.0.2:47989.evil.example"),
        );
        assert!(same_origin(&headers).is_err());
    }
}
