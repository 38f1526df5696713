//! The gateway's user-space relay: one session's four front ports on the gateway, forwarded to
//! the node that runs the session.
//!
//! Why a relay at all: where the gateway cannot (or may not) rewrite packets in the kernel
//! (nftables `dnat`, see `dnat.rs`), it forwards them itself. It works at layer 4 and reads no
//! payload: RTSP is copied as a byte stream, control (ENet), video and audio as datagrams, so
//! nothing the client or the node sends is parsed here.
//!
//! - **Source-IP lock.** The client's IP is known when the session is set up (it is the address
//!   that launched it). Datagrams and connections from any other IP are dropped and counted: a
//!   host on the LAN must not inject input into the session or redirect its video to itself.
//!   The client's port is learnt from its first datagram and moves to another port of that
//!   address only once the current one went silent (a NAT rebinding): another host behind the
//!   client's NAT cannot pull a live stream to itself. Node→client datagrams that arrive
//!   before the client has sent one are dropped. (A host that
//!   spoofs the client's IP can move the stream to another port of the client's machine: it can
//!   break the session, not receive it.)
//! - **Upstream sockets.** Each UDP stream has its own ephemeral socket connected to the node's
//!   port, so the kernel accepts only the node's datagrams on it and the node sees one flow per
//!   session and stream.
//! - **Bounds.** One 64 KiB buffer per direction, allocated once; no allocation, lock or log
//!   above `trace` per packet; counters are relaxed atomics. RTSP (one request per connection
//!   in Moonlight) takes at most [`RTSP_MAX_CONNECTIONS`] connections at once, each closed after
//!   [`RTSP_CONNECTION_CAP`] whatever it is doing.
//!
//! The per-packet path runs on tokio tasks of the caller's runtime, two per UDP stream (one per
//! direction), each waiting in `recv`. On a 2-core test machine a relayed 20 Mbit/s stream
//! costs about 2.5% of a core per direction and adds about 6 µs per datagram at p50; a
//! current-thread runtime and plain blocking threads did no better (`benches/forwarding.rs`,
//! docs/performance.md, "Gateway forwarding").

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::cluster::PortSet;

/// Most RTSP connections one relay carries at once; more are closed as they arrive.
pub const RTSP_MAX_CONNECTIONS: usize = 4;
/// How long one RTSP connection may last, idle or not.
pub const RTSP_CONNECTION_CAP: Duration = Duration::from_secs(30);
/// How long connecting to the node's RTSP port may take.
pub const RTSP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest datagram a UDP socket can carry; one such buffer per direction.
const DATAGRAM_BUFFER_BYTES: usize = 64 * 1024;
/// Receive buffer asked for on the video sockets, so a frame's burst waits in the kernel while
/// the task is scheduled (the kernel caps it at `net.core.rmem_max`).
const VIDEO_RECV_BUFFER_BYTES: usize = 1024 * 1024;
const RTSP_BACKLOG: i32 = 16;
/// Pause after an unexpected socket error, so a socket that keeps failing cannot spin a task.
const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// Set in [`LearntPort`] once the client's port is known; the low 16 bits hold the port.
const PORT_LEARNT: u32 = 1 << 16;
/// How long the client's port must be silent before another port of its address takes over.
/// Moonlight pings video and audio and ENet pings control every half second or so, so a live
/// port is never this silent.
const PORT_MOVE_AFTER: Duration = Duration::from_millis(1500);

/// What one relay has forwarded and refused so far (a snapshot of relaxed counters).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RelayStats {
    /// UDP datagrams forwarded from the client to the node (control, video and audio).
    pub packets_to_node: u64,
    /// UDP datagrams forwarded from the node to the client.
    pub packets_to_client: u64,
    /// Payload bytes of `packets_to_node`.
    pub bytes_to_node: u64,
    /// Payload bytes of `packets_to_client`.
    pub bytes_to_client: u64,
    /// Datagrams and RTSP connections from an IP other than the client's, dropped.
    pub foreign_dropped: u64,
    /// RTSP connections from the client that were relayed to the node.
    pub rtsp_connections: u64,
}

#[derive(Debug, Default)]
struct Counters {
    packets_to_node: AtomicU64,
    packets_to_client: AtomicU64,
    bytes_to_node: AtomicU64,
    bytes_to_client: AtomicU64,
    foreign_dropped: AtomicU64,
    rtsp_connections: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) -> u64 {
        counter.fetch_add(n, Ordering::Relaxed)
    }

    /// Counts a foreign datagram or connection; the first one per relay is logged.
    fn foreign(&self, what: &'static str, from: SocketAddr) {
        if Self::add(&self.foreign_dropped, 1) == 0 {
            tracing::warn!(%from, what, "dropped traffic from a foreign address (logged once)");
        }
    }

    fn snapshot(&self) -> RelayStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RelayStats {
            packets_to_node: load(&self.packets_to_node),
            packets_to_client: load(&self.packets_to_client),
            bytes_to_node: load(&self.bytes_to_node),
            bytes_to_client: load(&self.bytes_to_client),
            foreign_dropped: load(&self.foreign_dropped),
            rtsp_connections: load(&self.rtsp_connections),
        }
    }
}

/// The client's UDP port on one stream and when it was last heard, shared by that stream's two
/// directions without a lock (one writer: the client→node task). The IP is fixed (the
/// client's), so the port is all there is to learn; it moves to another port of that IP only
/// after the current one was silent for [`PORT_MOVE_AFTER`] (a NAT rebinding), so another host
/// behind the client's NAT cannot pull a live stream to itself.
#[derive(Debug)]
struct LearntPort {
    /// Port (low 16 bits), [`PORT_LEARNT`], and the last time heard in ms since `epoch`
    /// (above bit 16).
    state: AtomicU64,
    epoch: Instant,
}

impl Default for LearntPort {
    fn default() -> Self {
        Self {
            state: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl LearntPort {
    /// Whether a datagram from `port` belongs to the client's stream now (and if so, notes it).
    fn accept(&self, port: u16) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX >> 17);
        let value = self.state.load(Ordering::Relaxed);
        let learnt = value & u64::from(PORT_LEARNT) != 0;
        let current = (value & 0xffff) as u16;
        let last_heard = value >> 17;
        let silent = Duration::from_millis(now.saturating_sub(last_heard));
        if learnt && current != port && silent < PORT_MOVE_AFTER {
            return false;
        }
        self.state.store(
            (now << 17) | u64::from(PORT_LEARNT) | u64::from(port),
            Ordering::Relaxed,
        );
        true
    }

    fn port(&self) -> Option<u16> {
        let value = self.state.load(Ordering::Relaxed);
        // The low 16 bits are a port by construction (`accept`).
        (value & u64::from(PORT_LEARNT) != 0).then_some((value & 0xffff) as u16)
    }
}

/// One session's relay: front sockets on the gateway, upstream sockets to the node. Dropping it
/// (or calling [`stop`](Relay::stop)) closes every socket and ends its tasks.
#[derive(Debug)]
pub struct Relay {
    front: PortSet,
    /// Local ports of the control, video and audio upstream sockets.
    upstream_ports: [u16; 3],
    counters: Arc<Counters>,
    tasks: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Binds the four front ports on `front_ip` and starts relaying them to `node_ip`'s `node`
    /// ports, for `client_ip` only. A front port of 0 takes an ephemeral port ([`Relay::front`]
    /// says which). Fails when a port cannot be bound; the error names the port. Must be called
    /// inside a tokio runtime, whose tasks then carry the traffic.
    pub async fn start(
        front_ip: IpAddr,
        front: PortSet,
        client_ip: IpAddr,
        node_ip: IpAddr,
        node: PortSet,
    ) -> io::Result<Relay> {
        let client_ip = client_ip.to_canonical();
        // Replies leave the front socket; an IPv6 socket reaches an IPv4 client at its mapped
        // address.
        let reply_ip = match (front_ip, client_ip) {
            (IpAddr::V6(_), IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
            _ => client_ip,
        };
        // Bind everything before spawning anything: a failure leaves nothing behind.
        let listener = bind_rtsp(SocketAddr::new(front_ip, front.rtsp))?;
        let streams = [
            ("control", front.control, node.control, None),
            (
                "video",
                front.video,
                node.video,
                Some(VIDEO_RECV_BUFFER_BYTES),
            ),
            ("audio", front.audio, node.audio, None),
        ];
        let mut bound = Vec::with_capacity(streams.len());
        for (what, front_port, node_port, recv_buffer) in streams {
            let front_socket = bind_udp(SocketAddr::new(front_ip, front_port), what, recv_buffer)?;
            let node_addr = SocketAddr::new(node_ip, node_port);
            let upstream = connect_upstream(node_addr, what, recv_buffer).await?;
            bound.push((what, Arc::new(front_socket), Arc::new(upstream)));
        }
        let mut front_ports = [0u16; 3];
        let mut upstream_ports = [0u16; 3];
        for ((front_port, upstream_port), (_, front_socket, upstream)) in
            front_ports.iter_mut().zip(&mut upstream_ports).zip(&bound)
        {
            *front_port = front_socket.local_addr()?.port();
            *upstream_port = upstream.local_addr()?.port();
        }
        let [control, video, audio] = front_ports;
        let front = PortSet {
            rtsp: listener.local_addr()?.port(),
            control,
            video,
            audio,
        };

        let counters = Arc::new(Counters::default());
        let mut tasks = Vec::with_capacity(1 + 2 * bound.len());
        tasks.push(tokio::spawn(accept_rtsp(
            listener,
            client_ip,
            SocketAddr::new(node_ip, node.rtsp),
            counters.clone(),
        )));
        for (what, front_socket, upstream) in bound {
            let learnt = Arc::new(LearntPort::default());
            tasks.push(tokio::spawn(client_to_node(
                what,
                front_socket.clone(),
                upstream.clone(),
                client_ip,
                learnt.clone(),
                counters.clone(),
            )));
            tasks.push(tokio::spawn(node_to_client(
                what,
                upstream,
                front_socket,
                reply_ip,
                learnt,
                counters.clone(),
            )));
        }
        let relay = Relay {
            front,
            upstream_ports,
            counters,
            tasks,
        };
        tracing::debug!(
            ?front, %client_ip, %node_ip, ?node, upstream = ?relay.upstream_ports, "relay started"
        );
        Ok(relay)
    }

    /// The front ports as bound (ephemeral ones resolved).
    pub fn front(&self) -> PortSet {
        self.front
    }

    /// What the relay has forwarded and dropped so far.
    pub fn stats(&self) -> RelayStats {
        self.counters.snapshot()
    }

    /// Stops the relay and waits until its tasks have ended: when this returns, every socket is
    /// closed and the front ports can be bound again. (Dropping the relay stops it too, but the
    /// sockets close only once the runtime has run the cancelled tasks, which on a
    /// current-thread runtime is after the dropping task next yields.)
    pub async fn stop(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            // A cancelled task's error says only that it was cancelled.
            let _ = task.await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn bind_error(error: io::Error, what: &str, addr: SocketAddr) -> io::Error {
    io::Error::new(
        error.kind(),
        format!(
            "cannot bind the relay's {what} port {} on {addr}: {error}",
            addr.port()
        ),
    )
}

fn bind_rtsp(addr: SocketAddr) -> io::Result<TcpListener> {
    let bind = || -> io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        // Lets a relay for the next session take the port while the last one's connections
        // sit in TIME_WAIT.
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(RTSP_BACKLOG)?;
        TcpListener::from_std(socket.into())
    };
    bind().map_err(|e| bind_error(e, "RTSP", addr))
}

fn udp_socket(addr: SocketAddr, recv_buffer: Option<usize>) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Some(bytes) = recv_buffer {
        // Best effort: the kernel caps it, and a smaller buffer still works.
        let _ = socket.set_recv_buffer_size(bytes);
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

fn bind_udp(addr: SocketAddr, what: &str, recv_buffer: Option<usize>) -> io::Result<UdpSocket> {
    udp_socket(addr, recv_buffer).map_err(|e| bind_error(e, what, addr))
}

async fn connect_upstream(
    node: SocketAddr,
    what: &str,
    recv_buffer: Option<usize>,
) -> io::Result<UdpSocket> {
    let any = match node {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket = bind_udp(SocketAddr::new(any, 0), what, recv_buffer)?;
    socket.connect(node).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot connect the relay's {what} socket to the node at {node}: {e}"),
        )
    })?;
    Ok(socket)
}

/// Whether a receive error is one to go on after at once: ICMP errors reported on a socket
/// (the node's port closed for a moment) and interruptions.
fn transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

async fn pause_after(error: io::Error, what: &'static str, direction: &'static str) {
    if !transient(&error) {
        tracing::debug!(%error, what, direction, "relay socket error");
        tokio::time::sleep(ERROR_PAUSE).await;
    }
}

/// Client → node on one UDP stream: learns the client's port, drops foreign sources.
async fn client_to_node(
    what: &'static str,
    front: Arc<UdpSocket>,
    upstream: Arc<UdpSocket>,
    client_ip: IpAddr,
    learnt: Arc<LearntPort>,
    counters: Arc<Counters>,
) {
    let mut buffer = vec![0u8; DATAGRAM_BUFFER_BYTES];
    loop {
        let (len, from) = match front.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) => {
                pause_after(error, what, "to node").await;
                continue;
            }
        };
        if from.ip().to_canonical() != client_ip || !learnt.accept(from.port()) {
            counters.foreign(what, from);
            continue;
        }
        let Some(datagram) = buffer.get(..len) else {
            continue;
        };
        match upstream.send(datagram).await {
            Ok(_) => {
                Counters::add(&counters.packets_to_node, 1);
                Counters::add(&counters.bytes_to_node, len as u64);
            }
            Err(error) => tracing::trace!(%error, what, "datagram to the node not sent"),
        }
    }
}

/// Node → client on one UDP stream: to the client's learnt address, or dropped before it.
async fn node_to_client(
    what: &'static str,
    upstream: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    reply_ip: IpAddr,
    learnt: Arc<LearntPort>,
    counters: Arc<Counters>,
) {
    let mut buffer = vec![0u8; DATAGRAM_BUFFER_BYTES];
    loop {
        // Connected: the kernel delivers only the node's datagrams here.
        let len = match upstream.recv(&mut buffer).await {
            Ok(len) => len,
            Err(error) => {
                pause_after(error, what, "to client").await;
                continue;
            }
        };
        let Some(port) = learnt.port() else {
            tracing::trace!(what, "datagram from the node before the client's, dropped");
            continue;
        };
        let Some(datagram) = buffer.get(..len) else {
            continue;
        };
        match front
            .send_to(datagram, SocketAddr::new(reply_ip, port))
            .await
        {
            Ok(_) => {
                Counters::add(&counters.packets_to_client, 1);
                Counters::add(&counters.bytes_to_client, len as u64);
            }
            Err(error) => tracing::trace!(%error, what, "datagram to the client not sent"),
        }
    }
}

/// Accepts RTSP connections: the client's, up to the bound, each relayed on its own task;
/// everyone else's closed at once. The connections' tasks end with this one.
async fn accept_rtsp(
    listener: TcpListener,
    client_ip: IpAddr,
    node: SocketAddr,
    counters: Arc<Counters>,
) {
    let permits = Arc::new(Semaphore::new(RTSP_MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, or a connection reset before it was accepted.
                tracing::debug!(%error, "RTSP accept failed");
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        if from.ip().to_canonical() != client_ip {
            counters.foreign("rtsp", from);
            continue;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%from, "RTSP connection over the bound, closed");
            continue;
        };
        Counters::add(&counters.rtsp_connections, 1);
        connections.spawn(relay_rtsp(stream, node, permit));
    }
}

/// Copies one RTSP connection both ways. An end of stream on one side is passed on as a
/// half-close to the other (the client's request may end that way; the node ends its reply by
/// closing); the connection ends when both directions have, on an error, or at the cap.
async fn relay_rtsp(mut client: TcpStream, node: SocketAddr, _permit: OwnedSemaphorePermit) {
    let relayed = tokio::time::timeout(RTSP_CONNECTION_CAP, async {
        let mut upstream = tokio::time::timeout(RTSP_CONNECT_TIMEOUT, TcpStream::connect(node))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting to the node"))??;
        // Requests and replies are small; send them as they come.
        let _ = upstream.set_nodelay(true);
        let _ = client.set_nodelay(true);
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await
    })
    .await;
    match relayed {
        Ok(Ok((to_node, to_client))) => {
            tracing::debug!(to_node, to_client, "RTSP connection relayed");
        }
        Ok(Err(error)) => tracing::debug!(%error, %node, "RTSP connection ended"),
        Err(_) => tracing::debug!(%node, "RTSP connection reached its time cap, closed"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpSocket;

    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    const QUIET: Duration = Duration::from_millis(200);
    const WAIT: Duration = Duration::from_secs(2);
    const ANY_PORTS: PortSet = PortSet {
        rtsp: 0,
        control: 0,
        video: 0,
        audio: 0,
    };

    /// The node's side: a socket on each of its four ports.
    struct Node {
        rtsp: TcpListener,
        control: UdpSocket,
        video: UdpSocket,
        audio: UdpSocket,
    }

    impl Node {
        async fn new() -> Node {
            let udp = || UdpSocket::bind((LOCAL, 0));
            Node {
                rtsp: TcpListener::bind((LOCAL, 0)).await.unwrap(),
                control: udp().await.unwrap(),
                video: udp().await.unwrap(),
                audio: udp().await.unwrap(),
            }
        }

        fn ports(&self) -> PortSet {
            let udp = |s: &UdpSocket| s.local_addr().unwrap().port();
            PortSet {
                rtsp: self.rtsp.local_addr().unwrap().port(),
                control: udp(&self.control),
                video: udp(&self.video),
                audio: udp(&self.audio),
            }
        }

        /// (node socket, that stream's front port) for each UDP stream.
        fn streams(&self, front: PortSet) -> [(&UdpSocket, u16); 3] {
            [
                (&self.control, front.control),
                (&self.video, front.video),
                (&self.audio, front.audio),
            ]
        }
    }

    async fn relay_for(client_ip: IpAddr, node: &Node) -> Relay {
        Relay::start(LOCAL, ANY_PORTS, client_ip, LOCAL, node.ports())
            .await
            .unwrap()
    }

    async fn client_socket(ip: IpAddr) -> UdpSocket {
        UdpSocket::bind((ip, 0)).await.unwrap()
    }

    /// The next datagram on `socket` within `within`, if any.
    async fn recv_within(socket: &UdpSocket, within: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buffer = vec![0u8; 2048];
        let (len, from) = tokio::time::timeout(within, socket.recv_from(&mut buffer))
            .await
            .ok()?
            .unwrap();
        buffer.truncate(len);
        Some((buffer, from))
    }

    #[track_caller]
    fn assert_payload(received: Option<(Vec<u8>, SocketAddr)>, expected: &[u8]) -> SocketAddr {
        let (payload, from) = received.expect("a datagram");
        assert_eq!(payload, expected);
        from
    }

    #[tokio::test]
    async fn udp_round_trip_on_all_three_streams() {
        let node = Node::new().await;
        let relay = relay_for(LOCAL, &node).await;
        let client = client_socket(LOCAL).await;
        for (i, (node_socket, front_port)) in node.streams(relay.front()).into_iter().enumerate() {
            let request = format!("request {i}");
            client
                .send_to(request.as_bytes(), (LOCAL, front_port))
                .await
                .unwrap();
            let upstream = assert_payload(recv_within(node_socket, WAIT).await, request.as_bytes());
            assert_ne!(
                upstream,
                client.local_addr().unwrap(),
                "relayed, not direct"
            );
            let reply = format!("reply {i}");
            node_socket
                .send_to(reply.as_bytes(), upstream)
                .await
                .unwrap();
            let from = assert_payload(recv_within(&client, WAIT).await, reply.as_bytes());
            assert_eq!(
                from,
                SocketAddr::new(LOCAL, front_port),
                "from the front port"
            );
        }
        let stats = relay.stats();
        assert_eq!((stats.packets_to_node, stats.packets_to_client), (3, 3));
        assert_eq!((stats.bytes_to_node, stats.bytes_to_client), (27, 21));
        assert_eq!(stats.foreign_dropped, 0);
    }

    #[tokio::test]
    async fn datagrams_from_a_foreign_ip_are_dropped_and_do_not_redirect() {
        let node = Node::new().await;
        let relay = relay_for(OTHER, &node).await;
        let front = relay.front().video;
        let attacker = client_socket(LOCAL).await;
        let client = client_socket(OTHER).await;

        attacker.send_to(b"inject", (LOCAL, front)).await.unwrap();
        assert!(
            recv_within(&node.video, QUIET).await.is_none(),
            "foreign datagram relayed"
        );
        assert_eq!(relay.stats().foreign_dropped, 1);

        client.send_to(b"hello", (LOCAL, front)).await.unwrap();
        let upstream = assert_payload(recv_within(&node.video, WAIT).await, b"hello");
        // The attacker tries again once the client is known: still dropped, and the node's
        // reply still goes to the client.
        attacker.send_to(b"redirect", (LOCAL, front)).await.unwrap();
        assert!(
            recv_within(&node.video, QUIET).await.is_none(),
            "foreign datagram relayed"
        );
        node.video.send_to(b"frame", upstream).await.unwrap();
        assert_payload(recv_within(&client, WAIT).await, b"frame");
        assert!(
            recv_within(&attacker, QUIET).await.is_none(),
            "video redirected"
        );
        let stats = relay.stats();
        assert_eq!(stats.foreign_dropped, 2);
        assert_eq!((stats.packets_to_node, stats.packets_to_client), (1, 1));
    }

    #[tokio::test]
    async fn node_datagrams_before_the_client_has_sent_are_dropped() {
        let node = Node::new().await;
        let relay = relay_for(LOCAL, &node).await;
        let front = relay.front().audio;
        let upstream = SocketAddr::new(LOCAL, relay.upstream_ports[2]);
        let client = client_socket(LOCAL).await;

        node.audio.send_to(b"early", upstream).await.unwrap();
        assert!(recv_within(&client, QUIET).await.is_none());
        client.send_to(b"ping", (LOCAL, front)).await.unwrap();
        let from = assert_payload(recv_within(&node.audio, WAIT).await, b"ping");
        assert_eq!(from.port(), upstream.port());
        node.audio.send_to(b"late", upstream).await.unwrap();
        // The early datagram was dropped, not held until the client was known.
        assert_payload(recv_within(&client, WAIT).await, b"late");
        assert_eq!(relay.stats().packets_to_client, 1);
    }

    #[tokio::test]
    async fn a_rebound_client_port_takes_over() {
        let node = Node::new().await;
        let relay = relay_for(LOCAL, &node).await;
        let front = relay.front().control;
        let before = client_socket(LOCAL).await;
        let after = client_socket(LOCAL).await;

        before.send_to(b"one", (LOCAL, front)).await.unwrap();
        let upstream = assert_payload(recv_within(&node.control, WAIT).await, b"one");
        node.control.send_to(b"to one", upstream).await.unwrap();
        assert_payload(recv_within(&before, WAIT).await, b"to one");

        // While the first port is live, another port of the same address (another host behind
        // the client's NAT) is refused: the stream stays.
        after.send_to(b"stranger", (LOCAL, front)).await.unwrap();
        assert!(
            recv_within(&node.control, QUIET).await.is_none(),
            "a live port was taken over"
        );
        node.control.send_to(b"still one", upstream).await.unwrap();
        assert_payload(recv_within(&before, WAIT).await, b"still one");
        assert_eq!(relay.stats().foreign_dropped, 1);

        // Once it went silent (a NAT rebinding), the new port takes over.
        tokio::time::sleep(PORT_MOVE_AFTER).await;
        after.send_to(b"two", (LOCAL, front)).await.unwrap();
        let same_upstream = assert_payload(recv_within(&node.control, WAIT).await, b"two");
        assert_eq!(same_upstream, upstream, "one flow to the node");
        node.control.send_to(b"to two", upstream).await.unwrap();
        assert_payload(recv_within(&after, WAIT).await, b"to two");
        assert!(
            recv_within(&before, QUIET).await.is_none(),
            "old port still served"
        );
    }

    async fn connect_from(ip: IpAddr, port: u16) -> TcpStream {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
        socket.connect(SocketAddr::new(LOCAL, port)).await.unwrap()
    }

    /// Reads until the peer closes, within `WAIT`.
    async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
        let mut data = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut data))
            .await
            .expect("the connection ends in time")
            .unwrap();
        data
    }

    #[tokio::test]
    async fn rtsp_request_and_response_are_relayed() {
        let node = Node::new().await;
        let relay = relay_for(LOCAL, &node).await;
        let request = b"OPTIONS rtsp://10.0.0.1:48010 RTSP/1.0\r\nCSeq: 1\r\n\r\n";
        let response = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n";
        let server = async {
            let (mut stream, _) = node.rtsp.accept().await.unwrap();
            let mut received = vec![0u8; request.len()];
            stream.read_exact(&mut received).await.unwrap();
            stream.write_all(response).await.unwrap();
            received
        };
        let client = async {
            let mut stream = connect_from(LOCAL, relay.front().rtsp).await;
            stream.write_all(request).await.unwrap();
            read_to_end(&mut stream).await
        };
        let (received, replied) =
            tokio::time::timeout(WAIT, async { tokio::join!(server, client) })
                .await
                .unwrap();
        assert_eq!(received, request);
        assert_eq!(replied, response);
        assert_eq!(relay.stats().rtsp_connections, 1);
    }

    #[tokio::test]
    async fn a_foreign_rtsp_connection_is_closed() {
        let node = Node::new().await;
        let relay = relay_for(OTHER, &node).await;
        let mut foreign = connect_from(LOCAL, relay.front().rtsp).await;
        let _ = foreign.write_all(b"OPTIONS * RTSP/1.0\r\n\r\n").await;
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(WAIT, foreign.read(&mut byte))
            .await
            .expect("closed at once");
        assert!(matches!(read, Ok(0) | Err(_)), "foreign connection served");
        let accepted = tokio::time::timeout(QUIET, node.rtsp.accept()).await;
        assert!(accepted.is_err(), "foreign connection relayed to the node");
        let stats = relay.stats();
        assert_eq!((stats.foreign_dropped, stats.rtsp_connections), (1, 0));

        // The client's own address is relayed.
        let _client = connect_from(OTHER, relay.front().rtsp).await;
        tokio::time::timeout(WAIT, node.rtsp.accept())
            .await
            .expect("the client's connection reaches the node")
            .unwrap();
    }

    #[tokio::test]
    async fn at_most_four_rtsp_connections_at_once() {
        let node = Node::new().await;
        let relay = relay_for(LOCAL, &node).await;
        let port = relay.front().rtsp;
        let mut clients = Vec::new();
        let mut upstreams = Vec::new();
        for _ in 0..RTSP_MAX_CONNECTIONS {
            clients.push(connect_from(LOCAL, port).await);
            let (upstream, _) = tokio::time::timeout(WAIT, node.rtsp.accept())
                .await
                .unwrap()
                .unwrap();
            upstreams.push(upstream);
        }
        let mut over = connect_from(LOCAL, port).await;
        assert!(
            read_to_end(&mut over).await.is_empty(),
            "over the bound, closed"
        );
        assert!(
            tokio::time::timeout(QUIET, node.rtsp.accept())
                .await
                .is_err(),
            "a fifth connection reached the node"
        );
        assert_eq!(relay.stats().rtsp_connections, RTSP_MAX_CONNECTIONS as u64);

        // One ends (both sides close): its place is free again.
        drop(clients.pop());
        drop(upstreams.pop());
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut next = connect_from(LOCAL, port).await;
            if let Ok(accepted) = tokio::time::timeout(QUIET, node.rtsp.accept()).await {
                accepted.unwrap();
                break;
            }
            // Closed: the ended connection's task had not finished yet.
            assert!(read_to_end(&mut next).await.is_empty());
            assert!(
                tokio::time::Instant::now() < deadline,
                "the place was not freed"
            );
        }
    }

    #[tokio::test]
    async fn dropping_the_relay_frees_its_front_ports() {
        let node = Node::new().await;
        let relay = relay_for(LOCAL, &node).await;
        let front = relay.front();
        // While it runs, the ports are taken: the check below can fail.
        let taken = Relay::start(LOCAL, front, LOCAL, LOCAL, node.ports()).await;
        assert!(taken.is_err());
        drop(relay);
        // The cancelled tasks run (and drop their sockets) once this task yields.
        tokio::task::yield_now().await;
        let again = Relay::start(LOCAL, front, LOCAL, LOCAL, node.ports())
            .await
            .expect("the front ports are free after drop");
        assert_eq!(again.front(), front);
        again.stop().await;
        // After stop, at once.
        let third = Relay::start(LOCAL, front, LOCAL, LOCAL, node.ports()).await;
        assert!(third.is_ok(), "the front ports are free after stop");
    }

    #[tokio::test]
    async fn a_taken_port_is_named_in_the_error() {
        let node = Node::new().await;
        let taken = client_socket(LOCAL).await;
        let port = taken.local_addr().unwrap().port();
        let front = PortSet {
            video: port,
            ..ANY_PORTS
        };
        let error = Relay::start(LOCAL, front, LOCAL, LOCAL, node.ports())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
        let message = error.to_string();
        assert!(
            message.contains("video") && message.contains(&port.to_string()),
            "{message}"
        );
    }
}
