//! Request routing of the admin API: the JSON endpoints, the event stream, app icons and the
//! OpenAPI document.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use hati_protocol::query::Query;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::PAIR_OUTCOME_TIMEOUT;
use super::lookup::find_client;
use super::views::{app_json, client_json, session_json};
use crate::events::EndReason;
use crate::host::Host;
use crate::pairing::wait_for_outcome;
use crate::state::StateError;
use crate::state::clients::{ClientStore, PairedClient};

/// Events a subscriber may have waiting before it is sent a `lagged` notice instead.
const EVENT_QUEUE: usize = 256;
/// A comment line keeps idle event streams open through proxies and shows a dead reader.
const EVENT_HEARTBEAT: Duration = Duration::from_secs(15);

/// Answers one admin API request (the unix socket and the dashboard share this): JSON
/// endpoints, the event stream and app icons.
pub async fn api(
    request: Request<hyper::body::Incoming>,
    host: &Host,
) -> Response<BoxBody<Bytes, Infallible>> {
    let path = request.uri().path();
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    match (request.method(), path) {
        (&Method::GET, "/events") => event_stream(host),
        (&Method::GET, "/apps/icon") => app_icon(host, request.uri().query()),
        (&Method::GET, "/openapi.json") => {
            json_response(StatusCode::OK, OPENAPI.to_owned()).map(BodyExt::boxed)
        }
        (&Method::PATCH, path) if path.starts_with("/clients/") => {
            let segment = path
                .strip_prefix("/clients/")
                .unwrap_or_default()
                .to_owned();
            let (status, body) =
                super::permissions::patch_client(host, &segment, request.into_body()).await;
            json_response(status, body.to_string()).map(BodyExt::boxed)
        }
        _ => route(request, host).await.map(BodyExt::boxed),
    }
}

/// The API's OpenAPI 3 description, kept true by the schemathesis e2e test.
pub(super) const OPENAPI: &str = include_str!("openapi.json");

/// `GET /apps/icon?appid=N`: the app's box art, with real status codes (unlike `/appasset`,
/// whose GameStream clients read the status from XML).
fn app_icon(host: &Host, query: Option<&str>) -> Response<BoxBody<Bytes, Infallible>> {
    let query = Query::parse(query.unwrap_or("")).unwrap_or_default();
    let error = |status: StatusCode, message: String| {
        json_response(status, json!({ "error": message }).to_string()).map(BodyExt::boxed)
    };
    let id: u32 = match query.number("appid") {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let config = host.config();
    let Some(app) = config.app(id) else {
        return error(StatusCode::NOT_FOUND, format!("no app with ID {id}"));
    };
    match app.icon_png() {
        Ok(png) => {
            let mut response = Response::new(Full::new(Bytes::from(png)).boxed());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("image/png"),
            );
            response
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// `GET /events`: Server-Sent Events from the host's bus until the reader goes away.
fn event_stream(host: &Host) -> Response<BoxBody<Bytes, Infallible>> {
    let mut events = host.events.subscribe();
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(EVENT_QUEUE);
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        let _ = sender.send(Bytes::from_static(b": hati events\n\n")).await;
        loop {
            let message = tokio::select! {
                event = events.recv() => match event {
                    Ok(stamped) => stamped.to_sse(),
                    Err(RecvError::Lagged(missed)) => format!("event: lagged\ndata: {{\"missed\":{missed}}}\n\n"),
                    Err(RecvError::Closed) => return,
                },
                () = tokio::time::sleep(EVENT_HEARTBEAT) => ": heartbeat\n\n".to_owned(),
            };
            if sender.send(Bytes::from(message)).await.is_err() {
                return;
            }
        }
    });
    let mut response = Response::new(BodyExt::boxed(EventBody { receiver }));
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    response
}

/// A response body fed by a channel.
struct EventBody {
    receiver: tokio::sync::mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.receiver
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(hyper::body::Frame::data(bytes))))
    }
}

async fn route(request: Request<hyper::body::Incoming>, host: &Host) -> Response<Full<Bytes>> {
    let query = Query::parse(request.uri().query().unwrap_or("")).unwrap_or_default();
    let path = request.uri().path();
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let (status, body) = match (request.method(), path) {
        (&Method::POST, "/pair") => pair(host, query.get("pin").unwrap_or("")).await,
        (&Method::GET, "/lobbies") => super::lobbies::list(host),
        (&Method::POST, "/lobbies/open") => super::lobbies::open(host, &query),
        (&Method::POST, "/lobbies/close") => super::lobbies::close(host, &query).await,
        (&Method::POST, "/lobbies/kick") => super::lobbies::kick(host, &query).await,
        (&Method::POST, "/lobbies/unlock") => super::lobbies::unlock(host, &query),
        (&Method::GET, "/clients") => {
            let clients = host
                .clients
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (
                StatusCode::OK,
                json!(clients.list().iter().map(client_json).collect::<Vec<_>>()),
            )
        }
        (&Method::POST, "/unpair") => {
            let found = find_client(
                &host
                    .clients
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                query.get("client").unwrap_or(""),
            );
            match found {
                Ok(id) => unpaired(host.unpair(&id)),
                Err(refusal) => refusal,
            }
        }
        (&Method::GET, "/status") => (
            StatusCode::OK,
            json!({
                "hostname": host.config().hostname,
                "role": if host.gateway.get().is_some() { "gateway" } else { "host" },
                "ports": { "http": host.ports.http, "https": host.ports.https, "rtsp": host.ports.rtsp },
                "codecs": host.codecs.names(),
                "client_waiting_for_pin": host.pairing.waiting_secret().is_some(),
                "control_loop_busiest_ms": crate::control::busiest_ms(),
                "input_threads_raised": crate::priority::raised_threads(),
            }),
        ),
        (&Method::GET, "/apps") => (
            StatusCode::OK,
            json!(host.config().apps.iter().map(app_json).collect::<Vec<_>>()),
        ),
        (&Method::GET, "/sessions") => match host.gateway.get() {
            Some(gateway) => (StatusCode::OK, placed_sessions_json(gateway)),
            None => (
                StatusCode::OK,
                json!(
                    host.sessions
                        .all()
                        .iter()
                        .map(|s| session_json(s))
                        .collect::<Vec<_>>()
                ),
            ),
        },
        (&Method::GET, "/nodes") => (
            StatusCode::OK,
            json!(host.gateway.get().map(|g| g.nodes()).unwrap_or_default()),
        ),
        (&Method::GET, "/pipelines") => (StatusCode::OK, json!(crate::stream::live_pipelines())),
        (&Method::POST, "/reload") => match host.reload() {
            Ok(apps) => (StatusCode::OK, json!({ "reloaded": { "apps": apps } })),
            Err(error) => (
                StatusCode::BAD_REQUEST,
                json!({ "error": format!("{error}; the running config stays") }),
            ),
        },
        (&Method::POST, "/sessions/stop") => match query.number::<u32>("id") {
            Ok(id) if stop_session(host, id).await => (StatusCode::OK, json!({ "stopped": id })),
            Ok(id) => (
                StatusCode::NOT_FOUND,
                json!({ "error": format!("no session {id}") }),
            ),
            Err(error) => (
                StatusCode::BAD_REQUEST,
                json!({ "error": error.to_string() }),
            ),
        },
        (method, path) => (
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no admin endpoint {method} {path}") }),
        ),
    };
    json_response(status, body.to_string())
}

/// Ends a session of this host, or (on a gateway) on its node; false when there is none.
async fn stop_session(host: &Host, id: u32) -> bool {
    match host.gateway.get() {
        Some(gateway) => !matches!(
            gateway.stop(id, EndReason::Stopped).await,
            Err(crate::gateway::GatewayError::NotRunning)
        ),
        None => host.sessions.end_session(id, EndReason::Stopped).await,
    }
}

/// A gateway's sessions with their nodes' names and relay counters.
fn placed_sessions_json(gateway: &crate::gateway::Gateway) -> Value {
    let nodes = gateway.nodes();
    let sessions: Vec<Value> = gateway
        .sessions()
        .into_iter()
        .map(|session| {
            let mut view = json!(session);
            if let Some(view) = view.as_object_mut() {
                let node_name = nodes
                    .iter()
                    .find(|n| n.id == session.node)
                    .map(|n| n.name.clone());
                view.insert("node_name".into(), json!(node_name));
                view.insert(
                    "streaming".into(),
                    json!(session.state == crate::gateway::PlacedState::Streaming),
                );
                if let Some(stats) = gateway.relay_stats(session.id) {
                    view.insert("relay".into(), json!(stats));
                }
            }
            view
        })
        .collect();
    json!(sessions)
}

async fn pair(host: &Host, pin: &str) -> (StatusCode, Value) {
    match host.pairing.submit_pin(pin, None) {
        Ok((attempt, events)) => {
            match wait_for_outcome(events, attempt, PAIR_OUTCOME_TIMEOUT).await {
                Ok(client) => (StatusCode::OK, json!({ "paired": client_json(&client) })),
                Err(reason) => (
                    StatusCode::CONFLICT,
                    json!({ "error": format!("pairing failed: {reason}") }),
                ),
            }
        }
        // A well-formed PIN with nobody waiting is a conflict with the host's state.
        Err(error @ crate::pairing::PinError::BadFormat) => (
            StatusCode::BAD_REQUEST,
            json!({ "error": error.to_string() }),
        ),
        Err(error) => (StatusCode::CONFLICT, json!({ "error": error.to_string() })),
    }
}

/// Removes a client by name or ID prefix; offline `hati unpair` uses it (the admin API removes
/// through [`Host::unpair`], which also announces it).
pub fn unpair(clients: &mut ClientStore, name_or_id: &str) -> (StatusCode, Value) {
    match find_client(clients, name_or_id) {
        Ok(id) => unpaired(clients.remove(&id)),
        Err(refusal) => refusal,
    }
}

/// The admin API's answer to a removal.
fn unpaired(removed: Result<Option<PairedClient>, StateError>) -> (StatusCode, Value) {
    match removed {
        Ok(Some(client)) => (StatusCode::OK, json!({ "unpaired": client_json(&client) })),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            json!({ "error": "the client was already removed" }),
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": error.to_string() }),
        ),
    }
}
