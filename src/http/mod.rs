//! The GameStream HTTP (pairing, serverinfo) and HTTPS (mutual TLS: apps, launch) servers
//! (PROTOCOL.md §1). One request per connection; every reply is HTTP 200 with the status in the
//! XML, except the PIN page and box art.

pub mod apps;
pub mod launch;
pub mod pair;
pub mod pin_page;
pub mod serverinfo;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hati_protocol::query::Query;
use hati_protocol::xml::XmlReply;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::host::Host;
use crate::state::clients::fingerprint;

/// Largest request body read (only the PIN page posts one).
const MAX_BODY: usize = 4096;

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
    /// The client's address.
    pub peer: SocketAddr,
    /// The local address the request arrived on.
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

    /// The local address the request arrived on, an IPv4-mapped IPv6 address shown as IPv4.
    pub fn local_ip(&self) -> std::net::IpAddr {
        match self.local.ip() {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
            v4 => v4,
        }
    }

    /// The key of this client's pairing state: `uniqueid@address` (clients share uniqueids).
    pub fn pairing_key(&self, query: &Query) -> String {
        format!("{}@{}", query.get("uniqueid").unwrap_or(""), self.peer.ip())
    }
}

/// Serves the HTTP port until shutdown.
pub async fn serve_http(listener: TcpListener, host: Arc<Host>, shutdown: watch::Receiver<bool>) {
    accept_loop(listener, shutdown, move |stream, peer, local| {
        let host = host.clone();
        async move {
            let context = RequestContext {
                peer,
                local,
                transport: Transport::Http,
            };
            serve_connection(stream, host, context).await;
        }
    })
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
    accept_loop(listener, shutdown, move |stream, peer, local| {
        let host = host.clone();
        let acceptor = acceptor.clone();
        async move {
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream));
            let stream = match handshake.await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
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
            serve_connection(stream, host, context).await;
        }
    })
    .await;
}

async fn accept_loop<F, Fut>(listener: TcpListener, mut shutdown: watch::Receiver<bool>, handle: F)
where
    F: Fn(tokio::net::TcpStream, SocketAddr, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let local = stream.local_addr().unwrap_or(peer);
                    tokio::spawn(handle(stream, peer, local));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn serve_connection<S>(stream: S, host: Arc<Host>, context: RequestContext)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let span = tracing::debug_span!("http", peer = %context.peer);
    let service = service_fn(move |request| {
        let host = host.clone();
        let context = context.clone();
        async move { Ok::<_, Infallible>(route(request, &host, &context).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(error) = connection.instrument(span).await {
        tracing::debug!(%error, "http connection ended with an error");
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
        (&Method::GET, "/unpair") => xml(&pair::unpair(host, context, &query)),
        (&Method::GET, "/applist") if is_https(context) => xml(&apps::applist(host)),
        (&Method::GET, "/appasset") if is_https(context) => apps::appasset(host, &query),
        (&Method::GET, "/launch") if is_https(context) => {
            xml(&launch::launch(host, context, &query).await)
        }
        (&Method::GET, "/resume") if is_https(context) => {
            xml(&launch::resume(host, context, &query))
        }
        (&Method::GET, "/cancel") if is_https(context) => xml(&launch::cancel(host, context).await),
        (&Method::GET, "/pin") if !is_https(context) => pin_page::page(),
        (&Method::POST, "/pin") if !is_https(context) => {
            let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => {
                    return pin_page::result(StatusCode::PAYLOAD_TOO_LARGE, "request too large");
                }
            };
            pin_page::submit(host, context, &body).await
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
