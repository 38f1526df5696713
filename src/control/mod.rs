//! The control stream (PROTOCOL.md §3): an ENet host behind the control port's gate (see
//! `gate`). A client connects with its session's connect data; every message is AES-GCM sealed
//! in both directions. A new connection is only *pending* until its first message opens with
//! the session key and carries a sequence number never seen under that key: then it is
//! attached to the session, and its address may steer the session's streams. A pending
//! connection that does not prove itself in time is dropped, and a replayed message is counted
//! and ignored. Key frame requests, input and loss reports go to the session; the host sends
//! termination when a session ends. A client disconnecting pauses its session's stream until
//! `/resume`.

pub mod gate;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hati_protocol::control::{ControlCipher, HostMessage};
use tokio::sync::{mpsc, watch};
use tokio_enet::{Event, HostConfig, Packet, PacketMode, PeerId};

use crate::session::{ControlCommand, Session, SessionKeys, SessionManager};

/// Channels the client opens (`CTRL_CHANNEL_COUNT`).
const CHANNELS: usize = 0x30;
/// ENet peer slots: the gate's tunnels, each with a few connection attempts in flight.
const PEERS: usize = 256;
/// How long a new connection may take to send its first sealed message.
const PENDING_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages that fail to open before a pending connection is dropped.
const PENDING_FAILURES: u32 = 4;
/// How long one `service` call may wait, bounding how late a queued command goes out.
const SERVICE_INTERVAL: Duration = Duration::from_millis(5);

/// The longest the control loop has spent between two `service` calls since start, µs: how long
/// one client's messages could wait on work done for another (`GET /status`
/// `control_loop_busiest_ms`). The loop hands every slow job (pipeline teardown) elsewhere, so
/// this stays far below a millisecond unless the machine is starved of CPU.
static BUSIEST_US: AtomicU64 = AtomicU64::new(0);

/// See [`BUSIEST_US`]: the control loop's longest stretch of work between two receives, ms.
pub fn busiest_ms() -> f64 {
    BUSIEST_US.load(Ordering::Relaxed) as f64 / 1000.0
}

struct Peer {
    session: Arc<Session>,
    cipher: ControlCipher,
    /// The client's address (not the gate's tunnel).
    address: SocketAddr,
    /// Whether a fresh message opened with the session key came from this connection.
    authenticated: bool,
    connected_at: Instant,
    failures: u32,
}

/// Runs [`serve`] on a thread of its own, with its own single-threaded runtime, raised to the
/// input priority (`crate::priority`): the gate and the loop are the first hop of every input
/// event, and there they wait for no other task of the host. Jobs they hand on (a pause's
/// teardown, an end) go to the main runtime as before. The receiver gets `serve`'s result.
pub fn spawn(
    address: SocketAddr,
    sessions: Arc<SessionManager>,
    commands: mpsc::UnboundedReceiver<ControlCommand>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::sync::oneshot::Receiver<anyhow::Result<()>>> {
    let (done, result) = tokio::sync::oneshot::channel();
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name("hati-control".into())
        .spawn(move || {
            let _entered = span.entered();
            crate::priority::raise_input_thread();
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| anyhow::anyhow!("cannot start the control stream's runtime: {e}"))
                .and_then(|runtime| runtime.block_on(serve(address, sessions, commands, shutdown)));
            let _ = done.send(outcome);
        })?;
    Ok(result)
}

/// Runs the control stream until shutdown.
pub async fn serve(
    address: SocketAddr,
    sessions: Arc<SessionManager>,
    mut commands: mpsc::UnboundedReceiver<ControlCommand>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let public = tokio::net::UdpSocket::bind(address).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on UDP {address} (set by network.control_port in the config): {e}"
        )
    })?;
    let config = HostConfig {
        address: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        peer_count: PEERS,
        channel_limit: CHANNELS,
        ..HostConfig::default()
    };
    let mut host = tokio_enet::Host::new(config)
        .map_err(|e| anyhow::anyhow!("cannot start the control stream's ENet host: {e}"))?;
    let enet_address = host
        .local_addr()
        .map_err(|e| anyhow::anyhow!("cannot start the control stream's ENet host: {e}"))?;
    let addresses = gate::PeerAddresses::default();
    // Bounded by the ENet peer slots: at most one release per peer in flight.
    let (released, released_rx) = mpsc::channel(PEERS);
    tokio::spawn(gate::run(
        public,
        enet_address,
        sessions.clone(),
        addresses.clone(),
        released_rx,
        shutdown.clone(),
    ));
    let mut peers: HashMap<PeerId, Peer> = HashMap::new();
    let mut busy_since = Instant::now();
    loop {
        while let Ok(command) = commands.try_recv() {
            match command {
                ControlCommand::Terminate {
                    session_id,
                    hresult,
                } => terminate(&mut host, &mut peers, session_id, hresult),
                ControlCommand::Flush(done) => {
                    // Commands are handled in order, so every termination queued before this
                    // is in the ENet queue now.
                    if let Err(error) = host.flush().await {
                        tracing::debug!(%error, "control stream flush failed");
                    }
                    let _ = done.send(());
                }
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
                        Then::Stay,
                    );
                }
            }
        }
        if *shutdown.borrow() {
            let _ = host.flush().await;
            return Ok(());
        }
        drop_unproven(&mut host, &mut peers, &released);
        let busy = u64::try_from(busy_since.elapsed().as_micros()).unwrap_or(u64::MAX);
        BUSIEST_US.fetch_max(busy, Ordering::Relaxed);
        let serviced = host.service(SERVICE_INTERVAL).await;
        busy_since = Instant::now();
        let event = match serviced {
            Ok(Some(event)) => event,
            Ok(None) => continue,
            Err(error) => {
                tracing::debug!(%error, "control stream receive failed");
                continue;
            }
        };
        match event {
            Event::Connect { peer_id, data } => {
                let client = host
                    .peer(peer_id)
                    .and_then(|p| addresses.client(p.address()));
                let session = match (data, client) {
                    (_, None) => None,
                    (0, Some(client)) => sessions.latest_by_address(client.ip()),
                    (id, Some(_)) => sessions.by_id(id),
                };
                // A browser's session (no Moonlight key) has no control stream.
                let session = session.and_then(|s| s.control_cipher().map(|cipher| (s, cipher)));
                match (session, client) {
                    (Some((session, cipher)), Some(client)) => {
                        tracing::debug!(parent: &session.span, %client, "control connection pending until its first sealed message");
                        peers.insert(
                            peer_id,
                            Peer {
                                session,
                                cipher,
                                address: client,
                                authenticated: false,
                                connected_at: Instant::now(),
                                failures: 0,
                            },
                        );
                    }
                    _ => {
                        tracing::warn!(
                            ?client,
                            connect_data = data,
                            "control connection for no session"
                        );
                        host.disconnect_now(peer_id, 0);
                    }
                }
            }
            Event::Receive {
                peer_id, packet, ..
            } => {
                let received = Instant::now();
                let Some(peer) = peers.get_mut(&peer_id) else {
                    continue;
                };
                if !receive(peer, packet.data(), received) {
                    tracing::warn!(parent: &peer.session.span, client = %peer.address, "control connection dropped: its messages do not open with the session key");
                    let _ = released.try_send(peer.address);
                    peers.remove(&peer_id);
                    host.disconnect_now(peer_id, 0);
                }
            }
            Event::Disconnect { peer_id, .. } => {
                let Some(peer) = peers.remove(&peer_id) else {
                    continue;
                };
                // Its tunnel stops counting in its address's share (a missed release only
                // delays that until the tunnel is idle).
                let _ = released.try_send(peer.address);
                if peer.authenticated {
                    tracing::info!(parent: &peer.session.span, "control stream disconnected; stream paused");
                    let others = peers
                        .values()
                        .any(|p| p.authenticated && p.session.id == peer.session.id);
                    if !others {
                        // Returns at once: the pipelines stop on the session's media worker.
                        peer.session.pause();
                    }
                }
            }
        }
    }
}

/// Handles one message of `peer`; false when the connection should be dropped.
fn receive(peer: &mut Peer, data: &[u8], received: Instant) -> bool {
    match peer.cipher.open_client_message(data) {
        Ok((seq, message)) => {
            let fresh = peer
                .session
                .keys
                .as_ref()
                .is_some_and(|keys| keys.accept_control_seq(seq));
            if !fresh {
                let replayed = peer
                    .session
                    .metrics
                    .replayed_control_messages
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                if replayed.is_power_of_two() {
                    tracing::warn!(parent: &peer.session.span, client = %peer.address, seq, replayed, "replayed control message ignored");
                }
                peer.failures += 1;
                return peer.authenticated || peer.failures < PENDING_FAILURES;
            }
            if !peer.authenticated {
                peer.authenticated = true;
                peer.session.control_authenticated(peer.address.ip());
                tracing::info!(parent: &peer.session.span, client = %peer.address, "control stream connected");
            }
            peer.session.on_control_message(message, received);
            true
        }
        Err(error) => {
            tracing::debug!(parent: &peer.session.span, %error, "control message dropped");
            peer.failures += 1;
            peer.authenticated || peer.failures < PENDING_FAILURES
        }
    }
}

/// Drops pending connections that did not prove themselves in time.
fn drop_unproven(
    host: &mut tokio_enet::Host,
    peers: &mut HashMap<PeerId, Peer>,
    released: &mpsc::Sender<SocketAddr>,
) {
    let now = Instant::now();
    let expired: Vec<PeerId> = peers
        .iter()
        .filter(|(_, p)| !p.authenticated && now.duration_since(p.connected_at) > PENDING_TIMEOUT)
        .map(|(id, _)| *id)
        .collect();
    for peer_id in expired {
        if let Some(peer) = peers.remove(&peer_id) {
            tracing::warn!(parent: &peer.session.span, client = %peer.address, "control connection dropped: no sealed message within {} s", PENDING_TIMEOUT.as_secs());
            let _ = released.try_send(peer.address);
        }
        host.disconnect_now(peer_id, 0);
    }
}

/// What becomes of a control connection once a message went out on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// It stays open.
    Stay,
    /// It closes once the message is delivered (the termination message).
    Disconnect,
}

/// Sends `message` to every authenticated control connection of session `session_id`.
fn send(
    host: &mut tokio_enet::Host,
    peers: &mut HashMap<PeerId, Peer>,
    session_id: u32,
    message: &HostMessage,
    then: Then,
) {
    for (peer_id, peer) in peers
        .iter_mut()
        .filter(|(_, p)| p.authenticated && p.session.id == session_id)
    {
        let Some(seq) = peer
            .session
            .keys
            .as_ref()
            .and_then(SessionKeys::next_control_send_seq)
        else {
            continue;
        };
        match peer.cipher.seal_host_message(seq, message) {
            Ok(sealed) => {
                if let Some(enet_peer) = host.peer_mut(*peer_id) {
                    let _ = enet_peer.send(0, Packet::new(&sealed, PacketMode::ReliableSequenced));
                    if then == Then::Disconnect {
                        enet_peer.disconnect_later(0);
                    }
                }
            }
            Err(error) => {
                tracing::error!(parent: &peer.session.span, %error, ?message, "cannot seal a control message")
            }
        }
    }
}

/// Tells every control connection of session `session_id` the stream ended, then closes them.
fn terminate(
    host: &mut tokio_enet::Host,
    peers: &mut HashMap<PeerId, Peer>,
    session_id: u32,
    hresult: u32,
) {
    let message = HostMessage::Termination { hresult };
    send(host, peers, session_id, &message, Then::Disconnect);
    tracing::debug!(
        session = session_id,
        hresult = format_args!("{hresult:#x}"),
        "termination sent"
    );
}
