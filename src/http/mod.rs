//! The GameStream HTTP (pairing, serverinfo) and HTTPS (mutual TLS: apps, launch) servers
//! (PROTOCOL.md §1). One request per connection; every reply is HTTP 200 with the status in the
//! XML, except the PIN page, box art, plain-HTTP `/unpair` refusals and the dashboard
//! (`/dashboard` and `/api/v1/`, for this machine only; see `dashboard`).

pub mod apps;
pub mod dashboard;
pub mod launch;
pub mod pair;
pub mod pin_page;
pub mod play;
pub mod serverinfo;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use hati_protocol::query::Query;
use hati_protocol::xml::XmlReply;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::host::Host;
use crate::net::{ConnectionPermit, accept_within_budget};
use crate::state::clients::fingerprint;

/// This process's token for the host's own pages (the PIN page's form, the dashboard's
/// requests): random, and readable only by a page of the host's own origin, so a request
/// another web site makes a browser send cannot carry it.
pub(crate) static PAGE_TOKEN: LazyLock<String> =
    LazyLock::new(|| hati_protocol::query::encode_hex(&crate::crypto::random::<16>()));

/// Whether `given` is [`PAGE_TOKEN`] (compared in constant time).
pub(crate) fn is_page_token(given: &[u8]) -> bool {
    crate::crypto::constant_time_eq(given, PAGE_TOKEN.as_bytes())
}

/// Largest request body read (the PIN page's form, the play page's pairing request).
const MAX_BODY: usize = 4096;
/// How long a client may take to send a request's headers (and, on HTTPS, its TLS handshake).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a connection lives beyond the PIN wait of `/pair` (the slowest handler).
const CONNECTION_SLACK: Duration = Duration::from_secs(30);

/// Which port a request came in on, and what the TLS layer knows of the client.
#[derive(Debug, Clone)]
pub enum Transport {
    /// The plain HTTP port.
    Http,
    /// The HTTPS port, with the client certificate (DER) if one was sent.
    Https {
        /// The client's certificate.
        client_cert: Option<Vec<u8>>,
    },
}

/// Everything a handler knows about one request besides its path and query.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The client's address (canonical: an IPv4 peer of a `::` socket shows as IPv4).
    pub peer: SocketAddr,
    /// The local address the request arrived on (canonical too).
    pub local: SocketAddr,
    /// HTTP or HTTPS.
    pub transport: Transport,
}

impl RequestContext {
    /// The client certificate's fingerprint, if it came over HTTPS with one.
    pub fn client_fingerprint(&self) -> Option<String> {
        match &self.transport {
            Transport::Https {
                client_cert: Some(der),
            } => Some(fingerprint(der)),
            _ => None,
        }
    }

    /// The local address the request arrived on (canonical: IPv4-mapped shown as IPv4).
    pub fn local_ip(&self) -> std::net::IpAddr {
        self.local.ip()
    }

    /// The key of this client's pairing state: `uniqueid@address` (clients share uniqueids).
    pub fn pairing_key(&self, query: &Query) -> String {
        format!("{}@{}", query.get("uniqueid").unwrap_or(""), self.peer.ip())
    }
}

/// Serves the HTTP port until shutdown.
pub async fn serve_http(listener: TcpListener, host: Arc<Host>, shutdown: watch::Receiver<bool>) {
    let budget = host.connections.clone();
    accept_within_budget(
        listener,
        budget,
        shutdown,
        move |stream, peer, local, permit| {
            let host = host.clone();
            async move {
                let context = RequestContext {
                    peer,
                    local,
                    transport: Transport::Http,
                };
                serve_connection(stream, host, context, permit).await;
            }
        },
    )
    .await;
}

/// Serves the HTTPS port until shutdown.
pub async fn serve_https(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    host: Arc<Host>,
    shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let budget = host.connections.clone();
    accept_within_budget(
        listener,
        budget,
        shutdown,
        move |stream, peer, local, permit| {
            let host = host.clone();
            let acceptor = acceptor.clone();
            async move {
                let handshake = tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream));
                let stream = match permit.run(handshake).await {
                    Some(Ok(Ok(stream))) => stream,
                    Some(Ok(Err(error))) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                        return;
                    }
                    Some(Err(_)) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                    None => {
                        tracing::debug!(%peer, "idle TLS connection closed for a newer one");
                        return;
                    }
                };
                let client_cert = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.to_vec());
                let context = RequestContext {
                    peer,
                    local,
                    transport: Transport::Https { client_cert },
                };
                serve_connection(stream, host, context, permit).await;
            }
        },
    )
    .await;
}

async fn serve_connection<S>(
    stream: S,
    host: Arc<Host>,
    context: RequestContext,
    permit: ConnectionPermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let span = tracing::debug_span!("http", peer = %context.peer);
    let host_pin_timeout = host.config().pairing.pin_timeout_seconds;
    let permit = Arc::new(permit);
    let service_permit = permit.clone();
    let service = service_fn(move |request: Request<Incoming>| {
        // A whole request head arrived: this connection is no longer idle.
        service_permit.mark_busy();
        let host = host.clone();
        let context = context.clone();
        let permit = service_permit.clone();
        async move {
            if !is_https(&context) && dashboard::is_dashboard_path(request.uri().path()) {
                return Ok::<_, Infallible>(dashboard::serve(request, &host, &context).await);
            }
            if play::is_play_path(request.uri().path()) {
                return Ok(play::serve(request, &host, &context, permit.clone()).await);
            }
            Ok(route(request, &host, &context).await.map(BodyExt::boxed))
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service)
        // The play page's WebSocket (`/play/ws`) upgrades its connection.
        .with_upgrades();
    let pin_wait = Duration::from_secs(host_pin_timeout);
    let bounded = tokio::time::timeout(pin_wait + CONNECTION_SLACK, connection);
    match permit.run(bounded.instrument(span.clone())).await {
        Some(Ok(Ok(()))) => {}
        Some(Ok(Err(error))) => {
            tracing::debug!(parent: &span, %error, "http connection ended with an error")
        }
        Some(Err(_)) => tracing::debug!(parent: &span, "http connection timed out"),
        None => tracing::debug!(parent: &span, "idle http connection closed for a newer one"),
    }
}

async fn route(
    request: Request<Incoming>,
    host: &Arc<Host>,
    context: &RequestContext,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let query = match Query::parse(request.uri().query().unwrap_or("")) {
        Ok(query) => query,
        Err(error) => return xml(&XmlReply::error(400, error.to_string())),
    };
    tracing::debug!(method = %request.method(), %path, https = matches!(context.transport, Transport::Https { .. }), "request");

    if let Transport::Https { .. } = context.transport {
        let authorised = context
            .client_fingerprint()
            .is_some_and(|f| host.is_paired(&f));
        if !authorised {
            return xml(&XmlReply::unauthorized(&path));
        }
    }
    match (request.method(), path.as_str()) {
        (&Method::GET, "/serverinfo") => xml(&serverinfo::serverinfo(host, context)),
        (&Method::GET, "/pair") => xml(&pair::pair(host, context, &query).await),
        (&Method::GET, "/unpair") => {
            // The one reply that also carries its error as the HTTP status: clients that send
            // it without a certificate must show that nothing was unpaired.
            let reply = pair::unpair(host, context, &query);
            let status = u16::try_from(reply.status_code())
                .ok()
                .and_then(|code| StatusCode::from_u16(code).ok())
                .unwrap_or(StatusCode::OK);
            response(status, "application/xml", reply.to_xml().into())
        }
        (&Method::GET, "/applist") if is_https(context) => {
            // Only paired clients get this far on HTTPS (checked above).
            let client = context.client_fingerprint().unwrap_or_default();
            xml(&apps::applist(host, &client))
        }
        (&Method::GET, "/appasset") if is_https(context) => apps::appasset(host, &query),
        (&Method::GET, "/launch") if is_https(context) => {
            xml(&launch::launch(host, context, &query).await)
        }
        (&Method::GET, "/resume") if is_https(context) => {
            xml(&launch::resume(host, context, &query).await)
        }
        (&Method::GET, "/cancel") if is_https(context) => xml(&launch::cancel(host, context).await),
        (&Method::GET, "/pin") if !is_https(context) => {
            pin_page::page(request.headers(), &host.config().hostname)
        }
        (&Method::POST, "/pin") if !is_https(context) => {
            let (head, body) = request.into_parts();
            let collect = Limited::new(body, MAX_BODY).collect();
            let body = match tokio::time::timeout(BODY_TIMEOUT, collect).await {
                Ok(Ok(body)) => body.to_bytes(),
                Ok(Err(_)) => {
                    return pin_page::result(StatusCode::PAYLOAD_TOO_LARGE, "request too large");
                }
                Err(_) => {
                    return pin_page::result(StatusCode::REQUEST_TIMEOUT, "request body too slow");
                }
            };
            pin_page::submit(host, context, &head.headers, &body).await
        }
        _ => xml(&XmlReply::error(404, format!("{path} is not served here"))),
    }
}

fn is_https(context: &RequestContext) -> bool {
    matches!(context.transport, Transport::Https { .. })
}

/// An XML reply, always with HTTP status 200 (clients read the XML status).
pub fn xml(reply: &XmlReply) -> Response<Full<Bytes>> {
    response(StatusCode::OK, "application/xml", reply.to_xml().into())
}

/// A response with a body and content type.
pub fn response(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}
