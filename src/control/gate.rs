//! The control port's gate: vets every datagram before the ENet host sees it, so that an
//! unauthenticated LAN peer cannot fill the host's peer slots (PROTOCOL.md §3.1).
//!
//! The ENet host listens on loopback only. The gate owns the public control port and keeps
//! one loopback *tunnel* socket per admitted client address: what the client sends goes to the
//! ENet host through its tunnel, what the ENet host answers on the tunnel goes back to the
//! client. An address gets a tunnel only with a CONNECT whose connect data names a live
//! session (or 0, Moonlight's value before session IDs, with a session launched from that IP);
//! any other datagram from an unknown address is dropped without a reply. Tunnels are bounded
//! in total and per IP, a tunnel forwards a new connection attempt at most once a second, and
//! an idle tunnel closes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hati_protocol::enet::{ConnectRequest, parse_connect};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::session::SessionManager;

/// Tunnels in total.
pub const MAX_TUNNELS: usize = 64;
/// Tunnels from one IP address (several clients behind one NAT, quick reconnects).
pub const MAX_TUNNELS_PER_IP: usize = 8;
/// A tunnel forwards a CONNECT with a new connect ID at most this often.
pub const NEW_CONNECT_INTERVAL: Duration = Duration::from_secs(1);
/// A tunnel nobody sent through for this long closes (clients ping every 100 ms).
pub const TUNNEL_IDLE: Duration = Duration::from_secs(15);
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
    /// This IP holds its share of tunnels.
    TooManyFromIp,
    /// A new connection attempt too soon after the last one from this address.
    ConnectTooSoon,
}

#[derive(Debug)]
struct TunnelState {
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
    /// Decides about a datagram from `from`; `session_exists(data, ip)` says whether a CONNECT
    /// with that connect data from that IP belongs to a live session.
    pub fn decide(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        now: Instant,
        session_exists: impl Fn(u32, IpAddr) -> bool,
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
            }
            tunnel.last_seen = now;
            return Verdict::Forward;
        }
        let Some(connect) = connect else {
            return Verdict::Drop(DropReason::NotConnect);
        };
        if !session_exists(connect.data, crate::net::canonical_ip(from.ip())) {
            return Verdict::Drop(DropReason::NoSession);
        }
        if self.tunnels.len() >= MAX_TUNNELS {
            return Verdict::Drop(DropReason::TooManyTunnels);
        }
        if self.tunnels.keys().filter(|a| a.ip() == from.ip()).count() >= MAX_TUNNELS_PER_IP {
            return Verdict::Drop(DropReason::TooManyFromIp);
        }
        self.tunnels.insert(
            from,
            TunnelState {
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

    /// Closes tunnels idle since before `now - TUNNEL_IDLE`; returns their addresses.
    pub fn expire(&mut self, now: Instant) -> Vec<SocketAddr> {
        let idle: Vec<SocketAddr> = self
            .tunnels
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(t.last_seen) >= TUNNEL_IDLE)
            .map(|(a, _)| *a)
            .collect();
        for address in &idle {
            self.tunnels.remove(address);
        }
        idle
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
/// `enet_host`.
pub async fn run(
    public: UdpSocket,
    enet_host: SocketAddr,
    sessions: Arc<SessionManager>,
    addresses: PeerAddresses,
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
                let verdict = policy.decide(from, datagram, Instant::now(), |data, ip| match data {
                    0 => sessions.latest_by_address(ip).is_some(),
                    id => sessions.by_id(id).is_some(),
                });
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
            _ = sweep.tick() => {
                for client in policy.expire(Instant::now()) {
                    if let Some(tunnel) = tunnels.remove(&client) {
                        tunnel.relay.abort();
                        addresses.remove(tunnel.internal);
                        tracing::debug!(%client, "idle control tunnel closed");
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

    fn live(data: u32, ip: IpAddr) -> bool {
        data == SESSION || (data == 0 && ip == IpAddr::from([10, 0, 0, 2]))
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
            policy.decide(stranger, b"hello", now, live),
            Verdict::Drop(DropReason::NotConnect)
        );
        assert_eq!(
            policy.decide(stranger, &connect(1, 99), now, live),
            Verdict::Drop(DropReason::NoSession)
        );
        assert_eq!(
            policy.decide(stranger, &connect(1, 0), now, live),
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
            policy.decide(client, &connect(7, SESSION), now, live),
            Verdict::Open
        );
        // Retransmissions of the same CONNECT and everything else go through.
        assert_eq!(
            policy.decide(client, &connect(7, SESSION), now, live),
            Verdict::Forward
        );
        assert_eq!(
            policy.decide(client, b"any enet traffic", now, live),
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
            match policy.decide(flooder, &connect(k, SESSION), at, live) {
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
            policy.decide(addr("10.0.0.2:5000"), &connect(1, SESSION), t0, live),
            Verdict::Open
        );
    }

    #[test]
    fn tunnels_are_bounded_per_ip_and_in_total() {
        let mut policy = GatePolicy::default();
        let now = Instant::now();
        for port in 0..MAX_TUNNELS_PER_IP as u16 {
            let from = SocketAddr::new(IpAddr::from([10, 0, 0, 66]), 4000 + port);
            assert_eq!(
                policy.decide(from, &connect(1, SESSION), now, live),
                Verdict::Open
            );
        }
        let one_more = addr("10.0.0.66:5999");
        assert_eq!(
            policy.decide(one_more, &connect(1, SESSION), now, live),
            Verdict::Drop(DropReason::TooManyFromIp)
        );
        for k in 0..(MAX_TUNNELS - MAX_TUNNELS_PER_IP) as u8 {
            let from = SocketAddr::new(IpAddr::from([10, 0, 1, k]), 4000);
            assert_eq!(
                policy.decide(from, &connect(1, SESSION), now, live),
                Verdict::Open
            );
        }
        let late = addr("10.0.2.1:4000");
        assert_eq!(
            policy.decide(late, &connect(1, SESSION), now, live),
            Verdict::Drop(DropReason::TooManyTunnels)
        );
        // Idle tunnels close and make room.
        assert_eq!(policy.expire(now + TUNNEL_IDLE).len(), MAX_TUNNELS);
        assert_eq!(
            policy.decide(late, &connect(1, SESSION), now + TUNNEL_IDLE, live),
            Verdict::Open
        );
    }

    #[test]
    fn answered_tunnels_stay_open() {
        let mut policy = GatePolicy::default();
        let t0 = Instant::now();
        let client = addr("10.0.0.2:5000");
        policy.decide(client, &connect(1, SESSION), t0, live);
        policy.touch(client, t0 + TUNNEL_IDLE / 2);
        assert!(policy.expire(t0 + TUNNEL_IDLE).is_empty());
        assert_eq!(policy.expire(t0 + TUNNEL_IDLE * 2), vec![client]);
    }
}
