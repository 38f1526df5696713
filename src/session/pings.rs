//! Pings on the media sockets (PROTOCOL.md §4.1, §5.1): their source addresses become the
//! sessions' targets (see `stream::target` for why a live target does not move).

use std::net::UdpSocket;
use std::sync::Arc;

use tokio::sync::watch;

use super::SessionManager;
use crate::stream::ping::StreamKind;

/// A client ping with `X-SS-Ping-Payload`: 16 payload bytes and a BE32 counter.
const SS_PING_LEN: usize = 20;
/// The legacy ping.
const LEGACY_PING: &[u8] = b"PING";

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
