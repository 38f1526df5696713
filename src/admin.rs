//! The local admin endpoint: HTTP/1.1 with JSON bodies on a unix socket in the state directory
//! (mode 0600), never on a network port. `hati pair`, `hati clients` and `hati unpair` use it;
//! so can `curl --unix-socket ~/.local/share/hati/admin.sock http://hati/clients`.
//!
//! | Request | Answer |
//! |---|---|
//! | `POST /pair?pin=NNNN` | waits for the pairing's outcome: `{"paired": {client}}` or `{"error": …}` |
//! | `GET /clients` | `[{client}, …]` |
//! | `POST /unpair?client=NAME_OR_ID` | `{"unpaired": {client}}` or `{"error": …}` |
//! | `GET /status` | host name, ports, codecs, whether a client waits for a PIN |
//! | `GET /apps` | the configured apps: ID, title, desktop, runner |
//! | `GET /sessions` | running sessions: ID, client, app, streaming, counters |
//! | `POST /sessions/stop?id=N` | ends session N as `/cancel` would: `{"stopped": N}` or 404 |
//! | `POST /reload` | re-reads the config file: `{"reloaded": {"apps": N}}`, or 400 with the error |
//! | `GET /events` | Server-Sent Events: every state change (`crate::events`) from now on |
//!
//! Every path is also served under `/api/v1` (`/api/v1/events`, …), the versioned prefix.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use hati_protocol::query::Query;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use thiserror::Error;
use tokio::net::UnixListener;
use tokio::sync::watch;

use crate::events::{EndReason, Event};
use crate::host::Host;
use crate::pairing::wait_for_outcome;
use crate::state::StateDir;
use crate::state::clients::{ClientStore, Lookup, PairedClient, short_id};

/// How long `hati pair` waits for the client to finish pairing after the PIN.
const PAIR_OUTCOME_TIMEOUT: Duration = Duration::from_secs(60);

/// The bound admin socket, removed when dropped.
pub struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl AdminSocket {
    /// Binds `admin.sock` in the state dir, refusing if another host is running there.
    pub fn bind(state: &StateDir) -> anyhow::Result<Self> {
        let path = state.admin_socket();
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                anyhow::bail!(
                    "another hati is already running with the state directory {} (its admin socket answers)",
                    state.path().display()
                );
            }
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove stale {}", path.display()))?;
        }
        let listener = UnixListener::bind(&path)
            .with_context(|| format!("cannot create the admin socket {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private", path.display()))?;
        Ok(Self { listener, path })
    }

    /// Serves requests until shutdown.
    pub async fn serve(self, host: Arc<Host>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let host = host.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                            let host = host.clone();
                            async move { Ok::<_, Infallible>(api(request, &host).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .keep_alive(false)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How long a TCP API client may take to send a request's headers.
const TCP_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the API on `[admin] listen` until shutdown: every request, from any address, must
/// carry `Authorization: Bearer <token>` (the state directory's `api-token`).
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    host: Arc<Host>,
    shutdown: watch::Receiver<bool>,
) {
    let budget = host.connections.clone();
    crate::net::accept_within_budget(
        listener,
        budget,
        shutdown,
        move |stream, peer, _, permit| {
            let host = host.clone();
            async move {
                let permit = Arc::new(permit);
                let service_permit = permit.clone();
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    service_permit.mark_busy();
                    let host = host.clone();
                    async move {
                        if !has_bearer_token(request.headers(), &host.api_token) {
                            tracing::debug!(%peer, "admin API request without the token refused");
                            return Ok::<_, Infallible>(unauthorized());
                        }
                        Ok(api(request, &host).await)
                    }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(TCP_HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                if permit.run(connection).await.is_none() {
                    tracing::debug!(%peer, "idle admin connection closed for a newer one");
                }
            }
        },
    )
    .await;
}

/// Whether the request carries `Authorization: Bearer <token>` (compared in constant time).
/// Browsers never add this header by themselves, so it also rules out forged cross-site
/// requests.
pub fn has_bearer_token(headers: &hyper::HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    crate::crypto::constant_time_eq(bearer.as_bytes(), token.as_bytes())
}

fn unauthorized() -> Response<BoxBody<Bytes, Infallible>> {
    let body = json!({
        "error": "the admin API needs `Authorization: Bearer <token>`, the token in the host's \
                  state directory (api-token)"
    })
    .to_string();
    let mut reply = Response::new(Full::new(Bytes::from(body)).boxed());
    *reply.status_mut() = StatusCode::UNAUTHORIZED;
    let headers = reply.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Bearer"),
    );
    reply
}

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
        _ => route(request, host).await.map(BodyExt::boxed),
    }
}

/// The API's OpenAPI 3 description, kept true by the schemathesis e2e test.
const OPENAPI: &str = include_str!("admin/openapi.json");

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
    let Some(app) = config.apps.iter().find(|app| app.id() == id) else {
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
            let mut clients = host
                .clients
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (status, body) = unpair(&mut clients, query.get("client").unwrap_or(""));
            if status == StatusCode::OK {
                host.events.publish(Event::ClientUnpaired {
                    client_id: body["unpaired"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    name: body["unpaired"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
            (status, body)
        }
        (&Method::GET, "/status") => (
            StatusCode::OK,
            json!({
                "hostname": host.config().hostname,
                "ports": { "http": host.ports.http, "https": host.ports.https, "rtsp": host.ports.rtsp },
                "codecs": host.codecs.names(),
                "client_waiting_for_pin": host.pairing.waiting_secret().is_some(),
            }),
        ),
        (&Method::GET, "/apps") => (
            StatusCode::OK,
            json!(host.config().apps.iter().map(app_json).collect::<Vec<_>>()),
        ),
        (&Method::GET, "/sessions") => (
            StatusCode::OK,
            json!(
                host.sessions
                    .all()
                    .iter()
                    .map(|s| session_json(s))
                    .collect::<Vec<_>>()
            ),
        ),
        (&Method::POST, "/reload") => match host.reload() {
            Ok(apps) => (StatusCode::OK, json!({ "reloaded": { "apps": apps } })),
            Err(error) => (
                StatusCode::BAD_REQUEST,
                json!({ "error": format!("{error}; the running config stays") }),
            ),
        },
        (&Method::POST, "/sessions/stop") => match query.number::<u32>("id") {
            Ok(id) if host.sessions.end_session(id, EndReason::Stopped).await => {
                (StatusCode::OK, json!({ "stopped": id }))
            }
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

/// Removes a client by name or ID prefix; shared by the admin API and offline `hati unpair`.
pub fn unpair(clients: &mut ClientStore, name_or_id: &str) -> (StatusCode, Value) {
    let id = match clients.find(name_or_id) {
        Lookup::One(client) => client.id.clone(),
        Lookup::None => {
            return (
                StatusCode::NOT_FOUND,
                json!({ "error": format!("no paired client named or with ID `{name_or_id}`") }),
            );
        }
        Lookup::Ambiguous(matches) => {
            let names: Vec<_> = matches
                .iter()
                .map(|c| format!("{} ({})", c.name, short_id(&c.id)))
                .collect();
            return (
                StatusCode::CONFLICT,
                json!({ "error": format!("`{name_or_id}` matches several clients: {}; use a longer ID", names.join(", ")) }),
            );
        }
    };
    match clients.remove(&id) {
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

fn app_json(app: &crate::config::AppConfig) -> Value {
    let runner = match &app.runner {
        Some(crate::runner::RunnerConfig::Process(process)) => {
            json!({ "type": "process", "cmd": process.cmd })
        }
        Some(crate::runner::RunnerConfig::Docker(docker)) => {
            json!({ "type": "docker", "image": docker.image })
        }
        None => Value::Null,
    };
    json!({ "id": app.id(), "title": app.title, "desktop": app.compositor, "runner": runner })
}

fn session_json(session: &crate::session::Session) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    json!({
        "id": session.id,
        "client": short_id(&session.client_id),
        "app": session.app.title,
        "state": session.state(),
        "streaming": session.is_streaming(),
        "desktop": session.desktop().map(|d| d.wayland_display().to_owned()),
        "audio_sink": session.audio_sink().map(|(sink, _)| sink),
        "idr_requests": session.metrics.idr_requests.load(Relaxed),
        "input_events": session.metrics.input_events.load(Relaxed),
        "fec_status_reports": session.metrics.fec_status_reports.load(Relaxed),
        "client_frames_recovered": session.metrics.client_frames_recovered.load(Relaxed),
        "client_frames_lost": session.metrics.client_frames_lost.load(Relaxed),
        "client_packets_missing": session.metrics.client_packets_missing.load(Relaxed),
        "client_frames_dropped": session.metrics.client_frames_dropped.load(Relaxed),
        "target_changes": session.metrics.target_changes.load(Relaxed),
        "refused_pings": session.metrics.refused_pings.load(Relaxed),
        "replayed_control_messages": session.metrics.replayed_control_messages.load(Relaxed),
        "packets": session.packet_counts().map(|c| json!({
            "video_sent": c.video_sent,
            "video_dropped": c.video_dropped,
            "audio_sent": c.audio_sent,
            "audio_dropped": c.audio_dropped,
        })),
        "video_target": session.video_target.get().map(|a| a.to_string()),
        "audio_target": session.audio_target.get().map(|a| a.to_string()),
    })
}

/// A client as the admin API shows it (no certificate).
pub fn client_json(client: &PairedClient) -> Value {
    json!({ "id": client.id, "name": client.name, "paired_at": client.paired_at, "kind": client.kind })
}

/// Why the CLI could not talk to the running host.
#[derive(Debug, Error)]
pub enum AdminClientError {
    /// No host is listening on the socket.
    #[error(
        "no running hati found (no admin socket at {0}); start it with `hati serve`, with the same --state-dir"
    )]
    NotRunning(PathBuf),
    /// The socket exists but the exchange failed.
    #[error("talking to hati at {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The answer was not what the admin API sends.
    #[error("unexpected answer from hati: {0}")]
    BadAnswer(String),
}

/// Sends one request to the admin socket and returns the HTTP status and JSON body.
pub fn request(
    socket: &Path,
    method: &str,
    path_and_query: &str,
) -> Result<(u16, Value), AdminClientError> {
    let io = |source| AdminClientError::Io {
        path: socket.to_owned(),
        source,
    };
    let mut stream = match std::os::unix::net::UnixStream::connect(socket) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(AdminClientError::NotRunning(socket.to_owned()));
        }
        Err(e) => return Err(io(e)),
    };
    stream
        .set_read_timeout(Some(PAIR_OUTCOME_TIMEOUT + Duration::from_secs(10)))
        .map_err(io)?;
    write!(stream, "{method} {path_and_query} HTTP/1.1\r\nHost: hati\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        .map_err(io)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(io)?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| AdminClientError::BadAnswer(answer.to_string()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| AdminClientError::BadAnswer(head.to_owned()))?;
    let body =
        serde_json::from_str(body).map_err(|_| AdminClientError::BadAnswer(body.to_owned()))?;
    Ok((status, body))
}

/// Percent-encodes a query value.
pub fn encode_query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
