//! The RTSP handshake server (PROTOCOL.md §2): one request per TCP connection, answered and
//! closed. Encrypted requests (`rtspenc://`, §2.8) are matched to their session by the key
//! that opens them, so clients behind one address never collide; plain requests fall back to
//! the most recent session launched from the peer's address, and are refused for a session
//! launched with `rtspenc://` (a LAN peer could otherwise restart its stream in the clear).
//! A sealed request must carry a higher sequence number than the last one its key opened, so
//! a captured request cannot be replayed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hati_protocol::rtsp::{
    Method, Parsed, RtspCipher, RtspRequest, RtspResponse, SetupIdentifier, StatusCode, StreamKind,
    is_sealed,
};
use hati_protocol::sdp::StreamConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::config::Ports;
use crate::session::{Session, SessionManager};

/// Largest request accepted (an ANNOUNCE is about 2 KiB).
const MAX_REQUEST: usize = 64 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the RTSP server needs of the host.
#[derive(Clone)]
pub struct RtspContext {
    /// The sessions requests belong to.
    pub sessions: Arc<SessionManager>,
    /// The ports SETUP answers name.
    pub ports: Ports,
    /// TCP connections the host's servers may hold together.
    pub connections: Arc<crate::net::ConnectionBudget>,
}

/// Serves RTSP until shutdown.
pub async fn serve(listener: TcpListener, host: RtspContext, shutdown: watch::Receiver<bool>) {
    let budget = host.connections.clone();
    crate::net::accept_within_budget(
        listener,
        budget,
        shutdown,
        move |stream, peer, _, permit| {
            let host = host.clone();
            async move {
                if permit
                    .run(handle_connection(stream, peer, &host, &permit))
                    .await
                    .is_none()
                {
                    tracing::debug!(%peer, "idle RTSP connection closed for a newer one");
                }
            }
        },
    )
    .await;
}

/// A request read off a connection, with the session it belongs to.
enum Incoming {
    Plain(RtspRequest),
    Sealed(RtspRequest, Arc<Session>),
}

async fn handle_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    host: &RtspContext,
    permit: &crate::net::ConnectionPermit,
) {
    let incoming = match tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream, host)).await {
        Ok(Ok(Some(incoming))) => {
            permit.mark_busy();
            incoming
        }
        // A bare connect (clients probe ports) or a peer that went away.
        Ok(Ok(None)) => return,
        Ok(Err(reply)) => {
            tracing::warn!(%peer, status = reply.status.0, "malformed RTSP request");
            let _ = stream.write_all(&reply.encode()).await;
            let _ = stream.shutdown().await;
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "RTSP request timed out");
            return;
        }
    };
    let bytes = match incoming {
        Incoming::Plain(request) => {
            // A browser's session (no Moonlight key) answers no RTSP.
            let session = host
                .sessions
                .latest_by_address(peer.ip())
                .filter(|session| session.keys.is_some());
            let reply = match session {
                Some(session)
                    if session
                        .keys
                        .as_ref()
                        .is_some_and(|keys| keys.key().corever >= 1) =>
                {
                    tracing::warn!(
                        parent: &session.span,
                        %peer,
                        method = %request.method.as_str(),
                        "plain RTSP request refused: this session was launched with rtspenc://, so \
                         its client encrypts every request"
                    );
                    RtspResponse::new(StatusCode::FORBIDDEN, request.cseq)
                }
                Some(session) => respond(&request, &session, host).await,
                None => {
                    tracing::warn!(%peer, method = %request.method.as_str(), "RTSP request without a launched session");
                    RtspResponse::new(StatusCode::SESSION_NOT_FOUND, request.cseq)
                }
            };
            reply.encode()
        }
        Incoming::Sealed(request, session) => {
            let reply = respond(&request, &session, host).await;
            // Only a session with a key opened the request.
            let Some(keys) = session.keys.as_ref() else {
                return;
            };
            match keys
                .rtsp_cipher()
                .seal_response(keys.next_rtsp_response_seq(), &reply.encode())
            {
                Ok(sealed) => sealed,
                Err(error) => {
                    tracing::error!(parent: &session.span, %error, "cannot seal the RTSP response");
                    return;
                }
            }
        }
    };
    let _ = stream.write_all(&bytes).await;
    // The client reads the response until the host closes the connection.
    let _ = stream.shutdown().await;
}

/// Reads one whole request. `Ok(None)`: the peer closed without sending one.
async fn read_request(
    stream: &mut TcpStream,
    host: &RtspContext,
) -> Result<Option<Incoming>, RtspResponse> {
    let mut buffer = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await.unwrap_or(0);
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(chunk.get(..read).unwrap_or_default());
        if buffer.len() > MAX_REQUEST {
            return Err(RtspResponse::new(StatusCode::BAD_REQUEST, 0));
        }
        if is_sealed(&buffer) == Some(true) {
            let Some(length) =
                RtspCipher::frame_len(&buffer).map_err(|e| RtspResponse::for_error(&e, 0))?
            else {
                continue;
            };
            // The client may write a request in several pieces.
            let Some(frame) = buffer.get(..length) else {
                continue;
            };
            // Each launched session has its own key: the one that opens the frame owns it.
            for session in host.sessions.all() {
                let Some(keys) = session.keys.as_ref() else {
                    continue;
                };
                if let Ok(unsealed) = keys.rtsp_cipher().open_request(frame) {
                    if !keys.accept_rtsp_request_seq(unsealed.seq) {
                        tracing::warn!(
                            parent: &session.span,
                            seq = unsealed.seq,
                            "encrypted RTSP request replayed (its sequence number was used); ignored"
                        );
                        return Ok(None);
                    }
                    let request = RtspRequest::parse_exact(&unsealed.plaintext)
                        .map_err(|e| RtspResponse::for_error(&e, 0))?;
                    return Ok(Some(Incoming::Sealed(request, session)));
                }
            }
            tracing::warn!("encrypted RTSP request that no session's key opens");
            return Ok(None);
        }
        match RtspRequest::parse(&buffer) {
            Ok(Parsed::Incomplete) => continue,
            Ok(Parsed::Complete { request, .. }) => return Ok(Some(Incoming::Plain(request))),
            Err(error) => return Err(RtspResponse::for_error(&error, 0)),
        }
    }
}

async fn respond(
    request: &RtspRequest,
    session: &Arc<Session>,
    host: &RtspContext,
) -> RtspResponse {
    tracing::debug!(parent: &session.span, method = %request.method.as_str(), target = %request.target, "rtsp");
    let cseq = request.cseq;
    let session_header = format!("{:08X}", session.id);
    // A session a gateway placed here is reached on its front ports, which SETUP must name.
    let (audio, video, control) = match session.front_ports {
        Some(front) => (front.audio, front.video, front.control),
        None => (host.ports.audio, host.ports.video, host.ports.control),
    };
    match &request.method {
        Method::Options => RtspResponse::ok(cseq),
        Method::Describe => RtspResponse::ok(cseq).with_body(session.describe().encode()),
        Method::Setup => match request.stream_kind() {
            Some(StreamKind::Audio) => RtspResponse::setup(
                cseq,
                &session_header,
                audio,
                SetupIdentifier::PingPayload(&session.ping_payload),
            ),
            Some(StreamKind::Video) => RtspResponse::setup(
                cseq,
                &session_header,
                video,
                SetupIdentifier::PingPayload(&session.ping_payload),
            ),
            Some(StreamKind::Control) => RtspResponse::setup(
                cseq,
                &session_header,
                control,
                SetupIdentifier::ConnectData(session.id),
            ),
            None => RtspResponse::new(StatusCode::NOT_FOUND, cseq),
        },
        Method::Announce => match StreamConfig::parse(&request.body) {
            Ok(config) => {
                let high_quality = request.host_requests_high_quality_audio();
                match session.announce(config, high_quality).await {
                    Ok(()) => RtspResponse::ok(cseq),
                    Err(error) => {
                        tracing::error!(parent: &session.span, app = %session.app.title, %error, "cannot start the stream");
                        RtspResponse::new(StatusCode::INTERNAL_SERVER_ERROR, cseq)
                    }
                }
            }
            Err(error) => {
                tracing::warn!(parent: &session.span, %error, "malformed ANNOUNCE");
                RtspResponse::new(StatusCode::BAD_REQUEST, cseq)
            }
        },
        Method::Play | Method::Teardown => RtspResponse::ok(cseq),
        Method::Other(_) => RtspResponse::new(StatusCode::NOT_FOUND, cseq),
    }
}
