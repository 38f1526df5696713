//! What the gateway's forwarding costs a stream: the same 20 Mbit/s UDP stream (1300-byte
//! datagrams, 1923 a second, evenly paced), echoed back by the node, over these paths in one
//! run, alternating:
//!
//! - **direct**: client → node, routed through the gateway namespace (plain IP forwarding,
//!   untracked by conntrack): the baseline;
//! - **dnat**: client → the gateway's front port, nftables `dnat to` the node, kernel forwarding
//!   (what `hati gateway` installs in its DNAT mode);
//! - **relay**: client → the gateway's front port, where `hati::gateway::relay::Relay` runs on a
//!   tokio multi-thread runtime (as in the daemon) → node;
//! - **relay-1t**: the same on a current-thread runtime (one thread), in a second process, to
//!   show what the multi-thread runtime's cross-thread wake-ups cost;
//! - **threads**: a reference, not Hati's code: the video stream relayed by two plain blocking
//!   threads (`recv`, check, `send`), the least a user-space relay can do per datagram.
//!
//!     cargo bench --bench forwarding [-- --seconds 10 --rounds 2]
//!
//! Needs root: it builds three network namespaces (`hfw-c` client, `hfw-g` gateway, `hfw-n`
//! node) joined by veth pairs, 10.231.1.0/24 and 10.231.2.0/24, and runs its parts in them by
//! re-executing itself (`ip netns exec NS <this binary> --role echo|relay|threads|client`).
//! Without root it prints SKIPPED and exits 0. The namespaces (and the nftables table inside
//! the gateway's) are removed at the end, on error too, and before starting if an earlier run
//! left them.
//!
//! Prints per path the round-trip time of each datagram (client → node → client, so a
//! forwarding path's cost is counted twice: once each way) at p50/p90/p99/max, its difference
//! from direct, the relay process's CPU time (all its threads, `CLOCK_PROCESS_CPUTIME_ID`) as a
//! share of one core, and the whole machine's system + softirq time from `/proc/stat` as a
//! share of one core (where the kernel's forwarding and NAT are accounted). The relay carries
//! the stream both ways (the echo), so one 20 Mbit/s stream one way costs half its figure.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use hati::cluster::PortSet;
use hati::gateway::relay::Relay;
use rustix::time::{ClockId, clock_gettime};

const NS_CLIENT: &str = "hfw-c";
const NS_GATEWAY: &str = "hfw-g";
const NS_NODE: &str = "hfw-n";
const NFT_TABLE: &str = "hfw_forwarding";

const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 231, 1, 2);
const FRONT_IP: Ipv4Addr = Ipv4Addr::new(10, 231, 1, 1);
const GATEWAY_NODE_SIDE_IP: Ipv4Addr = Ipv4Addr::new(10, 231, 2, 1);
const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 231, 2, 2);

/// The node's echo for the dnat and relay paths (conntrack sees it: NAT needs it).
const ECHO_PORT: u16 = 47998;
/// The node's echo for the direct path, exempt from conntrack (`notrack`).
const ECHO_UNTRACKED_PORT: u16 = 47999;
const DNAT_FRONT_PORT: u16 = 40998;
const RELAY_FRONT: PortSet = PortSet {
    rtsp: 41010,
    control: 41011,
    video: 41012,
    audio: 41013,
};
/// The video port of the plain-threads reference relay.
const THREADS_FRONT_PORT: u16 = 41032;
const RELAY_CURRENT_THREAD_FRONT: PortSet = PortSet {
    rtsp: 41020,
    control: 41021,
    video: 41022,
    audio: 41023,
};
const NODE_PORTS: PortSet = PortSet {
    rtsp: 48010,
    control: 47997,
    video: ECHO_PORT,
    audio: 48000,
};

const DATAGRAM_BYTES: usize = 1300;
/// 20 Mbit/s of 1300-byte datagrams.
const RATE_PER_SECOND: u32 = 20_000_000 / 8 / DATAGRAM_BYTES as u32;
/// Datagrams at the start of each run left out of the figures (ARP, first wake-ups).
const WARM_UP: u64 = 200;
/// How long a part may take to say it is ready, beyond its own run time.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The echo's own bound on its life, whatever happens to the orchestrator.
const ECHO_LIFETIME: Duration = Duration::from_secs(900);
/// The echo's index in `Lab::parts`.
const ECHO_PART: usize = 0;

#[derive(Clone, Copy, PartialEq)]
enum Path {
    Direct,
    Dnat,
    Relay,
    RelayCurrentThread,
    Threads,
}

impl Path {
    const ALL: [Path; 5] = [
        Path::Direct,
        Path::Dnat,
        Path::Relay,
        Path::RelayCurrentThread,
        Path::Threads,
    ];

    fn name(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Dnat => "dnat",
            Path::Relay => "relay",
            Path::RelayCurrentThread => "relay-1t",
            Path::Threads => "threads",
        }
    }

    fn target(self) -> SocketAddr {
        match self {
            Path::Direct => (NODE_IP, ECHO_UNTRACKED_PORT).into(),
            Path::Dnat => (FRONT_IP, DNAT_FRONT_PORT).into(),
            Path::Relay => (FRONT_IP, RELAY_FRONT.video).into(),
            Path::RelayCurrentThread => (FRONT_IP, RELAY_CURRENT_THREAD_FRONT.video).into(),
            Path::Threads => (FRONT_IP, THREADS_FRONT_PORT).into(),
        }
    }

    /// Which of `Lab::parts` runs this path's relay, if any (the echo is part 0).
    fn relay_part(self) -> Option<usize> {
        match self {
            Path::Direct | Path::Dnat => None,
            Path::Relay => Some(1),
            Path::RelayCurrentThread => Some(2),
            Path::Threads => Some(3),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match option(&args, "--role") {
        Some("echo") => echo(),
        Some("threads") => threads(),
        Some("relay") => relay(option(&args, "--flavor") == Some("current-thread")),
        Some("client") => option(&args, "--target")
            .context("--target")
            .and_then(|t| t.parse().context("--target"))
            .and_then(|target| client(target, number(&args, "--seconds", 10))),
        Some(role) => Err(anyhow!("unknown role {role}")),
        None => orchestrate(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("forwarding: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn option<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).map(String::as_str)
}

fn number(args: &[String], name: &str, default: u64) -> u64 {
    option(args, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// The orchestrator (root namespace)

fn orchestrate(args: &[String]) -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        println!("SKIPPED: needs root for network namespaces");
        return Ok(());
    }
    let seconds = number(args, "--seconds", 10).clamp(1, 120);
    let rounds = number(args, "--rounds", 2).clamp(1, 10);
    let mut lab = Lab::default();
    lab.remove();
    lab.build()?;
    let exe = std::env::current_exe().context("the benchmark's own path")?;
    let exe = exe
        .to_str()
        .context("the benchmark's path is not UTF-8")?
        .to_owned();

    // In the order of `Path::relay_part`.
    let parts: [(&str, &[&str]); 4] = [
        (NS_NODE, &["--role", "echo"]),
        (NS_GATEWAY, &["--role", "relay"]),
        (
            NS_GATEWAY,
            &["--role", "relay", "--flavor", "current-thread"],
        ),
        (NS_GATEWAY, &["--role", "threads"]),
    ];
    for (ns, args) in parts {
        lab.parts.push(Part::start(ns, &exe, args)?);
    }
    for part in &lab.parts {
        part.expect("ready", READY_TIMEOUT)?;
    }

    let mut runs: Vec<Measured> = Path::ALL.iter().map(|&p| Measured::new(p)).collect();
    for round in 0..rounds {
        for measured in &mut runs {
            let path = measured.path;
            eprintln!(
                "round {}/{rounds}: {} for {seconds} s",
                round + 1,
                path.name()
            );
            let echo_before = lab.cpu_ns(Some(ECHO_PART))?;
            let relay_before = lab.cpu_ns(path.relay_part())?;
            let machine_before = CpuTimes::read()?;
            let started = Instant::now();
            let target = path.target().to_string();
            let seconds_arg = seconds.to_string();
            let client_args = [
                "--role",
                "client",
                "--target",
                &target,
                "--seconds",
                &seconds_arg,
            ];
            let mut client = Part::start(NS_CLIENT, &exe, &client_args)?;
            let timeout = Duration::from_secs(seconds) + READY_TIMEOUT;
            let sent = client.expect("sent", timeout)?;
            let rtts = client.expect("rtt", timeout)?;
            let client_cpu = client.expect("cpu_ns", timeout)?;
            client.finish();
            let wall = started.elapsed();
            let machine = CpuTimes::read()? - machine_before;
            let relay_cpu_ns = lab.cpu_ns(path.relay_part())? - relay_before;
            let echo_cpu_ns = lab.cpu_ns(Some(ECHO_PART))? - echo_before;
            measured.sent += sent.parse::<u64>().context("the client's sent count")?;
            for value in rtts.split_whitespace() {
                measured.rtt_ns.push(value.parse().context("an RTT")?);
            }
            measured.wall += wall;
            measured.relay_cpu_ns += relay_cpu_ns;
            measured.echo_cpu_ns += echo_cpu_ns;
            measured.client_cpu_ns += client_cpu.parse::<u64>().context("the client's CPU")?;
            measured.machine = measured.machine + machine;
        }
    }
    let mut stats = Vec::new();
    for path in [Path::Relay, Path::RelayCurrentThread] {
        let part = path.relay_part().and_then(|i| lab.parts.get_mut(i));
        let part = part.context("a relay part")?;
        stats.push(format!("{}: {}", path.name(), part.stats()?));
    }
    report(&runs, seconds, rounds, &stats.join("\n  "));
    Ok(())
}

/// One path's figures over all rounds.
struct Measured {
    path: Path,
    sent: u64,
    rtt_ns: Vec<u64>,
    wall: Duration,
    relay_cpu_ns: u64,
    echo_cpu_ns: u64,
    client_cpu_ns: u64,
    machine: CpuTimes,
}

impl Measured {
    fn new(path: Path) -> Measured {
        Measured {
            path,
            sent: 0,
            rtt_ns: Vec::new(),
            wall: Duration::ZERO,
            relay_cpu_ns: 0,
            echo_cpu_ns: 0,
            client_cpu_ns: 0,
            machine: CpuTimes::default(),
        }
    }

    /// `cpu_ns` as a share of one core over this path's runs, in percent.
    fn share(&self, cpu_ns: u64) -> f64 {
        cpu_ns as f64 / self.wall.as_nanos().max(1) as f64 * 100.0
    }
}

/// The `p` quantile of `sorted`, in µs.
fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at.min(sorted.len() - 1)] as f64 / 1000.0
}

fn report(runs: &[Measured], seconds: u64, rounds: u64, stats: &str) {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let mbits = f64::from(RATE_PER_SECOND) * DATAGRAM_BYTES as f64 * 8.0 / 1e6;
    println!();
    println!(
        "Gateway forwarding: {mbits:.0} Mbit/s UDP ({DATAGRAM_BYTES}-byte datagrams, \
         {RATE_PER_SECOND}/s) echoed by the node; {rounds} x {seconds} s per path, alternating; \
         {cores} cores"
    );
    println!();
    println!("Round trip client -> node -> client (each path crossed twice), us:");
    println!(
        "{:<9} {:>7} {:>5} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "path", "sent", "lost", "p50", "p90", "p99", "max", "p50-dir", "p99-dir"
    );
    let mut direct = (f64::NAN, f64::NAN);
    for run in runs {
        let mut sorted = run.rtt_ns.clone();
        sorted.sort_unstable();
        let expected = run.sent.saturating_sub(WARM_UP * rounds);
        let lost = expected.saturating_sub(sorted.len() as u64);
        let [p50, p90, p99] = [0.50, 0.90, 0.99].map(|p| percentile_us(&sorted, p));
        let max = sorted.last().map_or(f64::NAN, |&m| m as f64 / 1000.0);
        if run.path == Path::Direct {
            direct = (p50, p99);
        }
        println!(
            "{:<9} {:>7} {:>5} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9.1} {:>9.1}",
            run.path.name(),
            run.sent,
            lost,
            p50,
            p90,
            p99,
            max,
            p50 - direct.0,
            p99 - direct.1,
        );
    }
    println!();
    println!("CPU, % of one core over the path's runs:");
    println!(
        "{:<9} {:>7} {:>7} {:>7} {:>9} {:>9} {:>14}",
        "path", "relay", "client", "echo", "all 3", "all-dir", "machine sys+si"
    );
    let all = |run: &Measured| run.share(run.relay_cpu_ns + run.client_cpu_ns + run.echo_cpu_ns);
    let direct_all = runs.first().map_or(f64::NAN, all);
    for run in runs {
        println!(
            "{:<9} {:>7.2} {:>7.2} {:>7.2} {:>9.2} {:>9.2} {:>14.2}",
            run.path.name(),
            run.share(run.relay_cpu_ns),
            run.share(run.client_cpu_ns),
            run.share(run.echo_cpu_ns),
            all(run),
            all(run) - direct_all,
            run.machine.kernel_share(cores) * 100.0,
        );
    }
    println!();
    println!(
        "relay/client/echo: each process's CPU time (CLOCK_PROCESS_CPUTIME_ID, all threads).\n\
         The kernel's forwarding, NAT and veth receive run in the softirq of the process that\n\
         sends, and this kernel charges that to the process: so `all 3` holds every path's\n\
         whole cost, and `all-dir` what the path adds to direct. machine sys+si: /proc/stat\n\
         system + softirq of the whole machine, anything else running included."
    );
    println!("relay stats at the end:\n  {stats}");
}

/// The whole machine's CPU time from the first line of `/proc/stat`, in ticks.
#[derive(Clone, Copy, Default)]
struct CpuTimes {
    system_softirq: u64,
    total: u64,
}

impl CpuTimes {
    fn read() -> Result<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let line = stat.lines().next().context("an empty /proc/stat")?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let field = |i: usize| fields.get(i).copied().unwrap_or(0);
        Ok(CpuTimes {
            system_softirq: field(2) + field(6),
            total: (0..8).map(field).sum(),
        })
    }

    /// System + softirq time as a share of one core.
    fn kernel_share(self, cores: usize) -> f64 {
        self.system_softirq as f64 / self.total.max(1) as f64 * cores as f64
    }
}

impl std::ops::Sub for CpuTimes {
    type Output = CpuTimes;
    fn sub(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            system_softirq: self.system_softirq.saturating_sub(earlier.system_softirq),
            total: self.total.saturating_sub(earlier.total),
        }
    }
}

impl std::ops::Add for CpuTimes {
    type Output = CpuTimes;
    fn add(self, other: CpuTimes) -> CpuTimes {
        CpuTimes {
            system_softirq: self.system_softirq + other.system_softirq,
            total: self.total + other.total,
        }
    }
}

/// The namespaces and the parts running in them; dropping it removes everything.
#[derive(Default)]
struct Lab {
    parts: Vec<Part>,
}

impl Lab {
    /// The CPU time so far of part `index` (none: 0), in ns.
    fn cpu_ns(&mut self, index: Option<usize>) -> Result<u64> {
        match index {
            Some(i) => self.parts.get_mut(i).context("a part")?.mark(),
            None => Ok(0),
        }
    }

    fn build(&mut self) -> Result<()> {
        for ns in [NS_CLIENT, NS_GATEWAY, NS_NODE] {
            run("ip", &["netns", "add", ns])?;
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        }
        run(
            "ip",
            &[
                "link", "add", "hfw-c0", "netns", NS_CLIENT, "type", "veth", "peer", "name",
                "hfw-g0", "netns", NS_GATEWAY,
            ],
        )?;
        run(
            "ip",
            &[
                "link", "add", "hfw-g1", "netns", NS_GATEWAY, "type", "veth", "peer", "name",
                "hfw-n0", "netns", NS_NODE,
            ],
        )?;
        for (ns, dev, addr) in [
            (NS_CLIENT, "hfw-c0", format!("{CLIENT_IP}/24")),
            (NS_GATEWAY, "hfw-g0", format!("{FRONT_IP}/24")),
            (NS_GATEWAY, "hfw-g1", format!("{GATEWAY_NODE_SIDE_IP}/24")),
            (NS_NODE, "hfw-n0", format!("{NODE_IP}/24")),
        ] {
            run("ip", &["-n", ns, "addr", "add", &addr, "dev", dev])?;
            run("ip", &["-n", ns, "link", "set", dev, "up"])?;
        }
        run(
            "ip",
            &[
                "-n",
                NS_CLIENT,
                "route",
                "add",
                "default",
                "via",
                &FRONT_IP.to_string(),
            ],
        )?;
        let via = GATEWAY_NODE_SIDE_IP.to_string();
        run(
            "ip",
            &["-n", NS_NODE, "route", "add", "default", "via", &via],
        )?;
        run(
            "ip",
            &[
                "netns",
                "exec",
                NS_GATEWAY,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ],
        )?;
        let ruleset = format!(
            "table ip {NFT_TABLE} {{
                chain untracked {{
                    type filter hook prerouting priority raw; policy accept;
                    ip daddr {NODE_IP} udp dport {ECHO_UNTRACKED_PORT} notrack
                    ip saddr {NODE_IP} udp sport {ECHO_UNTRACKED_PORT} notrack
                }}
                chain front_dnat {{
                    type nat hook prerouting priority dstnat; policy accept;
                    ip daddr {FRONT_IP} udp dport {DNAT_FRONT_PORT} dnat to {NODE_IP}:{ECHO_PORT}
                }}
            }}"
        );
        let mut nft = Command::new("ip")
            .args(["netns", "exec", NS_GATEWAY, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .context("starting nft")?;
        nft.stdin
            .take()
            .context("nft's stdin")?
            .write_all(ruleset.as_bytes())?;
        if !nft.wait()?.success() {
            bail!("nft refused the ruleset");
        }
        Ok(())
    }

    /// Removes the namespaces (their veths and the nftables table go with them); quiet when
    /// there is nothing to remove.
    fn remove(&mut self) {
        for mut part in self.parts.drain(..) {
            part.finish();
        }
        let _ = Command::new("ip")
            .args([
                "netns", "exec", NS_GATEWAY, "nft", "delete", "table", "ip", NFT_TABLE,
            ])
            .stderr(Stdio::null())
            .status();
        for ns in [NS_CLIENT, NS_GATEWAY, NS_NODE] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.remove();
    }
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// A copy of this binary running one role in a namespace, its output read line by line.
struct Part {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Part {
    fn start(ns: &str, exe: &str, args: &[&str]) -> Result<Part> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, exe])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {args:?} in {ns}"))?;
        let stdout = child.stdout.take().context("the part's stdout")?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(Part {
            child,
            stdin,
            lines,
        })
    }

    /// The rest of the next line that starts with `word`, within `timeout`.
    fn expect(&self, word: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .map_err(|e| anyhow!("waiting for {word:?}: {e}"))?;
            if let Some(rest) = line.strip_prefix(word) {
                return Ok(rest.trim().to_owned());
            }
        }
    }

    fn say(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("the part's stdin is closed")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// The part's CPU time so far, in ns.
    fn mark(&mut self) -> Result<u64> {
        self.say("mark")?;
        self.expect("cpu_ns", READY_TIMEOUT)?
            .parse()
            .context("a part's CPU time")
    }

    fn stats(&mut self) -> Result<String> {
        self.say("stats")?;
        self.expect("stats", READY_TIMEOUT)
    }

    fn finish(&mut self) {
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The parts (in their namespaces)

/// Ends this process when its orchestrator closes our stdin (or goes away).
fn exit_when_stdin_closes() {
    thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(0);
    });
}

/// The node: sends every datagram back where it came from, on both echo ports.
fn echo() -> Result<()> {
    let mut sockets = Vec::new();
    for port in [ECHO_PORT, ECHO_UNTRACKED_PORT] {
        let socket = UdpSocket::bind((NODE_IP, port)).with_context(|| format!("echo {port}"))?;
        socket.set_read_timeout(Some(Duration::from_secs(1)))?;
        sockets.push(socket);
    }
    let deadline = Instant::now() + ECHO_LIFETIME;
    for socket in sockets {
        thread::spawn(move || {
            let mut buffer = vec![0u8; 65536];
            while Instant::now() < deadline {
                if let Ok((len, from)) = socket.recv_from(&mut buffer) {
                    let _ = socket.send_to(&buffer[..len], from);
                }
            }
        });
    }
    println!("ready");
    answer_marks()
}

/// Answers the orchestrator's `mark` with this process's CPU time until stdin closes.
fn answer_marks() -> Result<()> {
    for line in std::io::stdin().lines() {
        if line?.trim() == "mark" {
            println!("cpu_ns {}", process_cpu_ns());
        }
    }
    Ok(())
}

/// The reference for the relay's per-packet cost: the video stream alone relayed by two plain
/// blocking threads (one `recv` and one `send` per datagram, no runtime), with the same
/// source-IP check and learnt client port.
fn threads() -> Result<()> {
    let front = Arc::new(UdpSocket::bind((FRONT_IP, THREADS_FRONT_PORT))?);
    let upstream = Arc::new(UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?);
    upstream.connect((NODE_IP, ECHO_PORT))?;
    let client_port = Arc::new(AtomicU32::new(0));
    let (to_node, to_client) = (
        (front.clone(), upstream.clone(), client_port.clone()),
        (front, upstream, client_port),
    );
    thread::spawn(move || {
        let (front, upstream, client_port) = to_node;
        let mut buffer = vec![0u8; 65536];
        loop {
            let Ok((len, from)) = front.recv_from(&mut buffer) else {
                continue;
            };
            if from.ip() == IpAddr::V4(CLIENT_IP) {
                client_port.store(u32::from(from.port()) | 1 << 16, Ordering::Relaxed);
                let _ = upstream.send(&buffer[..len]);
            }
        }
    });
    thread::spawn(move || {
        let (front, upstream, client_port) = to_client;
        let mut buffer = vec![0u8; 65536];
        loop {
            let Ok(len) = upstream.recv(&mut buffer) else {
                continue;
            };
            let port = client_port.load(Ordering::Relaxed);
            if port != 0 {
                let _ = front.send_to(&buffer[..len], (CLIENT_IP, port as u16));
            }
        }
    });
    println!("ready");
    answer_marks()
}

fn process_cpu_ns() -> u64 {
    let now = clock_gettime(ClockId::ProcessCPUTime);
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// The gateway: one relay on a multi-thread runtime, as the daemon runs it (or on a
/// current-thread one on its own thread); answers `mark` with its CPU time and `stats` with the
/// relay's counters.
fn relay(current_thread: bool) -> Result<()> {
    let (runtime, front) = if current_thread {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        (runtime, RELAY_CURRENT_THREAD_FRONT)
    } else {
        (tokio::runtime::Runtime::new()?, RELAY_FRONT)
    };
    let relay = runtime.block_on(Relay::start(
        IpAddr::V4(FRONT_IP),
        front,
        IpAddr::V4(CLIENT_IP),
        IpAddr::V4(NODE_IP),
        NODE_PORTS,
    ))?;
    // A current-thread runtime runs its tasks only inside `block_on`: give it a thread that
    // stays there, and read the orchestrator's commands on this one.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let driver = thread::spawn(move || {
        runtime.block_on(async {
            let _ = stop_rx.await;
        })
    });
    println!("ready");
    for line in std::io::stdin().lines() {
        match line?.trim() {
            "mark" => println!("cpu_ns {}", process_cpu_ns()),
            "stats" => println!("stats {}", serde_json::to_string(&relay.stats())?),
            _ => {}
        }
    }
    drop(relay);
    let _ = stop_tx.send(());
    driver
        .join()
        .map_err(|_| anyhow!("the runtime thread panicked"))?;
    Ok(())
}

/// The client: sends the paced stream to `target` for `seconds`, each datagram carrying its
/// sequence number and send time, and prints each echo's round trip.
fn client(target: SocketAddr, seconds: u64) -> Result<()> {
    exit_when_stdin_closes();
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.connect(target)?;
    let receiver = socket.try_clone()?;
    receiver.set_read_timeout(Some(Duration::from_millis(100)))?;
    let count = u64::from(RATE_PER_SECOND) * seconds;
    let start = Instant::now();
    let stop_receiving = start + Duration::from_secs(seconds) + Duration::from_secs(1);
    let received = thread::spawn(move || {
        let mut rtts = Vec::with_capacity(count as usize);
        let mut buffer = [0u8; 2048];
        while Instant::now() < stop_receiving {
            let Ok(len) = receiver.recv(&mut buffer) else {
                continue;
            };
            let now = start.elapsed().as_nanos() as u64;
            if len < 16 {
                continue;
            }
            let seq = u64::from_le_bytes(buffer[0..8].try_into().unwrap_or_default());
            let sent = u64::from_le_bytes(buffer[8..16].try_into().unwrap_or_default());
            if seq >= WARM_UP {
                rtts.push(now.saturating_sub(sent));
            }
        }
        rtts
    });
    let interval = Duration::from_secs(1) / RATE_PER_SECOND;
    let mut payload = vec![0u8; DATAGRAM_BYTES];
    for seq in 0..count {
        let due = start + interval * seq as u32;
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        payload[0..8].copy_from_slice(&seq.to_le_bytes());
        let sent = start.elapsed().as_nanos() as u64;
        payload[8..16].copy_from_slice(&sent.to_le_bytes());
        let _ = socket.send(&payload);
    }
    let rtts = received
        .join()
        .map_err(|_| anyhow!("the receiver panicked"))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "sent {count}")?;
    write!(out, "rtt")?;
    for rtt in rtts {
        write!(out, " {rtt}")?;
    }
    writeln!(out)?;
    writeln!(out, "cpu_ns {}", process_cpu_ns())?;
    Ok(())
}
