//! The control port's gate: vets every datagram before the ENet host sees it, so that an
//! unauthenticated LAN peer cannot fill the host's peer slots (PROTOCOL.md §3.1).
//!
//! The ENet host listens on loopback only. The gate owns the public control port and keeps
//! one loopback *tunnel* socket per admitted client address: what the client sends goes to the
//! ENet host through its tunnel, what the ENet host answers on the tunnel goes back to the
//! client. An address gets a tunnel only with a CONNECT whose connect data names a live
//! session (or 0, Moonlight's value before session IDs, with a session launched from that IP);
//! any other datagram from an unknown address is dropped without a reply. Tunnels are bounded
//! in total and per IP: an address may hold one tunnel per live session launched from it (a
//! family behind one NAT, a gateway relaying many clients) plus a small allowance for
//! handshakes, so an address with no session holds at most that allowance. A tunnel forwards a
//! new connection attempt at most once a second, and closes when its ENet peer disconnects,
//! when its session ends, or when it is idle.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hati_protocol::enet::{ConnectRequest, parse_connect};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::session::SessionManager;

/// Tunnels in total (the ENet host has twice as many peer slots).
pub const MAX_TUNNELS: usize = 128;
/// Tunnels an IP address may hold beyond one per live session launched from it: a
/// reconnect while the old connection is still closing, a second device behind the same NAT
/// whose session was launched from another address.
pub const HANDSHAKE_ALLOWANCE: usize = 2;
/// A tunnel forwards a CONNECT with a new connect ID at most this often.
pub const NEW_CONNECT_INTERVAL: Duration = Duration::from_secs(1);
/// A tunnel nobody sent through for this long closes (clients ping every 100 ms).
pub const TUNNEL_IDLE: Duration = Duration::from_secs(15);
/// A tunnel whose ENet peer disconnected stays this long for the last acknowledgements, no
/// longer counted in its address's share.
pub const RELEASED_GRACE: Duration = Duration::from_secs(1);
/// Largest datagram relayed (ENet's maximum MTU).
const MAX_DATAGRAM: usize = 4096;

/// What the gate does with one datagram from the public port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Relay it through the sender's tunnel.
    Forward,
    /// Open a tunnel for the sender, then relay it.
    Open,
    /// Drop it.
    Drop(DropReason),
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// From an unknown address and not a CONNECT.
    NotConnect,
    /// A CONNECT whose connect data names no live session.
    NoSession,
    /// Every tunnel is taken.
    TooManyTunnels,
    /// This IP holds a tunnel per session launched from it and its handshake allowance.
    TooManyFromIp,
    /// A new connection attempt too soon after the last one from this address.
    ConnectTooSoon,
}

/// What the gate asks of the session table.
pub trait SessionDirectory {
    /// The live session a CONNECT with connect data `data` from `ip` belongs to (0 is
    /// Moonlight's value before session IDs: the latest session launched from `ip`).
    fn session_for(&self, data: u32, ip: IpAddr) -> Option<u32>;
    /// How many live sessions were launched from `ip`.
    fn sessions_from(&self, ip: IpAddr) -> usize;
    /// Whether session `id` is still live.
    fn is_live(&self, id: u32) -> bool;
}

impl SessionDirectory for SessionManager {
    fn session_for(&self, data: u32, ip: IpAddr) -> Option<u32> {
        match data {
            0 => self.latest_by_address(ip),
            id => self.by_id(id),
        }
        // A browser's session (no Moonlight key) has no control stream.
        .filter(|session| session.keys.is_some())
        .map(|session| session.id)
    }

    fn sessions_from(&self, ip: IpAddr) -> usize {
        self.count_from_address(ip)
    }

    fn is_live(&self, id: u32) -> bool {
        self.by_id(id).is_some()
    }
}

#[derive(Debug)]
struct TunnelState {
    /// The session its CONNECT named.
    session: u32,
    /// When its ENet peer disconnected (it then closes after `RELEASED_GRACE`).
    released_at: Option<Instant>,
    last_seen: Instant,
    connect_id: Option<u32>,
    connect_at: Instant,
}

/// The gate's bookkeeping, without sockets (unit-tested below).
#[derive(Debug, Default)]
pub struct GatePolicy {
    tunnels: HashMap<SocketAddr, TunnelState>,
}

impl GatePolicy {
    /// Decides about a datagram from `from`, asking `sessions` about a CONNECT's session.
    pub fn decide(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        now: Instant,
        sessions: &impl SessionDirectory,
    ) -> Verdict {
        let connect = parse_connect(datagram).ok();
        if let Some(tunnel) = self.tunnels.get_mut(&from) {
            if let Some(ConnectRequest { connect_id, .. }) = connect
                && tunnel.connect_id != Some(connect_id)
            {
                if now.saturating_duration_since(tunnel.connect_at) < NEW_CONNECT_INTERVAL {
                    return Verdict::Drop(DropReason::ConnectTooSoon);
                }
                tunnel.connect_id = Some(connect_id);
                tunnel.connect_at = now;
                tunnel.released_at = None;
            }
            tunnel.last_seen = now;
            return Verdict::Forward;
        }
        let Some(connect) = connect else {
            return Verdict::Drop(DropReason::NotConnect);
        };
        let ip = crate::net::canonical_ip(from.ip());
        let Some(session) = sessions.session_for(connect.data, ip) else {
            return Verdict::Drop(DropReason::NoSession);
        };
        if self.tunnels.len() >= MAX_TUNNELS {
            return Verdict::Drop(DropReason::TooManyTunnels);
        }
        let share = sessions.sessions_from(ip) + HANDSHAKE_ALLOWANCE;
        let held = self
            .tunnels
            .iter()
            .filter(|(a, t)| a.ip() == from.ip() && t.released_at.is_none())
            .count();
        if held >= share {
            return Verdict::Drop(DropReason::TooManyFromIp);
        }
        self.tunnels.insert(
            from,
            TunnelState {
                session,
                released_at: None,
                last_seen: now,
                connect_id: Some(connect.connect_id),
                connect_at: now,
            },
        );
        Verdict::Open
    }

    /// The host answered through `to`'s tunnel: it is alive.
    pub fn touch(&mut self, to: SocketAddr, now: Instant) {
        if let Some(tunnel) = self.tunnels.get_mut(&to) {
            tunnel.last_seen = now;
        }
    }

    /// Closes tunnels idle since before `now - TUNNEL_IDLE` and those whose session ended;
    /// returns their addresses.
    pub fn expire(&mut self, now: Instant, sessions: &impl SessionDirectory) -> Vec<SocketAddr> {
        let idle: Vec<SocketAddr> = self
            .tunnels
            .iter()
            .filter(|(_, t)| {
                now.saturating_duration_since(t.last_seen) >= TUNNEL_IDLE
                    || t.released_at
                        .is_some_and(|at| now.saturating_duration_since(at) >= RELEASED_GRACE)
                    || !sessions.is_live(t.session)
            })
            .map(|(a, _)| *a)
            .collect();
        for address in &idle {
            self.tunnels.remove(address);
        }
        idle
    }

    /// `client`'s ENet peer disconnected: its tunnel no longer counts in its address's share
    /// and closes after `RELEASED_GRACE`, unless a new connection attempt comes through it.
    pub fn release(&mut self, client: SocketAddr, now: Instant) {
        if let Some(tunnel) = self.tunnels.get_mut(&client) {
            tunnel.released_at = Some(now);
        }
    }

    /// Forgets the tunnel of `client` (it could not be opened).
    pub fn remove(&mut self, client: SocketAddr) {
        self.tunnels.remove(&client);
    }

    /// Open tunnels.
    pub fn len(&self) -> usize {
        self.tunnels.len()
    }

    /// Whether no tunnel is open.
    pub fn is_empty(&self) -> bool {
        self.tunnels.is_empty()
    }
}

/// Maps the ENet host's view of a peer (its tunnel's loopback address) to the client's address.
#[derive(Debug, Clone, Default)]
pub struct PeerAddresses(Arc<Mutex<HashMap<SocketAddr, SocketAddr>>>);

impl PeerAddresses {
    /// The client behind the tunnel at `internal`, if it is open.
    pub fn client(&self, internal: SocketAddr) -> Option<SocketAddr> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&internal)
            .copied()
    }

    fn insert(&self, internal: SocketAddr, client: SocketAddr) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(internal, client);
    }

    fn remove(&self, internal: SocketAddr) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&internal);
    }
}

struct Tunnel {
    socket: Arc<UdpSocket>,
    internal: SocketAddr,
    relay: tokio::task::JoinHandle<()>,
}

/// Runs the gate on `public` until shutdown, relaying admitted clients to the ENet host at
/// `enet_host`; `released` names clients whose ENet peer disconnected.
pub async fn run(
    public: UdpSocket,
    enet_host: SocketAddr,
    sessions: Arc<SessionManager>,
    addresses: PeerAddresses,
    mut released: mpsc::Receiver<SocketAddr>,
    mut shutdown: watch::Receiver<bool>,
) {
    let public = Arc::new(public);
    let mut policy = GatePolicy::default();
    let mut tunnels: HashMap<SocketAddr, Tunnel> = HashMap::new();
    let (answered_tx, mut answered) = tokio::sync::mpsc::channel::<SocketAddr>(256);
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    let mut dropped = 0u64;
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            received = public.recv_from(&mut buffer) => {
                let (length, from) = match received {
                    Ok(received) => received,
                    Err(error) => {
                        tracing::debug!(%error, "control port receive failed");
                        continue;
                    }
                };
                let datagram = buffer.get(..length).unwrap_or_default();
                let verdict = policy.decide(from, datagram, Instant::now(), sessions.as_ref());
                match verdict {
                    Verdict::Forward => {}
                    Verdict::Open => match open_tunnel(&public, enet_host, from, answered_tx.clone()).await {
                        Ok(tunnel) => {
                            tracing::debug!(client = %from, tunnels = policy.len(), "control tunnel opened");
                            addresses.insert(tunnel.internal, from);
                            tunnels.insert(from, tunnel);
                        }
                        Err(error) => {
                            tracing::warn!(%error, client = %from, "cannot open a control tunnel");
                            policy.remove(from);
                            continue;
                        }
                    },
                    Verdict::Drop(reason) => {
                        dropped += 1;
                        // 1, 2, 4, 8, …: a flood cannot flood the log.
                        if dropped.is_power_of_two() {
                            tracing::warn!(client = %from, ?reason, dropped, "control datagram dropped at the gate");
                        }
                        continue;
                    }
                }
                if let Some(tunnel) = tunnels.get(&from) {
                    let _ = tunnel.socket.send(datagram).await;
                }
            }
            Some(client) = answered.recv() => policy.touch(client, Instant::now()),
            Some(client) = released.recv() => policy.release(client, Instant::now()),
            _ = sweep.tick() => {
                for client in policy.expire(Instant::now(), sessions.as_ref()) {
                    if let Some(tunnel) = tunnels.remove(&client) {
                        tunnel.relay.abort();
                        addresses.remove(tunnel.internal);
                        tracing::debug!(%client, tunnels = policy.len(), "control tunnel closed");
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    for tunnel in tunnels.into_values() {
        tunnel.relay.abort();
    }
}

async fn open_tunnel(
    public: &Arc<UdpSocket>,
    enet_host: SocketAddr,
    client: SocketAddr,
    answered: tokio::sync::mpsc::Sender<SocketAddr>,
) -> std::io::Result<Tunnel> {
    let socket = Arc::new(UdpSocket::bind(SocketAddr::new(enet_host.ip(), 0)).await?);
    socket.connect(enet_host).await?;
    let internal = socket.local_addr()?;
    let relay = tokio::spawn({
        let socket = socket.clone();
        let public = public.clone();
        async move {
            let mut buffer = vec![0u8; MAX_DATAGRAM];
            while let Ok(length) = socket.recv(&mut buffer).await {
                let datagram = buffer.get(..length).unwrap_or_default();
                let _ = public.send_to(datagram, client).await;
                let _ = answered.try_send(client);
            }
        }
    });
    Ok(Tunnel {
        socket,
        internal,
        relay,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(connect_id: u32, data: u32) -> Vec<u8> {
        let mut d = vec![0x8F, 0xFF, 0, 0, 0x82, 0xFF, 0, 1, 0, 0, 0, 0];
        d.extend_from_slice(&[0u8; 32]);
        d.extend_from_slice(&connect_id.to_be_bytes());
        d.extend_from_slice(&data.to_be_bytes());
        d
    }

    const SESSION: u32 = 0x0102_0304;

    /// Live sessions: (ID, the address it was launched from).
    struct Table(std::cell::RefCell<Vec<(u32, IpAddr)>>);

    impl Table {
        fn new(sessions: &[(u32, [u8; 4])]) -> Self {
            Self(std::cell::RefCell::new(
                sessions
                    .iter()
                    .map(|(id, ip)| (*id, IpAddr::from(*ip)))
                    .collect(),
            ))
        }

        fn end(&self, id: u32) {
            self.0.borrow_mut().retain(|(s, _)| *s != id);
        }
    }

    impl SessionDirectory for Table {
        fn session_for(&self, data: u32, ip: IpAddr) -> Option<u32> {
            let sessions = self.0.borrow();
            match data {
                0 => sessions
                    .iter()
                    .rev()
                    .find(|(_, i)| *i == ip)
                    .map(|(s, _)| *s),
                id => sessions.iter().find(|(s, _)| *s == id).map(|(s, _)| *s),
            }
        }

        fn sessions_from(&self, ip: IpAddr) -> usize {
            self.0.borrow().iter().filter(|(_, i)| *i == ip).count()
        }

        fn is_live(&self, id: u32) -> bool {
            self.0.borrow().iter().any(|(s, _)| *s == id)
        }
    }

    fn live() -> Table {
        Table::new(&[(SESSION, [10, 0, 0, 2])])
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn strangers_get_no_tunnel() {
        let mut policy = GatePolicy::default();
        let now = Instant::now();
        let stranger = addr("10.0.0.66:4000");
        assert_eq!(
            policy.decide(stranger, b"hello", now, &live()),
            Verdict::Drop(DropReason::NotConnect)
        );
        assert_eq!(
            policy.decide(stranger, &connect(1, 99), now, &live()),
            Verdict::Drop(DropReason::NoSession)
        );
        assert_eq!(
            policy.decide(stranger, &connect(1, 0), now, &live()),
            Verdict::Drop(DropReason::NoSession)
        );
        assert!(policy.is_empty());
    }

    #[test]
    fn a_client_gets_one_tunnel_and_its_traffic_flows() {
        let mut policy = GatePolicy::default();
        let now = Instant::now();
        let client = addr("10.0.0.2:5000");
        assert_eq!(
            policy.decide(client, &connect(7, SESSION), now, &live()),
            Verdict::Open
        );
        // Retransmissions of the same CONNECT and everything else go through.
        assert_eq!(
            policy.decide(client, &connect(7, SESSION), now, &live()),
            Verdict::Forward
        );
        assert_eq!(
            policy.decide(client, b"any enet traffic", now, &live()),
            Verdict::Forward
        );
        assert_eq!(policy.len(), 1);
    }

    #[test]
    fn a_connect_flood_from_one_socket_is_throttled() {
        let mut policy = GatePolicy::default();
        let t0 = Instant::now();
        let flooder = addr("10.0.0.66:4000");
        let mut forwarded = 0;
        // 20 CONNECTs a second for 30 s, each a new attempt, with a live session's data.
        for k in 0..600u32 {
            let at = t0 + Duration::from_millis(50 * u64::from(k));
            match policy.decide(flooder, &connect(k, SESSION), at, &live()) {
                Verdict::Open | Verdict::Forward => forwarded += 1,
                Verdict::Drop(reason) => assert_eq!(reason, DropReason::ConnectTooSoon),
            }
        }
        assert!(
            forwarded <= 31,
            "{forwarded} attempts reached the ENet host"
        );
        assert_eq!(policy.len(), 1);
        // The real client still gets in.
        assert_eq!(
            policy.decide(addr("10.0.0.2:5000"), &connect(1, SESSION), t0, &live()),
            Verdict::Open
        );
    }

    #[test]
    fn an_address_without_sessions_holds_only_the_handshake_allowance() {
        let mut policy = GatePolicy::default();
        let now = Instant::now();
        // A LAN peer that sniffed a live session's connect data, from many source ports.
        let mut opened = 0;
        for port in 0..100u16 {
            let from = SocketAddr::new(IpAddr::from([10, 0, 0, 66]), 4000 + port);
            if policy.decide(from, &connect(1, SESSION), now, &live()) == Verdict::Open {
                opened += 1;
            }
        }
        assert_eq!(opened, HANDSHAKE_ALLOWANCE);
        assert_eq!(
            policy.decide(addr("10.0.0.66:5999"), &connect(1, SESSION), now, &live()),
            Verdict::Drop(DropReason::TooManyFromIp)
        );
    }

    #[test]
    fn one_address_gets_a_tunnel_per_live_session_and_churn_frees_them() {
        // Sixteen clients behind one NAT, each with its own session.
        let nat = [192, 0, 2, 1];
        let ids: Vec<u32> = (1..=16).collect();
        let table = Table::new(&ids.iter().map(|id| (*id, nat)).collect::<Vec<_>>());
        let mut policy = GatePolicy::default();
        let t0 = Instant::now();
        for (k, id) in ids.iter().enumerate() {
            let from = SocketAddr::new(IpAddr::from(nat), 6000 + k as u16);
            assert_eq!(
                policy.decide(from, &connect(1, *id), t0, &table),
                Verdict::Open,
                "client {k} behind the NAT"
            );
        }
        // Their allowance is still there for a reconnect.
        for k in 0..HANDSHAKE_ALLOWANCE as u16 {
            let from = SocketAddr::new(IpAddr::from(nat), 7000 + k);
            assert_eq!(
                policy.decide(from, &connect(2, 1), t0, &table),
                Verdict::Open
            );
        }
        let over = SocketAddr::new(IpAddr::from(nat), 7999);
        assert_eq!(
            policy.decide(over, &connect(2, 1), t0, &table),
            Verdict::Drop(DropReason::TooManyFromIp)
        );

        // A round ends: every session ends and every ENet peer disconnects. The next round's
        // clients (new sessions, new source ports) get in at once, not after TUNNEL_IDLE.
        let t1 = t0 + Duration::from_secs(2);
        for (k, id) in ids.iter().enumerate() {
            policy.release(SocketAddr::new(IpAddr::from(nat), 6000 + k as u16), t1);
            table.end(*id);
        }
        let closed = policy.expire(t1, &table);
        assert_eq!(closed.len(), ids.len() + HANDSHAKE_ALLOWANCE, "{closed:?}");
        assert!(policy.is_empty());
        let next: Vec<u32> = (101..=116).collect();
        *table.0.borrow_mut() = next.iter().map(|id| (*id, IpAddr::from(nat))).collect();
        for (k, id) in next.iter().enumerate() {
            let from = SocketAddr::new(IpAddr::from(nat), 8000 + k as u16);
            assert_eq!(
                policy.decide(from, &connect(1, *id), t1, &table),
                Verdict::Open
            );
        }
    }

    #[test]
    fn a_released_tunnel_stops_counting_at_once_and_closes_after_the_grace() {
        let table = live();
        let mut policy = GatePolicy::default();
        let t0 = Instant::now();
        let first = addr("10.0.0.2:5000");
        assert_eq!(
            policy.decide(first, &connect(1, SESSION), t0, &table),
            Verdict::Open
        );
        policy.release(first, t0);
        // Its reconnect from a new port gets in although the old tunnel is still open.
        for port in 5001..5001 + 1 + HANDSHAKE_ALLOWANCE as u16 {
            let from = SocketAddr::new(IpAddr::from([10, 0, 0, 2]), port);
            assert_eq!(
                policy.decide(from, &connect(2, SESSION), t0, &table),
                Verdict::Open
            );
        }
        assert!(policy.expire(t0 + RELEASED_GRACE / 2, &table).is_empty());
        assert_eq!(policy.expire(t0 + RELEASED_GRACE, &table), vec![first]);
    }

    #[test]
    fn tunnels_are_bounded_in_total() {
        let mut policy = GatePolicy::default();
        let now = Instant::now();
        let sessions: Vec<(u32, [u8; 4])> = (0..MAX_TUNNELS as u32)
            .map(|k| (k + 1, [10, 1, (k / 250) as u8, (k % 250) as u8]))
            .collect();
        let table = Table::new(&sessions);
        for (id, ip) in &sessions {
            let from = SocketAddr::new(IpAddr::from(*ip), 4000);
            assert_eq!(
                policy.decide(from, &connect(1, *id), now, &table),
                Verdict::Open
            );
        }
        let late = SocketAddr::new(IpAddr::from(sessions[0].1), 4001);
        assert_eq!(
            policy.decide(late, &connect(1, 1), now, &table),
            Verdict::Drop(DropReason::TooManyTunnels)
        );
        // Idle tunnels close and make room.
        assert_eq!(policy.expire(now + TUNNEL_IDLE, &table).len(), MAX_TUNNELS);
        assert_eq!(
            policy.decide(late, &connect(1, 1), now + TUNNEL_IDLE, &table),
            Verdict::Open
        );
    }

    #[test]
    fn answered_tunnels_stay_open_until_their_session_ends() {
        let table = live();
        let mut policy = GatePolicy::default();
        let t0 = Instant::now();
        let client = addr("10.0.0.2:5000");
        policy.decide(client, &connect(1, SESSION), t0, &table);
        policy.touch(client, t0 + TUNNEL_IDLE / 2);
        assert!(policy.expire(t0 + TUNNEL_IDLE, &table).is_empty());
        assert_eq!(policy.expire(t0 + TUNNEL_IDLE * 2, &table), vec![client]);

        policy.decide(client, &connect(2, SESSION), t0, &table);
        assert!(policy.expire(t0, &table).is_empty());
        table.end(SESSION);
        assert_eq!(policy.expire(t0, &table), vec![client], "its session ended");
    }
}
