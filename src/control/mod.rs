//! The control stream (PROTOCOL.md §3): an ENet host on the control port. A client connects
//! with its session's connect data; every message is AES-GCM sealed in both directions. Key
//! frame requests, input and loss reports go to the session; the host sends termination when
//! a session ends. A client disconnecting pauses its session's stream until `/resume`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hati_protocol::control::{ControlCipher, HostMessage};
use tokio::sync::{mpsc, watch};
use tokio_enet::{Event, HostConfig, Packet, PacketMode, PeerId};

use crate::session::{ControlCommand, Session, SessionManager};

/// Channels the client opens (`CTRL_CHANNEL_COUNT`).
const CHANNELS: usize = 0x30;
/// Concurrent control connections (several per client during quick reconnects).
const PEERS: usize = 128;
/// How long one `service` call may wait, bounding how late a queued command goes out.
const SERVICE_INTERVAL: Duration = Duration::from_millis(5);

struct Peer {
    session: Arc<Session>,
    cipher: ControlCipher,
    next_seq: u32,
}

/// Runs the control stream until shutdown.
pub async fn serve(
    address: SocketAddr,
    sessions: Arc<SessionManager>,
    mut commands: mpsc::UnboundedReceiver<ControlCommand>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let config = HostConfig {
        address: Some(address),
        peer_count: PEERS,
        channel_limit: CHANNELS,
        ..HostConfig::default()
    };
    let mut host = tokio_enet::Host::new(config).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on UDP {address} (set by network.control_port in the config): {e}"
        )
    })?;
    let mut peers: HashMap<PeerId, Peer> = HashMap::new();
    loop {
        while let Ok(command) = commands.try_recv() {
            match command {
                ControlCommand::Terminate {
                    session_id,
                    hresult,
                } => terminate(&mut host, &mut peers, session_id, hresult),
                ControlCommand::Rumble {
                    session_id,
                    controller,
                    low_freq,
                    high_freq,
                } => {
                    send(
                        &mut host,
                        &mut peers,
                        session_id,
                        &HostMessage::Rumble {
                            controller,
                            low_freq,
                            high_freq,
                        },
                    );
                }
            }
        }
        if *shutdown.borrow() {
            let _ = host.flush().await;
            return Ok(());
        }
        let event = match host.service(SERVICE_INTERVAL).await {
            Ok(Some(event)) => event,
            Ok(None) => continue,
            Err(error) => {
                tracing::debug!(%error, "control stream receive failed");
                continue;
            }
        };
        match event {
            Event::Connect { peer_id, data } => {
                let address = host.peer(peer_id).map(|p| p.address());
                let session = match data {
                    0 => address.and_then(|a| sessions.latest_by_address(a.ip())),
                    id => sessions.by_id(id),
                };
                match session {
                    Some(session) => {
                        tracing::info!(parent: &session.span, client = ?address, "control stream connected");
                        let cipher = session.control_cipher();
                        peers.insert(
                            peer_id,
                            Peer {
                                session,
                                cipher,
                                next_seq: 0,
                            },
                        );
                    }
                    None => {
                        tracing::warn!(client = ?address, connect_data = data, "control connection for no session");
                        host.disconnect_now(peer_id, 0);
                    }
                }
            }
            Event::Receive {
                peer_id, packet, ..
            } => {
                let Some(peer) = peers.get(&peer_id) else {
                    continue;
                };
                match peer.cipher.open_client_message(packet.data()) {
                    Ok((_, message)) => peer.session.on_control_message(message),
                    Err(error) => {
                        tracing::debug!(parent: &peer.session.span, %error, "control message dropped")
                    }
                }
            }
            Event::Disconnect { peer_id, .. } => {
                if let Some(peer) = peers.remove(&peer_id) {
                    tracing::info!(parent: &peer.session.span, "control stream disconnected; stream paused");
                    if !peers.values().any(|p| p.session.id == peer.session.id) {
                        peer.session.stop_stream();
                    }
                }
            }
        }
    }
}

/// Sends `message` to every control connection of session `session_id`.
fn send(
    host: &mut tokio_enet::Host,
    peers: &mut HashMap<PeerId, Peer>,
    session_id: u32,
    message: &HostMessage,
) {
    for (peer_id, peer) in peers.iter_mut().filter(|(_, p)| p.session.id == session_id) {
        let seq = peer.next_seq;
        peer.next_seq = peer.next_seq.wrapping_add(1);
        match peer.cipher.seal_host_message(seq, message) {
            Ok(sealed) => {
                if let Some(enet_peer) = host.peer_mut(*peer_id) {
                    let _ = enet_peer.send(0, Packet::new(&sealed, PacketMode::ReliableSequenced));
                }
            }
            Err(error) => {
                tracing::error!(parent: &peer.session.span, %error, "cannot seal a control message")
            }
        }
    }
}

fn terminate(
    host: &mut tokio_enet::Host,
    peers: &mut HashMap<PeerId, Peer>,
    session_id: u32,
    hresult: u32,
) {
    for (peer_id, peer) in peers.iter_mut().filter(|(_, p)| p.session.id == session_id) {
        let seq = peer.next_seq;
        peer.next_seq = peer.next_seq.wrapping_add(1);
        match peer
            .cipher
            .seal_host_message(seq, &HostMessage::Termination { hresult })
        {
            Ok(sealed) => {
                if let Some(enet_peer) = host.peer_mut(*peer_id) {
                    let _ = enet_peer.send(0, Packet::new(&sealed, PacketMode::ReliableSequenced));
                    enet_peer.disconnect_later(0);
                }
                tracing::info!(parent: &peer.session.span, hresult = format_args!("{hresult:#x}"), "termination sent");
            }
            Err(error) => {
                tracing::error!(parent: &peer.session.span, %error, "cannot seal the termination message")
            }
        }
    }
}
