//! The host's video and audio UDP sockets: clients ping them (PROTOCOL.md §4.1, §5.1) and the
//! pings' source addresses become the sessions' targets (see `target` for why a live target
//! does not move); the same sockets send the streams.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use crate::session::SessionManager;

/// A client ping with `X-SS-Ping-Payload`: 16 payload bytes and a BE32 counter.
const SS_PING_LEN: usize = 20;
/// The legacy ping.
const LEGACY_PING: &[u8] = b"PING";
/// Kernel send buffer for the media sockets, so key frames fit.
const SEND_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Which stream a socket carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Video (RTP + FEC).
    Video,
    /// Audio (RTP + FEC).
    Audio,
}

/// The host's two media sockets.
#[derive(Debug, Clone)]
pub struct MediaSockets {
    /// The video socket.
    pub video: Arc<UdpSocket>,
    /// The audio socket.
    pub audio: Arc<UdpSocket>,
}

impl MediaSockets {
    /// Binds both sockets.
    pub fn bind(address: IpAddr, video_port: u16, audio_port: u16) -> anyhow::Result<Self> {
        Ok(Self {
            video: Arc::new(bind_one(
                SocketAddr::new(address, video_port),
                "network.video_port",
            )?),
            audio: Arc::new(bind_one(
                SocketAddr::new(address, audio_port),
                "network.audio_port",
            )?),
        })
    }
}

fn bind_one(address: SocketAddr, key: &str) -> anyhow::Result<UdpSocket> {
    let context = || format!("cannot listen on UDP {address} (set by {key} in the config)");
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::DGRAM,
        None,
    )
    .with_context(context)?;
    let _ = socket.set_send_buffer_size(SEND_BUFFER_BYTES);
    socket.bind(&address.into()).with_context(context)?;
    socket.set_nonblocking(true).with_context(context)?;
    Ok(socket.into())
}

/// Receives pings on `socket` until shutdown and points the matching session's target at them.
pub async fn listen(
    socket: Arc<UdpSocket>,
    kind: StreamKind,
    sessions: Arc<SessionManager>,
    mut shutdown: watch::Receiver<bool>,
) {
    let socket = match socket.try_clone().and_then(tokio::net::UdpSocket::from_std) {
        Ok(socket) => socket,
        Err(error) => {
            tracing::error!(%error, ?kind, "cannot receive pings");
            return;
        }
    };
    let mut buffer = [0u8; 64];
    loop {
        let (length, from) = tokio::select! {
            received = socket.recv_from(&mut buffer) => match received {
                Ok(received) => received,
                Err(error) => {
                    tracing::debug!(%error, ?kind, "ping receive failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let ping = buffer.get(..length).unwrap_or_default();
        let session = match ping.len() {
            SS_PING_LEN => ping
                .get(..16)
                .and_then(|payload| sessions.by_ping_payload(payload)),
            4 if ping == LEGACY_PING => sessions.latest_by_address(from.ip()),
            _ => None,
        };
        match session {
            Some(session) => session.client_pinged(kind, from),
            None => tracing::trace!(%from, ?kind, length, "ping from no known session"),
        }
    }
}
