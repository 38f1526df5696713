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
use hati_protocol::sdp::{DescribeBody, EncryptionFlags, HostFeatureFlags, StreamConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::host::Host;
use crate::pipeline::{AudioRequest, VideoRequest};
use crate::session::{ControlCommand, Session};
use crate::stream::MediaStream;
use crate::stream::media::Endpoint;

/// Largest request accepted (an ANNOUNCE is about 2 KiB).
const MAX_REQUEST: usize = 64 * 1024;
/// Termination code sent when a pipeline fails (E_FAIL: the client reports it as an error).
const STREAM_FAILED: u32 = 0x8000_4005;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a session's pipelines could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The pipeline templates could not be filled (config).
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    /// GStreamer refused a pipeline.
    #[error("{source} (app \"{app}\")")]
    Stream {
        /// GStreamer's error.
        source: crate::stream::StreamError,
        /// The app whose pipeline it was.
        app: String,
    },
}

/// Serves RTSP until shutdown.
pub async fn serve(listener: TcpListener, host: Arc<Host>, shutdown: watch::Receiver<bool>) {
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
    host: &Host,
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
            let reply = match host.sessions.latest_by_address(peer.ip()) {
                Some(session) if session.launch_params().corever >= 1 => {
                    tracing::warn!(
                        parent: &session.span,
                        %peer,
                        method = %request.method.as_str(),
                        "plain RTSP request refused: this session was launched with rtspenc://, so \
                         its client encrypts every request"
                    );
                    RtspResponse::new(StatusCode::FORBIDDEN, request.cseq)
                }
                Some(session) => respond(&request, &session, host),
                None => {
                    tracing::warn!(%peer, method = %request.method.as_str(), "RTSP request without a launched session");
                    RtspResponse::new(StatusCode::SESSION_NOT_FOUND, request.cseq)
                }
            };
            reply.encode()
        }
        Incoming::Sealed(request, session) => {
            let reply = respond(&request, &session, host);
            match session
                .rtsp_cipher()
                .seal_response(session.next_rtsp_response_seq(), &reply.encode())
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
    host: &Host,
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
                if let Ok(unsealed) = session.rtsp_cipher().open_request(frame) {
                    if !session.accept_rtsp_request_seq(unsealed.seq) {
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

fn respond(request: &RtspRequest, session: &Session, host: &Host) -> RtspResponse {
    let _entered = session.span.enter();
    tracing::debug!(method = %request.method.as_str(), target = %request.target, "rtsp");
    let cseq = request.cseq;
    let session_header = format!("{:08X}", session.id);
    match &request.method {
        Method::Options => RtspResponse::ok(cseq),
        Method::Describe => RtspResponse::ok(cseq).with_body(describe_body(host).encode()),
        Method::Setup => match request.stream_kind() {
            Some(StreamKind::Audio) => RtspResponse::setup(
                cseq,
                &session_header,
                host.ports.audio,
                SetupIdentifier::PingPayload(&session.ping_payload),
            ),
            Some(StreamKind::Video) => RtspResponse::setup(
                cseq,
                &session_header,
                host.ports.video,
                SetupIdentifier::PingPayload(&session.ping_payload),
            ),
            Some(StreamKind::Control) => RtspResponse::setup(
                cseq,
                &session_header,
                host.ports.control,
                SetupIdentifier::ConnectData(session.id),
            ),
            None => RtspResponse::new(StatusCode::NOT_FOUND, cseq),
        },
        Method::Announce => match StreamConfig::parse(&request.body) {
            Ok(config) => {
                let high_quality = request.host_requests_high_quality_audio();
                match session.start_stream(config, |config| {
                    start_media(host, session, config, high_quality)
                }) {
                    Ok(()) => RtspResponse::ok(cseq),
                    Err(error) => {
                        tracing::error!(app = %session.app.title, %error, "cannot start the stream");
                        RtspResponse::new(StatusCode::INTERNAL_SERVER_ERROR, cseq)
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "malformed ANNOUNCE");
                RtspResponse::new(StatusCode::BAD_REQUEST, cseq)
            }
        },
        Method::Play | Method::Teardown => RtspResponse::ok(cseq),
        Method::Other(_) => RtspResponse::new(StatusCode::NOT_FOUND, cseq),
    }
}

/// What this host offers in DESCRIBE.
pub fn describe_body(host: &Host) -> DescribeBody {
    let mut supported = EncryptionFlags::CONTROL_V2 | EncryptionFlags::AUDIO;
    if host.config().streaming.video_encryption {
        supported = supported | EncryptionFlags::VIDEO;
    }
    DescribeBody {
        feature_flags: HostFeatureFlags::PEN_TOUCH_EVENTS
            | HostFeatureFlags::CONTROLLER_TOUCH_EVENTS,
        encryption_supported: supported,
        encryption_requested: EncryptionFlags::CONTROL_V2,
        ref_pic_invalidation: false,
        hevc: host.codecs.hevc.is_some(),
        av1: host.codecs.av1.is_some(),
    }
}

fn start_media(
    host: &Host,
    session: &Session,
    config: &StreamConfig,
    high_quality_audio: Option<bool>,
) -> Result<MediaStream, StartError> {
    let launch = session.launch_params();
    let video_request = VideoRequest {
        session_id: session.id,
        stream: config,
        encryption_key: config.video_encrypted().then_some(launch.rikey),
        desktop: session.desktop().is_some(),
    };
    let video = crate::pipeline::video_description(
        &host.config(),
        &session.app,
        &host.codecs,
        &video_request,
    )?;
    let layout = config.opus_layout(high_quality_audio);
    let audio_request = AudioRequest {
        session_id: session.id,
        layout,
        packet_duration_ms: config.audio.packet_duration_ms,
        sink: session.audio_sink(),
        encryption: config
            .audio_encrypted()
            .then_some((launch.rikey, launch.rikeyid)),
    };
    let audio = crate::pipeline::audio_description(&host.config(), &session.app, &audio_request)?;
    tracing::info!(
        width = config.width,
        height = config.height,
        fps = config.fps,
        codec = ?config.codec,
        packet_size = config.packet_size,
        audio_channels = layout.channels,
        video_encrypted = config.video_encrypted(),
        audio_encrypted = config.audio_encrypted(),
        "starting stream"
    );
    tracing::debug!(%video, %audio, "pipelines");
    let control = host.control_commands.clone();
    let span = session.span.clone();
    let session_id = session.id;
    let events = host.events.clone();
    let on_error = move |message: String| {
        tracing::error!(parent: &span, %message, "stream failed; ending it");
        events.publish(crate::events::Event::StreamFailed {
            session: session_id,
            message: message.clone(),
        });
        let _ = control.send(ControlCommand::Terminate {
            session_id,
            hresult: STREAM_FAILED,
        });
    };
    MediaStream::start(
        session.id,
        Endpoint {
            description: &video,
            socket: host.media.video.clone(),
            target: session.video_target.clone(),
        },
        Endpoint {
            description: &audio,
            socket: host.media.audio.clone(),
            target: session.audio_target.clone(),
        },
        session.desktop(),
        on_error,
    )
    .map_err(|source| StartError::Stream {
        source,
        app: session.app.title.clone(),
    })
}
