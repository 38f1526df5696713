//! A real gateway driven by stand-in nodes, for the scale run (`tests/gateway_scale.rs` at CI
//! size, `benches/gateway_scale.rs` at 1 000 nodes and 10 000 sessions).
//!
//! The gateway is the real one ([`Gateway`] with `External` forwarding, so no port is really
//! forwarded) behind its real node-link server. Each stand-in node has its own ECDSA P-256
//! certificate and speaks the real protocol over TLS 1.3: hello, heartbeats every second, a
//! reply to every launch and stop, and, for sessions the run picks, an `ended` report of its
//! own. It runs no app and no stream.
//!
//! The stand-ins check what the gateway asks of them: no node is sent more sessions than its
//! capacity, no front port is given to two live sessions, no session ID is used twice. The run
//! checks the gateway's own view (placement spread, ports and counts back to zero after every
//! session ended) and measures each `Gateway::launch` call.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hati::cluster::PortSet;
use hati::cluster::link::{JoinToken, gateway_tls, node_tls_with_cert, server_name};
use hati::cluster::protocol::{
    GatewayMessage, Hello, NodeMessage, PROTOCOL_VERSION, SessionChange, read_message,
    write_message,
};
use hati::config::{Forwarding, GatewayConfig};
use hati::events::{EndReason, EventBus};
use hati::gateway::{ClientLaunch, Gateway, GatewayError, NodeView, PlacedState};
use hati::session::{LaunchParams, MoonlightKey};
use hati::state::StateDir;
use hati::state::identity::HostIdentity;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsConnector;

/// Attempts a stand-in makes to join.
const JOIN_ATTEMPTS: u32 = 200;
/// The idle phase: longer than the gateway lets a silent link live.
const IDLE: Duration = Duration::from_secs(hati::cluster::NODE_TIMEOUT.as_secs() + 1);
/// How long ends reported by nodes may take to reach the gateway's table.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The run's sizes.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stand-in nodes.
    pub nodes: usize,
    /// Stand-ins dialling at once: the gateway closes connections beyond its 32 in the
    /// handshake ([`hati::gateway::node_link::MAX_HANDSHAKES`]) and they dial again.
    pub dials: usize,
    /// A stand-in's wait before it dials again (a real node's is a second).
    pub join_retry: Duration,
    /// Sessions of the fill phase; the nodes' capacities add up to exactly this.
    pub sessions: usize,
    /// `Gateway::launch` (and `stop`) calls in flight at once.
    pub concurrency: usize,
    /// How long a stand-in takes to start a session before it replies.
    pub launch_delay: Duration,
    /// Sessions launched and ended in the rolling churn phase.
    pub churn: usize,
}

/// The capacities of `nodes` nodes, from 1 to about twice the mean, adding up to `sessions`.
pub fn capacities(nodes: usize, sessions: usize) -> Vec<u32> {
    assert!(nodes > 0 && sessions >= nodes, "every node needs a slot");
    let mean = u32::try_from(sessions / nodes).expect("a small mean");
    let mut capacities: Vec<u32> = (0..nodes)
        .map(|i| {
            // Pairs mean - d, mean + d: the pair adds up to twice the mean.
            let d = u32::try_from(i / 2).expect("few nodes") % mean;
            if i % 2 == 0 { mean - d } else { mean + d }
        })
        .collect();
    if nodes % 2 == 1 {
        capacities[nodes - 1] = mean;
    }
    for capacity in capacities.iter_mut().take(sessions - nodes * mean as usize) {
        *capacity += 1;
    }
    capacities
}

/// What the stand-ins share: what runs on all of them, and what went wrong as they saw it.
#[derive(Default)]
struct Shared {
    /// The join token's secret.
    secret: String,
    /// Live session → the stand-in running it.
    sessions: Mutex<HashMap<u32, usize>>,
    /// Front port → the live session holding it.
    ports: Mutex<HashMap<u16, u32>>,
    /// Client ID → (session, stand-in) of its live session.
    clients: Mutex<HashMap<String, (u32, usize)>>,
    violations: Mutex<Vec<String>>,
    launches: AtomicU64,
    heartbeats: AtomicU64,
    join_retries: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn violation(&self, what: String) {
        let mut violations = lock(&self.violations);
        if violations.len() < 20 {
            violations.push(what);
        }
    }
}

/// One stand-in node.
struct StandIn {
    index: usize,
    capacity: u32,
    /// Its live sessions, with their front ports and client IDs.
    held: Mutex<HashMap<u32, (PortSet, String)>>,
    /// The most it ever held at once.
    peak: AtomicU32,
    outgoing: Mutex<Option<mpsc::Sender<NodeMessage>>>,
    joined: AtomicBool,
}

impl StandIn {
    /// A launch order: take the session, check the gateway kept within bounds.
    fn take(&self, shared: &Shared, session: u32, front: PortSet, client_id: &str) {
        let mut held = lock(&self.held);
        if held
            .insert(session, (front, client_id.to_owned()))
            .is_some()
        {
            shared.violation(format!(
                "node {} was sent session {session} twice",
                self.index
            ));
        }
        let count = u32::try_from(held.len()).unwrap_or(u32::MAX);
        self.peak.fetch_max(count, Ordering::Relaxed);
        if count > self.capacity {
            shared.violation(format!(
                "node {} holds {count} sessions, more than its capacity {}",
                self.index, self.capacity
            ));
        }
        drop(held);
        if let Some(other) = lock(&shared.sessions).insert(session, self.index) {
            shared.violation(format!(
                "session {session} was sent to node {} while it runs on node {other}",
                self.index
            ));
        }
        let mut ports = lock(&shared.ports);
        for port in [front.rtsp, front.control, front.video, front.audio] {
            if let Some(other) = ports.insert(port, session) {
                shared.violation(format!(
                    "front port {port} of session {session} is also session {other}'s"
                ));
            }
        }
        drop(ports);
        if lock(&shared.clients)
            .insert(client_id.to_owned(), (session, self.index))
            .is_some()
        {
            shared.violation(format!("client {client_id} got a second session"));
        }
    }

    /// The session ended here: its ports and client are free (before the gateway hears of it).
    fn release(&self, shared: &Shared, session: u32) -> bool {
        let Some((front, client_id)) = lock(&self.held).remove(&session) else {
            return false;
        };
        lock(&shared.sessions).remove(&session);
        let mut ports = lock(&shared.ports);
        for port in [front.rtsp, front.control, front.video, front.audio] {
            ports.remove(&port);
        }
        drop(ports);
        lock(&shared.clients).remove(&client_id);
        true
    }

    fn held(&self) -> usize {
        lock(&self.held).len()
    }

    fn sender(&self) -> Option<mpsc::Sender<NodeMessage>> {
        lock(&self.outgoing).clone()
    }
}

/// The churn's shared state.
struct Churn {
    /// Sessions kept live.
    window: usize,
    /// Live sessions, oldest first: client ID and number.
    live: Mutex<VecDeque<(String, usize)>>,
    next: AtomicUsize,
    /// Each launch's, by its number.
    latencies: Mutex<Vec<Duration>>,
    /// VmRSS, KiB, at every tenth of the churn.
    rss: Mutex<Vec<(usize, u64)>>,
}

/// A running gateway and its stand-in nodes.
pub struct Sim {
    pub gateway: Arc<Gateway>,
    stand_ins: Vec<Arc<StandIn>>,
    shared: Arc<Shared>,
    options: Options,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    _state: tempfile::TempDir,
}

/// The run's figures (latency lists are sorted).
#[derive(Debug, Default)]
pub struct Figures {
    /// The run's sizes.
    pub nodes: usize,
    pub sessions: usize,
    pub concurrency: usize,
    pub dials: usize,
    /// The open-file limit in force.
    pub fd_limit: u64,
    /// Making every stand-in's certificate.
    pub certificates: Duration,
    /// From the first dial to every node admitted, and the dials the gateway closed.
    pub join: Duration,
    pub join_retries: u64,
    /// The fill: its wall time, each `launch`, and the launch with every slot taken.
    pub fill: Duration,
    pub launch: Vec<Duration>,
    pub no_free_node: Duration,
    /// Ending the fill's sessions: wall time, each `stop`, and how long the gateway took to
    /// apply the nodes' last reports once every stop returned.
    pub end: Duration,
    pub stop: Vec<Duration>,
    pub drain: Duration,
    /// The churn: wall time, each `launch`, and how many.
    pub churn: Duration,
    pub churn_launch: Vec<Duration>,
    pub churn_sessions: usize,
    /// VmRSS, KiB, after each phase.
    pub rss_start_kib: u64,
    pub rss_joined_kib: u64,
    pub rss_full_kib: u64,
    pub rss_ended_kib: u64,
    pub rss_churned_kib: u64,
    /// (launches so far, VmRSS KiB) through the churn.
    pub rss_churn_kib: Vec<(usize, u64)>,
    /// The process's CPU time while joining, filling, and idle for [`IDLE`] with every link
    /// up.
    pub cpu_join: Duration,
    pub cpu_fill: Duration,
    pub cpu_idle: Duration,
    /// Heartbeats the stand-ins sent.
    pub heartbeats: u64,
}

/// The `p`-th quantile (0.0–1.0) of sorted `values`.
pub fn quantile(values: &[Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

impl Figures {
    /// `launch`'s p99 in the fill phase.
    pub fn launch_p99(&self) -> Duration {
        quantile(&self.launch, 0.99)
    }

    /// The figures as a Markdown table.
    pub fn table(&self) -> String {
        let latency = |values: &[Duration]| {
            format!(
                "{} / {} / {} / {}",
                ms(quantile(values, 0.5)),
                ms(quantile(values, 0.9)),
                ms(quantile(values, 0.99)),
                ms(values.last().copied().unwrap_or_default())
            )
        };
        let rate = |count: usize, took: Duration| count as f64 / took.as_secs_f64().max(1e-9);
        let mib = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
        let mut rows = vec![
            (
                "stand-in nodes / sessions / in flight".to_owned(),
                format!("{} / {} / {}", self.nodes, self.sessions, self.concurrency),
            ),
            ("open-file limit".into(), self.fd_limit.to_string()),
            (
                "stand-in certificates (ECDSA P-256), s".into(),
                format!("{:.2}", self.certificates.as_secs_f64()),
            ),
            (
                "all nodes joined, s (joins/s; dialling at once; dial retries)".into(),
                format!(
                    "{:.2} ({:.0}/s; {}; {})",
                    self.join.as_secs_f64(),
                    rate(self.nodes, self.join),
                    self.dials,
                    self.join_retries
                ),
            ),
            (
                "CPU while joining, s".into(),
                format!("{:.2}", self.cpu_join.as_secs_f64()),
            ),
            (
                format!(
                    "CPU idle with every node linked, % of one core ({} s)",
                    IDLE.as_secs()
                ),
                format!(
                    "{:.1}",
                    self.cpu_idle.as_secs_f64() / IDLE.as_secs_f64() * 100.0
                ),
            ),
            (
                "fill: launches, s (launches/s)".into(),
                format!(
                    "{:.2} ({:.0}/s)",
                    self.fill.as_secs_f64(),
                    rate(self.sessions, self.fill)
                ),
            ),
            (
                "fill: CPU per launch, µs".into(),
                format!(
                    "{:.0}",
                    self.cpu_fill.as_secs_f64() * 1e6 / self.sessions.max(1) as f64
                ),
            ),
            (
                "`Gateway::launch` p50 / p90 / p99 / max, ms".into(),
                latency(&self.launch),
            ),
            (
                "launch with every slot taken (NoFreeNode), ms".into(),
                ms(self.no_free_node),
            ),
            (
                "end: half `stop`, half node-reported, s".into(),
                format!(
                    "{:.2} (last node report applied {} ms after the stops)",
                    self.end.as_secs_f64(),
                    ms(self.drain)
                ),
            ),
            (
                "`Gateway::stop` p50 / p90 / p99 / max, ms".into(),
                latency(&self.stop),
            ),
            (
                "churn: launches, s (launches/s)".into(),
                format!(
                    "{} in {:.2} ({:.0}/s)",
                    self.churn_sessions,
                    self.churn.as_secs_f64(),
                    rate(self.churn_sessions, self.churn)
                ),
            ),
            (
                "churn `Gateway::launch` p50 / p90 / p99 / max, ms".into(),
                latency(&self.churn_launch),
            ),
            (
                "VmRSS start / joined / full / ended / after churn, MiB".into(),
                format!(
                    "{} / {} / {} / {} / {}",
                    mib(self.rss_start_kib),
                    mib(self.rss_joined_kib),
                    mib(self.rss_full_kib),
                    mib(self.rss_ended_kib),
                    mib(self.rss_churned_kib)
                ),
            ),
            (
                "VmRSS through the churn, MiB, every tenth".into(),
                self.rss_churn_kib
                    .iter()
                    .map(|(_, kib)| mib(*kib))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (
                "heartbeats sent by stand-ins".into(),
                self.heartbeats.to_string(),
            ),
        ];
        rows.insert(0, ("figure".into(), "value".into()));
        let mut text = String::new();
        for (i, (name, value)) in rows.iter().enumerate() {
            text.push_str(&format!("| {name} | {value} |\n"));
            if i == 0 {
                text.push_str("|---|---|\n");
            }
        }
        text
    }
}

/// The process's resident memory, KiB.
pub fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The process's CPU time (user and system) so far.
pub fn cpu_time() -> Duration {
    // /proc/self/stat fields 14 and 15 (utime, stime) in clock ticks; the command name (field
    // 2) may hold spaces, so count from its closing parenthesis.
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0);
    // SAFETY: sysconf reads a constant of the system and touches no memory of ours.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second)
        .ok()
        .filter(|&t| t > 0)
        .unwrap_or(100);
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

/// Raises the soft open-file limit to the hard one (each node link is two sockets here);
/// returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the call to fill in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit read by the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    limit.rlim_cur
}

/// The client ID of launch `n` of phase `phase` (a certificate fingerprint's shape).
fn client_id(phase: &str, n: usize) -> String {
    hati::state::clients::fingerprint(format!("{phase}-{n}").as_bytes())
}

fn client_launch(phase: &str, n: usize) -> ClientLaunch {
    let bytes = u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
    ClientLaunch {
        client_id: client_id(phase, n),
        client_ip: IpAddr::V4(Ipv4Addr::new(10, bytes[1], bytes[2], bytes[3])),
        front_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        app_id: 1,
        app: "Desktop".into(),
        params: LaunchParams {
            mode: Some((1920, 1080, 60)),
            surround_info: 0x3_0002,
            key: Some(MoonlightKey {
                rikey: [bytes[3]; 16],
                rikeyid: i32::try_from(n).unwrap_or(0),
                corever: 1,
            }),
        },
    }
}

fn port_set_key(front: PortSet) -> [u16; 4] {
    [front.rtsp, front.control, front.video, front.audio]
}

impl Sim {
    /// Starts the gateway and joins every stand-in; fills in the join figures.
    pub async fn start(options: Options, figures: &mut Figures) -> Sim {
        figures.nodes = options.nodes;
        figures.sessions = options.sessions;
        figures.concurrency = options.concurrency;
        figures.dials = options.dials;
        figures.fd_limit = raise_fd_limit();
        figures.rss_start_kib = vm_rss_kib();
        let state_dir = tempfile::tempdir().expect("a temporary directory");
        let state = StateDir::open(state_dir.path()).expect("the state directory");
        let identity = HostIdentity::load_or_create(&state).expect("the gateway's identity");
        let token = JoinToken::for_gateway(&state, &identity).expect("the join token");
        let settings = GatewayConfig {
            node_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            front_address: None,
            // 10 000 port sets, with room to spare: the fill takes all but a few.
            front_ports: "20000-59999".into(),
            forwarding: Forwarding::External,
            nft_table: "hati_sim".into(),
            masquerade: false,
            max_nodes: u32::try_from(options.nodes).expect("few nodes"),
        };
        let gateway = Arc::new(
            Gateway::new(
                settings,
                token.clone(),
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                EventBus::new(),
            )
            .await
            .expect("the gateway starts"),
        );
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("the node-link listener");
        let address = listener.local_addr().expect("its address");
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(hati::gateway::node_link::serve(
            listener,
            gateway.clone(),
            gateway_tls(&identity).expect("the gateway's TLS"),
            shutdown_rx.clone(),
        ))];

        let started = Instant::now();
        let certificates: Vec<(Vec<u8>, Vec<u8>)> = (0..options.nodes)
            .map(|i| {
                let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                    .expect("a P-256 key");
                let params = rcgen::CertificateParams::new(vec![format!("node-{i}")])
                    .expect("certificate parameters");
                let cert = params.self_signed(&key).expect("a certificate");
                (cert.der().to_vec(), key.serialize_der())
            })
            .collect();
        figures.certificates = started.elapsed();

        let shared = Arc::new(Shared {
            secret: token.secret.clone(),
            ..Shared::default()
        });
        let dials = Arc::new(Semaphore::new(options.dials));
        let (joined_tx, mut joined_rx) = mpsc::channel(options.nodes);
        let cpu = cpu_time();
        let started = Instant::now();
        let mut stand_ins = Vec::new();
        for (index, ((cert, key), capacity)) in certificates
            .into_iter()
            .zip(capacities(options.nodes, options.sessions))
            .enumerate()
        {
            let tls = node_tls_with_cert(cert, key, &token).expect("the stand-in's TLS");
            let node = Arc::new(StandIn {
                index,
                capacity,
                held: Mutex::default(),
                peak: AtomicU32::new(0),
                outgoing: Mutex::new(None),
                joined: AtomicBool::new(false),
            });
            stand_ins.push(node.clone());
            tasks.push(tokio::spawn(run_stand_in(
                node,
                shared.clone(),
                TlsConnector::from(Arc::new(tls)),
                Dialling {
                    gateway: address,
                    dials: dials.clone(),
                    joined: joined_tx.clone(),
                    launch_delay: options.launch_delay,
                    join_retry: options.join_retry,
                    shutdown: shutdown_rx.clone(),
                },
            )));
        }
        drop(joined_tx);
        for _ in 0..options.nodes {
            joined_rx.recv().await.expect("every stand-in reports");
        }
        figures.join = started.elapsed();
        figures.cpu_join = cpu_time().saturating_sub(cpu);
        figures.join_retries = shared.join_retries.load(Ordering::Relaxed);
        let sim = Sim {
            gateway,
            stand_ins,
            shared,
            options,
            shutdown,
            tasks: Mutex::new(tasks),
            _state: state_dir,
        };
        sim.assert_no_violation();
        let joined = sim
            .stand_ins
            .iter()
            .filter(|n| n.joined.load(Ordering::Relaxed));
        assert_eq!(joined.count(), sim.options.nodes, "every stand-in joined");
        let nodes = sim.gateway.nodes();
        assert_eq!(
            nodes.len(),
            sim.options.nodes,
            "the gateway lists every node"
        );
        let total: u64 = nodes.iter().map(|n| u64::from(n.capacity)).sum();
        assert_eq!(total, sim.options.sessions as u64, "capacities add up");
        figures.rss_joined_kib = vm_rss_kib();
        sim
    }

    /// Every phase of the run, checked, with its figures.
    pub async fn run(options: Options) -> Figures {
        let mut figures = Figures::default();
        let sim = Arc::new(Sim::start(options, &mut figures).await);
        sim.idle(&mut figures).await;
        let live = sim.fill(&mut figures).await;
        sim.end_all(live, &mut figures).await;
        sim.churn(&mut figures).await;
        figures.heartbeats = sim.shared.heartbeats.load(Ordering::Relaxed);
        sim.stop().await;
        figures
    }

    /// Heartbeats only, for longer than a silent link lives: what keeping the links costs, and
    /// that heartbeats keep every one.
    async fn idle(&self, figures: &mut Figures) {
        let cpu = cpu_time();
        tokio::time::sleep(IDLE).await;
        figures.cpu_idle = cpu_time().saturating_sub(cpu);
        assert_eq!(
            self.gateway.nodes().len(),
            self.options.nodes,
            "no node was lost while idle"
        );
    }

    /// Launches the sessions `numbers` of `phase`, `concurrency` at a time; returns each
    /// call's number, latency and front ports.
    ///
    /// Each call is a task of its own, as each `/launch` is on the HTTPS server.
    async fn launch_many(
        &self,
        phase: &'static str,
        numbers: std::ops::Range<usize>,
    ) -> Vec<(usize, Duration, PortSet)> {
        futures_util::stream::iter(numbers)
            .map(|n| {
                let gateway = self.gateway.clone();
                joined(tokio::spawn(async move {
                    let started = Instant::now();
                    let result = gateway.launch(client_launch(phase, n)).await;
                    let took = started.elapsed();
                    match result {
                        Ok(front) => (n, took, front),
                        Err(error) => panic!("launch {phase}-{n} failed: {error}"),
                    }
                }))
            })
            .buffer_unordered(self.options.concurrency)
            .collect()
            .await
    }

    /// Takes every slot: checks spread half-way, counts when full, and the launch too many.
    async fn fill(&self, figures: &mut Figures) -> Vec<String> {
        let half = self.options.sessions / 2;
        let cpu = cpu_time();
        let started = Instant::now();
        let mut launched = self.launch_many("fill", 0..half).await;
        let first_half = started.elapsed();
        self.assert_spread();
        self.assert_counts_agree();
        let second = Instant::now();
        launched.extend(self.launch_many("fill", half..self.options.sessions).await);
        figures.fill = first_half + second.elapsed();
        figures.cpu_fill = cpu_time().saturating_sub(cpu);
        figures.rss_full_kib = vm_rss_kib();
        self.assert_no_violation();

        let mut fronts = HashMap::new();
        for (n, _, front) in &launched {
            for port in port_set_key(*front) {
                assert!(
                    fronts.insert(port, *n).is_none(),
                    "front port {port} was handed out twice"
                );
            }
        }
        figures.launch = launched.iter().map(|(_, took, _)| *took).collect();
        figures.launch.sort();
        assert_eq!(self.gateway.sessions().len(), self.options.sessions);
        for (node, view) in self.paired() {
            assert_eq!(view.sessions, view.capacity, "every node is full");
            assert_eq!(
                node.held(),
                node.capacity as usize,
                "every stand-in is full"
            );
        }
        let (free, all) = self.gateway.free_port_sets();
        assert_eq!(
            free,
            all - self.options.sessions,
            "one port set per session"
        );

        let started = Instant::now();
        let refused = self
            .gateway
            .launch(client_launch("too-many", 0))
            .await
            .expect_err("no slot is free");
        figures.no_free_node = started.elapsed();
        assert!(
            matches!(refused, GatewayError::NoFreeNode(_)),
            "refused for want of a node: {refused}"
        );
        assert_eq!(
            self.gateway.free_port_sets().0,
            free,
            "the refusal took no ports"
        );
        self.launch_again().await;
        launched
            .iter()
            .map(|(n, _, _)| client_id("fill", *n))
            .collect()
    }

    /// A client that launches again before streaming gets a new session in place of its
    /// old one; one that streams is told an app runs.
    async fn launch_again(&self) {
        let client = client_id("fill", 0);
        let (old, _) = lock(&self.shared.clients)[&client];
        self.gateway
            .launch(client_launch("fill", 0))
            .await
            .expect("a second launch replaces an unstarted session");
        let (new, _) = lock(&self.shared.clients)[&client];
        assert_ne!(new, old, "a new session");
        assert!(
            self.paired()
                .iter()
                .all(|(node, _)| !lock(&node.held).contains_key(&old)),
            "the old session was stopped on its node"
        );

        let client = client_id("fill", 1);
        let (session, node) = lock(&self.shared.clients)[&client];
        let link = self.stand_ins[node]
            .sender()
            .expect("a joined node has a link");
        link.send(NodeMessage::Session {
            session,
            change: SessionChange::Streaming,
        })
        .await
        .expect("the stand-in's link is up");
        let started = Instant::now();
        while self.gateway.session_of(&client).map(|s| s.state) != Some(PlacedState::Streaming) {
            assert!(
                started.elapsed() < DRAIN_TIMEOUT,
                "the gateway saw the stream start"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let refused = self
            .gateway
            .launch(client_launch("fill", 1))
            .await
            .expect_err("the client streams");
        assert!(matches!(refused, GatewayError::AlreadyRunning), "{refused}");
        assert_eq!(self.gateway.sessions().len(), self.options.sessions);
        assert_eq!(
            self.gateway.free_port_sets().0,
            self.gateway.free_port_sets().1 - self.options.sessions
        );
    }

    /// The gateway's own spread: each node got its last session while its share of capacity
    /// was the lowest, so `(placed - 1) / capacity <= placed' / capacity'` for every pair.
    fn assert_spread(&self) {
        let nodes = self.gateway.nodes();
        let highest_before_last = nodes.iter().filter(|n| n.sessions > 0).max_by(|a, b| {
            (u64::from(a.sessions - 1) * u64::from(b.capacity))
                .cmp(&(u64::from(b.sessions - 1) * u64::from(a.capacity)))
        });
        let lowest = nodes.iter().min_by(|a, b| {
            (u64::from(a.sessions) * u64::from(b.capacity))
                .cmp(&(u64::from(b.sessions) * u64::from(a.capacity)))
        });
        if let (Some(high), Some(low)) = (highest_before_last, lowest) {
            assert!(
                u64::from(high.sessions - 1) * u64::from(low.capacity)
                    <= u64::from(low.sessions) * u64::from(high.capacity),
                "node {} ({}/{}) got a session while node {} ({}/{}) was less used",
                high.name,
                high.sessions,
                high.capacity,
                low.name,
                low.sessions,
                low.capacity
            );
        }
    }

    /// With nothing in flight, the gateway's count of each node is what the node holds.
    fn assert_counts_agree(&self) {
        for (node, view) in self.paired() {
            assert_eq!(
                view.sessions as usize,
                node.held(),
                "{}: the gateway's count and the node's",
                view.name
            );
        }
    }

    /// Each stand-in with the gateway's view of it (the gateway numbers nodes as they join).
    fn paired(&self) -> Vec<(&StandIn, NodeView)> {
        let views = self.gateway.nodes();
        assert_eq!(views.len(), self.stand_ins.len(), "every node is listed");
        views
            .into_iter()
            .map(|view| {
                let index: usize = view
                    .name
                    .strip_prefix("sim-")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{} is a stand-in's name", view.name));
                (&*self.stand_ins[index], view)
            })
            .collect()
    }

    fn assert_no_violation(&self) {
        let violations = lock(&self.shared.violations);
        assert!(violations.is_empty(), "{violations:#?}");
    }

    /// Ends one session: by the gateway (`stop`) or by its node (an `ended` report).
    async fn end_one(&self, client_id: &str, by_gateway: bool) -> Option<Duration> {
        let (session, node) = *lock(&self.shared.clients)
            .get(client_id)
            .unwrap_or_else(|| panic!("client {client_id} has a session on a node"));
        if by_gateway {
            let started = Instant::now();
            self.gateway
                .stop(session, EndReason::Stopped)
                .await
                .unwrap_or_else(|error| panic!("stop {session}: {error}"));
            Some(started.elapsed())
        } else {
            let node = &self.stand_ins[node];
            assert!(node.release(&self.shared, session));
            let link = node.sender().expect("a joined node has a link");
            link.send(NodeMessage::Session {
                session,
                change: SessionChange::Ended {
                    reason: EndReason::AppExited,
                },
            })
            .await
            .expect("the stand-in's link is up");
            None
        }
    }

    /// Waits until the gateway has no session left, then checks nothing leaked.
    async fn assert_all_ended(&self) -> Duration {
        let started = Instant::now();
        while !self.gateway.sessions().is_empty() {
            assert!(
                started.elapsed() < DRAIN_TIMEOUT,
                "{} sessions never ended at the gateway",
                self.gateway.sessions().len()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let drained = started.elapsed();
        let (free, all) = self.gateway.free_port_sets();
        assert_eq!(free, all, "every front port set is free again");
        for (node, view) in self.paired() {
            assert_eq!(view.sessions, 0, "{} has nothing placed", view.name);
            assert_eq!(node.held(), 0, "{} holds nothing", view.name);
            assert!(node.peak.load(Ordering::Relaxed) <= node.capacity);
        }
        assert!(lock(&self.shared.ports).is_empty(), "no front port is held");
        assert!(
            lock(&self.shared.sessions).is_empty(),
            "no session runs on a node"
        );
        assert!(
            lock(&self.shared.clients).is_empty(),
            "no client has a session"
        );
        self.assert_no_violation();
        drained
    }

    /// Ends every session: even ones by `stop`, odd ones by their node.
    async fn end_all(self: &Arc<Self>, clients: Vec<String>, figures: &mut Figures) {
        let started = Instant::now();
        let stops: Vec<Option<Duration>> =
            futures_util::stream::iter(clients.into_iter().enumerate())
                .map(|(i, client)| {
                    let sim = self.clone();
                    joined(tokio::spawn(async move {
                        sim.end_one(&client, i % 2 == 0).await
                    }))
                })
                .buffer_unordered(self.options.concurrency)
                .collect()
                .await;
        figures.drain = self.assert_all_ended().await;
        figures.end = started.elapsed();
        figures.stop = stops.into_iter().flatten().collect();
        figures.stop.sort();
        figures.rss_ended_kib = vm_rss_kib();
    }

    /// Launches `churn` more sessions while ending the oldest, keeping about half the slots
    /// taken; then ends the rest and checks nothing leaked.
    async fn churn(self: &Arc<Self>, figures: &mut Figures) {
        let churn = Arc::new(Churn {
            window: self.options.sessions / 2,
            live: Mutex::default(),
            next: AtomicUsize::new(0),
            // Written through before the churn, so its pages do not show as growth in VmRSS.
            latencies: Mutex::new(vec![Duration::MAX; self.options.churn]),
            rss: Mutex::default(),
        });
        let started = Instant::now();
        let worker = || {
            let (sim, churn) = (self.clone(), churn.clone());
            joined(tokio::spawn(async move { sim.churn_worker(&churn).await }))
        };
        futures_util::future::join_all((0..self.options.concurrency).map(|_| worker())).await;
        figures.churn = started.elapsed();
        figures.churn_sessions = self.options.churn;
        let rest: Vec<(String, usize)> = lock(&churn.live).drain(..).collect();
        futures_util::stream::iter(rest)
            .map(|(client, n)| {
                let sim = self.clone();
                joined(tokio::spawn(async move {
                    sim.end_one(&client, n % 2 == 0).await
                }))
            })
            .buffer_unordered(self.options.concurrency)
            .collect::<Vec<_>>()
            .await;
        self.assert_all_ended().await;
        let mut latencies = std::mem::take(&mut *lock(&churn.latencies));
        latencies.sort();
        figures.churn_launch = latencies;
        figures.rss_churned_kib = vm_rss_kib();
        let mut rss = std::mem::take(&mut *lock(&churn.rss));
        rss.sort_unstable();
        figures.rss_churn_kib = rss;
        assert_eq!(
            self.shared.launches.load(Ordering::Relaxed),
            // One more: the client that launched again.
            (self.options.sessions + self.options.churn + 1) as u64,
            "the nodes were sent one launch per session"
        );
    }

    /// One of the churn's concurrent launchers: end the oldest session once the window is
    /// full, launch the next.
    async fn churn_worker(&self, churn: &Churn) {
        let tenth = (self.options.churn / 10).max(1);
        loop {
            let n = churn.next.fetch_add(1, Ordering::Relaxed);
            if n >= self.options.churn {
                return;
            }
            if n.is_multiple_of(tenth) {
                lock(&churn.rss).push((n, vm_rss_kib()));
            }
            let oldest = {
                let mut live = lock(&churn.live);
                if live.len() >= churn.window {
                    live.pop_front()
                } else {
                    None
                }
            };
            if let Some((old, number)) = oldest {
                self.end_one(&old, number % 2 == 0).await;
            }
            let launch = client_launch("churn", n);
            let client = launch.client_id.clone();
            let began = Instant::now();
            if let Err(error) = self.gateway.launch(launch).await {
                panic!("churn launch {n}: {error}");
            }
            lock(&churn.latencies)[n] = began.elapsed();
            lock(&churn.live).push_back((client, n));
        }
    }

    /// Stops the link server and every stand-in.
    async fn stop(&self) {
        let _ = self.shutdown.send(true);
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// A spawned task's result; its panic goes on here.
async fn joined<T>(task: tokio::task::JoinHandle<T>) -> T {
    match task.await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// What every stand-in gets from the run.
struct Dialling {
    /// The node-link address.
    gateway: SocketAddr,
    /// Permits to dial (`Options::dials`).
    dials: Arc<Semaphore>,
    /// Told each stand-in's index once it joined (or gave up).
    joined: mpsc::Sender<usize>,
    launch_delay: Duration,
    join_retry: Duration,
    shutdown: watch::Receiver<bool>,
}

/// A stand-in's life: join (retrying while the gateway is busy with handshakes), then serve.
async fn run_stand_in(
    node: Arc<StandIn>,
    shared: Arc<Shared>,
    connector: TlsConnector,
    dialling: Dialling,
) {
    let Dialling {
        gateway,
        dials,
        joined,
        launch_delay,
        join_retry,
        mut shutdown,
    } = dialling;
    let mut attempts = 0;
    let link = loop {
        attempts += 1;
        let permit = dials.acquire().await.expect("the semaphore stays open");
        let result = join(&node, &shared, &connector, gateway).await;
        drop(permit);
        match result {
            Ok(link) => break link,
            // The gateway closed it (too many handshakes at once) or was slow: dial again.
            Err(_) if attempts < JOIN_ATTEMPTS => {
                shared.join_retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(join_retry).await;
            }
            Err(error) => {
                shared.violation(format!("node {} did not join: {error}", node.index));
                let _ = joined.send(node.index).await;
                return;
            }
        }
    };
    let (reader, writer) = tokio::io::split(link);
    let (outgoing, queue) = mpsc::channel(1024);
    *lock(&node.outgoing) = Some(outgoing.clone());
    node.joined.store(true, Ordering::Relaxed);
    let _ = joined.send(node.index).await;
    let writer = tokio::spawn(write_link(writer, queue));
    let heartbeat = tokio::spawn(heartbeats(node.clone(), shared.clone(), outgoing.clone()));
    tokio::select! {
        () = serve_orders(&node, &shared, reader, outgoing, launch_delay) => {}
        _ = shutdown.changed() => {}
    }
    heartbeat.abort();
    writer.abort();
}

type Link = tokio_rustls::client::TlsStream<TcpStream>;

async fn join(
    node: &StandIn,
    shared: &Shared,
    connector: &TlsConnector,
    gateway: SocketAddr,
) -> Result<Link, String> {
    let stream = TcpStream::connect(gateway)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let mut link = connector
        .connect(server_name(), stream)
        .await
        .map_err(|e| e.to_string())?;
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        secret: shared.secret.clone(),
        name: format!("sim-{}", node.index),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        capacity: node.capacity,
        codecs: vec!["h264".into(), "hevc".into()],
        ports: PortSet {
            rtsp: 48010,
            control: 47999,
            video: 47998,
            audio: 48000,
        },
        // Distinct addresses, as on a real cluster (never dialled: forwarding is external).
        address: Some(IpAddr::V4(Ipv4Addr::new(
            10,
            200,
            (node.index >> 8) as u8,
            node.index as u8,
        ))),
        sessions: Vec::new(),
    };
    write_message(&mut link, &NodeMessage::Hello(hello))
        .await
        .map_err(|e| e.to_string())?;
    let mut buffer = Vec::new();
    match read_message::<GatewayMessage, _>(&mut link, &mut buffer).await {
        Ok(GatewayMessage::Welcome { .. }) => Ok(link),
        Ok(GatewayMessage::Refused { reason }) => {
            shared.violation(format!("node {} refused: {reason}", node.index));
            Err(reason)
        }
        Ok(other) => Err(format!("not a welcome: {other:?}")),
        Err(error) => Err(error.to_string()),
    }
}

async fn heartbeats(node: Arc<StandIn>, shared: Arc<Shared>, outgoing: mpsc::Sender<NodeMessage>) {
    let mut tick = tokio::time::interval(hati::cluster::HEARTBEAT);
    loop {
        tick.tick().await;
        let sessions = u32::try_from(node.held()).unwrap_or(u32::MAX);
        let message = NodeMessage::Heartbeat {
            sessions,
            load: sessions as f32 / node.capacity as f32 * 0.8,
        };
        if outgoing.send(message).await.is_err() {
            return;
        }
        shared.heartbeats.fetch_add(1, Ordering::Relaxed);
    }
}

async fn write_link<W: AsyncWrite + Unpin>(mut writer: W, mut queue: mpsc::Receiver<NodeMessage>) {
    while let Some(message) = queue.recv().await {
        if write_message(&mut writer, &message).await.is_err() {
            return;
        }
    }
}

/// Answers the gateway's orders until the link closes.
async fn serve_orders<R: AsyncRead + Unpin>(
    node: &Arc<StandIn>,
    shared: &Arc<Shared>,
    mut reader: R,
    outgoing: mpsc::Sender<NodeMessage>,
    launch_delay: Duration,
) {
    let mut buffer = Vec::new();
    loop {
        let message = match read_message::<GatewayMessage, _>(&mut reader, &mut buffer).await {
            Ok(message) => message,
            Err(_) => return,
        };
        match message {
            GatewayMessage::Heartbeat => {}
            GatewayMessage::Launch(order) => {
                shared.launches.fetch_add(1, Ordering::Relaxed);
                if order.key.as_ref().and_then(|k| k.rikey_bytes()).is_none() {
                    shared.violation(format!("session {} came without its key", order.session));
                }
                node.take(shared, order.session, order.front, &order.client_id);
                let reply = NodeMessage::Reply {
                    request: order.request,
                    error: None,
                };
                if launch_delay.is_zero() {
                    let _ = outgoing.send(reply).await;
                } else {
                    let outgoing = outgoing.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(launch_delay).await;
                        let _ = outgoing.send(reply).await;
                    });
                }
            }
            GatewayMessage::Stop {
                request, session, ..
            } => {
                if !node.release(shared, session) {
                    shared.violation(format!(
                        "node {} was told to stop session {session}, which it does not run",
                        node.index
                    ));
                }
                let _ = outgoing
                    .send(NodeMessage::Reply {
                        request,
                        error: None,
                    })
                    .await;
            }
            GatewayMessage::Resume { request, .. } => {
                let _ = outgoing
                    .send(NodeMessage::Reply {
                        request,
                        error: None,
                    })
                    .await;
            }
            GatewayMessage::Welcome { .. } | GatewayMessage::Refused { .. } => {
                shared.violation(format!("node {} got a second welcome", node.index));
            }
            // Browser signalling and what else the link carries: no browser plays here.
            _ => {}
        }
    }
}
