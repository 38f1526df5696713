//! Layer-4 forwarding of sessions through the gateway with nftables DNAT: the gateway programs
//! one `inet` table and the kernel moves every packet, so a stream costs the gateway no copy
//! and no context switch, and no gateway task has to keep up with a 100 Mbit/s video stream.
//!
//! The table (`inet <name>`) holds:
//!
//! - `prerouting` (nat, `dstnat`): per session port, one rule
//!   `ip saddr <client> ip daddr <front> udp dport <front.video> dnat ip to <node>:<node.video>`
//!   (`tcp` for RTSP, `ip6` and `dnat ip6 to [node]:port` for IPv6), commented
//!   `hati-session-<id>`. The source address lock means that a session's front ports forward
//!   only the client that launched it: anyone else who finds the ports reaches the gateway
//!   itself, where nothing listens.
//! - `postrouting` (nat, `srcnat`): with `masquerade` on, one rule per session that
//!   masquerades that session's DNATed flows (`ct status dnat` plus its client, node and front
//!   addresses), so the node sees the gateway as the peer and answers through it even when the
//!   gateway is not the node's router. Only this table's own flows are touched, not port
//!   forwards that other tables (Docker, …) DNAT.
//! - `forward` (filter): accepts `ct status dnat` and established/related traffic, then drops
//!   any other packet forwarded to a node address that has session rules: a client must not
//!   bypass the lock by sending to a node's own address through the gateway. The node
//!   addresses live in the named sets `nodes4` and `nodes6`; every change recomputes them from
//!   the `prerouting` rules in the same nftables transaction, so they can never disagree with
//!   the rules. Connections the node opens itself, and their replies, still pass. The chain's
//!   policy is `accept`: other traffic the gateway routes is not this table's business. (A
//!   `drop` policy in another table's forward chain, as Docker's iptables rules set, still
//!   applies; such a host must accept `ct status dnat` there too.)
//!
//! Rules survive the gateway: [`Dnat::open`] creates what is missing and keeps existing session
//! rules, so a restarted gateway does not cut running streams; it calls [`Dnat::retain`] once
//! the nodes have reported their sessions again. Only [`Dnat::delete_table`] removes the table.
//!
//! Every change is one `nft -f -` transaction (all of it applies, or none), run with a
//! [`COMMAND_TIMEOUT`]; rules are read back with `nft -j`. Commands happen per session start
//! and end, never per packet. tokio's `process` feature is not enabled in this crate, so the
//! commands run on the blocking pool with `std::process`.
//!
//! Removing rules does not stop flows the kernel has already translated: conntrack keeps
//! applying the old translation to a flow until it idles out. [`Dnat::remove`] therefore
//! deletes the session's conntrack entries with the `conntrack` tool (Debian package
//! `conntrack`) when it is installed; without it, a removed session's live flows keep flowing
//! until conntrack forgets them (a UDP stream 120 s after its last packet), and a warning says
//! so once.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use thiserror::Error;
use tokio::sync::Mutex;

use crate::cluster::PortSet;

/// How long one `nft` or `conntrack` command may run before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// What every session rule's comment starts with; the session id follows in decimal.
pub const COMMENT_PREFIX: &str = "hati-session-";

/// Longest table name accepted.
pub const MAX_TABLE_NAME: usize = 32;

/// The IPv4 forwarding sysctl (`net.ipv4.ip_forward`).
const IPV4_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// The IPv6 forwarding sysctl (`net.ipv6.conf.all.forwarding`).
const IPV6_FORWARD: &str = "/proc/sys/net/ipv6/conf/all/forwarding";

/// How often a running command is checked for its exit.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Longest piece of a command's stderr kept in an error.
const MAX_STDERR: usize = 1024;

/// Why the gateway's nftables table could not be set up or changed.
#[derive(Debug, Error)]
pub enum DnatError {
    /// The table name is empty, too long, or has characters other than ASCII letters, digits
    /// and `_`.
    #[error("invalid nftables table name {0:?}: use 1 to 32 ASCII letters, digits or '_'")]
    InvalidTableName(String),
    /// The client, front and node addresses are not all IPv4 or all IPv6.
    #[error(
        "client {client}, front {front} and node {node} must all be IPv4 or all IPv6 addresses"
    )]
    MixedFamilies {
        /// The client's address.
        client: IpAddr,
        /// The gateway's front address.
        front: IpAddr,
        /// The node's address.
        node: IpAddr,
    },
    /// A port set has a port 0.
    #[error("{0} port set has a port 0")]
    ZeroPort(&'static str),
    /// IPv4 forwarding is off, so DNATed packets would never leave the gateway.
    #[error("IPv4 forwarding is off: set the sysctl net.ipv4.ip_forward=1")]
    Ipv4ForwardingOff,
    /// IPv6 forwarding is off, so DNATed IPv6 packets would never leave the gateway.
    #[error("IPv6 forwarding is off: set the sysctl net.ipv6.conf.all.forwarding=1")]
    Ipv6ForwardingOff,
    /// A forwarding sysctl could not be read.
    #[error("cannot read {path}: {source}")]
    Sysctl {
        /// The sysctl's file under `/proc/sys`.
        path: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The `nft` program is not installed.
    #[error("`nft` not found: install nftables (Debian package `nftables`)")]
    NftMissing,
    /// `nft` was refused: the gateway lacks `CAP_NET_ADMIN`.
    #[error(
        "nft: operation not permitted: the gateway needs CAP_NET_ADMIN (run it as root or \
             grant the capability): {stderr}"
    )]
    Permission {
        /// What `nft` wrote to stderr (truncated).
        stderr: String,
    },
    /// `nft` failed for another reason.
    #[error("nft failed ({status}): {stderr}")]
    Nft {
        /// Its exit status.
        status: ExitStatus,
        /// What it wrote to stderr (truncated).
        stderr: String,
    },
    /// `nft` did not finish within [`COMMAND_TIMEOUT`] and was killed.
    #[error("nft did not finish within {0:?}")]
    Timeout(Duration),
    /// `nft` could not be run (other than not being installed).
    #[error("cannot run nft: {0}")]
    Spawn(io::Error),
    /// `nft -j` printed something this module does not understand.
    #[error("unexpected `nft -j` output: {0}")]
    Output(&'static str),
}

/// The gateway's nftables table (`inet <name>`): a `prerouting` nat chain with one DNAT rule
/// per session port, a `postrouting` chain that masquerades forwarded traffic to nodes
/// (optional), and a `forward` filter chain. See the module docs.
#[derive(Debug)]
pub struct Dnat {
    table: String,
    masquerade: bool,
    /// Serialises read-modify-write of the table (rule handles, node sets).
    lock: Mutex<()>,
    /// Whether the missing `conntrack` tool has been reported.
    conntrack_missing_reported: AtomicBool,
}

impl Dnat {
    /// Creates the table and its chains and sets if absent and rewrites the `forward` chain;
    /// KEEPS existing session rules (a restarted gateway must not cut running streams; it
    /// reconciles with [`Dnat::retain`] once nodes have re-reported).
    ///
    /// `masquerade` decides whether sessions added through this handle get a masquerade rule.
    /// Fails if `net.ipv4.ip_forward` is not 1, if `nft` is missing, or without
    /// `CAP_NET_ADMIN`.
    pub async fn open(table: &str, masquerade: bool) -> Result<Dnat, DnatError> {
        validate_table_name(table)?;
        if !sysctl_on(IPV4_FORWARD).await? {
            return Err(DnatError::Ipv4ForwardingOff);
        }
        nft_apply(create_script(table)).await?;
        tracing::info!(table, masquerade, "nftables dnat table ready");
        Ok(Dnat {
            table: table.to_owned(),
            masquerade,
            lock: Mutex::new(()),
            conntrack_missing_reported: AtomicBool::new(false),
        })
    }

    /// The table's name (`inet <name>`).
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Forwards `front_ip:front.*` → `node_ip:node.*` for packets from `client_ip` only (TCP
    /// for RTSP, UDP for the others), with rules commented `hati-session-<session>`.
    ///
    /// Replaces the rules `session` already has, in the same transaction (and deletes the
    /// conntrack entries of replaced ports that now translate differently). All three
    /// addresses must be of one family; for IPv6, `net.ipv6.conf.all.forwarding` must be 1.
    pub async fn add(
        &self,
        session: u64,
        front_ip: IpAddr,
        front: PortSet,
        client_ip: IpAddr,
        node_ip: IpAddr,
        node: PortSet,
    ) -> Result<(), DnatError> {
        let family = Family::of(client_ip, front_ip, node_ip)?;
        check_ports("front", front)?;
        check_ports("node", node)?;
        if family == Family::V6 && !sysctl_on(IPV6_FORWARD).await? {
            return Err(DnatError::Ipv6ForwardingOff);
        }
        let new = NewSession {
            session,
            family,
            client: client_ip,
            front_ip,
            front,
            node_ip,
            node,
        };
        let old = {
            let _guard = self.lock.lock().await;
            let rules = self.list().await?;
            let (old, kept): (Vec<_>, Vec<_>) =
                rules.into_iter().partition(|r| r.session == session);
            let mut nodes = node_addresses(&kept);
            nodes.insert(node_ip);
            let mut script = delete_script(&self.table, &old);
            script.push_str(&add_script(&self.table, &new, self.masquerade));
            script.push_str(&node_set_script(&self.table, &nodes));
            nft_apply(script).await?;
            old
        };
        // Flows of replaced rules that now translate differently must not keep the old way.
        let forwards = new.forwards();
        for forward in old.iter().filter_map(|r| r.forward.as_ref()) {
            if !forwards.contains(forward) {
                self.forget_flows(forward).await;
            }
        }
        tracing::info!(
            session,
            client = %client_ip,
            front = %front_ip,
            node = %node_ip,
            replaced = !old.is_empty(),
            "dnat rules added"
        );
        Ok(())
    }

    /// Removes `session`'s rules (Ok when it has none) and then its conntrack entries, if the
    /// `conntrack` tool is installed (see the module docs for what happens without it).
    pub async fn remove(&self, session: u64) -> Result<(), DnatError> {
        self.remove_where(|s| s == session).await
    }

    /// Removes the rules of every session not in `keep`, as [`Dnat::remove`] does.
    pub async fn retain(&self, keep: &[u64]) -> Result<(), DnatError> {
        self.remove_where(|s| !keep.contains(&s)).await
    }

    /// The sessions that have rules now, ascending.
    pub async fn sessions(&self) -> Result<Vec<u64>, DnatError> {
        let rules = self.list().await?;
        let ids: BTreeSet<u64> = rules.iter().map(|r| r.session).collect();
        Ok(ids.into_iter().collect())
    }

    /// Deletes the whole table, session rules included (tests, and `hati gateway` when the
    /// operator asks for it; NOT on normal exit). A table that is already gone is Ok.
    pub async fn delete_table(self) -> Result<(), DnatError> {
        let _guard = self.lock.lock().await;
        match nft_apply(format!("delete table inet {}\n", self.table)).await {
            Err(DnatError::Nft { stderr, .. }) if stderr.contains("No such file or directory") => {
                Ok(())
            }
            other => other,
        }?;
        tracing::info!(table = %self.table, "nftables dnat table deleted");
        Ok(())
    }

    /// Removes the rules of the sessions `doomed` picks, then their conntrack entries.
    async fn remove_where(&self, doomed: impl Fn(u64) -> bool) -> Result<(), DnatError> {
        let removed = {
            let _guard = self.lock.lock().await;
            let rules = self.list().await?;
            let (gone, kept): (Vec<_>, Vec<_>) = rules.into_iter().partition(|r| doomed(r.session));
            if gone.is_empty() {
                return Ok(());
            }
            let mut script = delete_script(&self.table, &gone);
            script.push_str(&node_set_script(&self.table, &node_addresses(&kept)));
            nft_apply(script).await?;
            gone
        };
        let sessions: BTreeSet<u64> = removed.iter().map(|r| r.session).collect();
        tracing::info!(?sessions, "dnat rules removed");
        for forward in removed.iter().filter_map(|r| r.forward.as_ref()) {
            self.forget_flows(forward).await;
        }
        Ok(())
    }

    /// Deletes the conntrack entries of the flows one removed rule translated. Failures are
    /// logged, not returned: the rules are already gone.
    async fn forget_flows(&self, forward: &Forward) {
        let family = match forward.front {
            IpAddr::V4(_) => "ipv4",
            IpAddr::V6(_) => "ipv6",
        };
        let args = vec![
            "-D".to_owned(),
            "-f".to_owned(),
            family.to_owned(),
            "-p".to_owned(),
            forward.proto.as_str().to_owned(),
            "-s".to_owned(),
            forward.client.to_string(),
            "-d".to_owned(),
            forward.front.to_string(),
            "--dport".to_owned(),
            forward.front_port.to_string(),
        ];
        match run("conntrack", args, None).await {
            Ok(out) if out.status.success() => {
                tracing::debug!(port = forward.front_port, "conntrack entries deleted");
            }
            // conntrack exits 1 with "0 flow entries have been deleted" when nothing matched.
            Ok(out) if String::from_utf8_lossy(&out.stderr).contains(" 0 flow entries") => {}
            Ok(out) => tracing::warn!(
                port = forward.front_port,
                stderr = %stderr_text(&out.stderr),
                "conntrack -D failed; the removed session's live flows stay translated"
            ),
            Err(RunError::NotFound) => {
                if !self
                    .conntrack_missing_reported
                    .swap(true, Ordering::Relaxed)
                {
                    tracing::warn!(
                        "conntrack tool not installed: live flows of removed sessions stay \
                         forwarded until they idle out; install the conntrack package"
                    );
                }
            }
            Err(RunError::Timeout) => tracing::warn!(
                port = forward.front_port,
                "conntrack -D timed out; the removed session's live flows may stay translated"
            ),
            Err(RunError::Io(error)) => tracing::warn!(
                port = forward.front_port,
                %error,
                "cannot run conntrack; the removed session's live flows stay translated"
            ),
        }
    }

    /// The session rules in the table now.
    async fn list(&self) -> Result<Vec<SessionRule>, DnatError> {
        let args = vec![
            "-j".to_owned(),
            "list".to_owned(),
            "table".to_owned(),
            "inet".to_owned(),
            self.table.clone(),
        ];
        let out = nft(args, None).await?;
        parse_rules(&out, &self.table)
    }
}

/// Address family of one session's three addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    /// The family all three addresses share.
    fn of(client: IpAddr, front: IpAddr, node: IpAddr) -> Result<Family, DnatError> {
        match (client, front, node) {
            (IpAddr::V4(_), IpAddr::V4(_), IpAddr::V4(_)) => Ok(Family::V4),
            (IpAddr::V6(_), IpAddr::V6(_), IpAddr::V6(_)) => Ok(Family::V6),
            _ => Err(DnatError::MixedFamilies {
                client,
                front,
                node,
            }),
        }
    }

    /// The nftables payload protocol and `dnat` family keyword.
    fn keyword(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
}

/// Transport protocol of one forwarded port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// The chains of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chain {
    Prerouting,
    Postrouting,
    Forward,
}

impl Chain {
    fn parse(name: &str) -> Option<Chain> {
        match name {
            "prerouting" => Some(Chain::Prerouting),
            "postrouting" => Some(Chain::Postrouting),
            "forward" => Some(Chain::Forward),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Chain::Prerouting => "prerouting",
            Chain::Postrouting => "postrouting",
            Chain::Forward => "forward",
        }
    }
}

/// What [`Dnat::add`] installs.
#[derive(Debug, Clone, Copy)]
struct NewSession {
    session: u64,
    family: Family,
    client: IpAddr,
    front_ip: IpAddr,
    front: PortSet,
    node_ip: IpAddr,
    node: PortSet,
}

impl NewSession {
    /// The translation of each of the session's four ports.
    fn forwards(&self) -> [Forward; 4] {
        let forward = |proto, front_port, node_port| Forward {
            proto,
            client: self.client,
            front: self.front_ip,
            front_port,
            node: self.node_ip,
            node_port,
        };
        [
            forward(Proto::Tcp, self.front.rtsp, self.node.rtsp),
            forward(Proto::Udp, self.front.control, self.node.control),
            forward(Proto::Udp, self.front.video, self.node.video),
            forward(Proto::Udp, self.front.audio, self.node.audio),
        ]
    }
}

/// One rule of the table that belongs to a session (by its comment).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SessionRule {
    session: u64,
    chain: Chain,
    handle: u64,
    /// What a `prerouting` DNAT rule forwards; `None` for other rules, or one this module
    /// cannot read (it is still deleted with its session).
    forward: Option<Forward>,
}

/// The translation one DNAT rule makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Forward {
    proto: Proto,
    client: IpAddr,
    front: IpAddr,
    front_port: u16,
    node: IpAddr,
    node_port: u16,
}

/// Accepts 1 to [`MAX_TABLE_NAME`] ASCII letters, digits and `_`.
fn validate_table_name(table: &str) -> Result<(), DnatError> {
    let ok = !table.is_empty()
        && table.len() <= MAX_TABLE_NAME
        && table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(DnatError::InvalidTableName(table.to_owned()))
    }
}

/// Rejects a port set with a port 0.
fn check_ports(which: &'static str, ports: PortSet) -> Result<(), DnatError> {
    if [ports.rtsp, ports.control, ports.video, ports.audio].contains(&0) {
        Err(DnatError::ZeroPort(which))
    } else {
        Ok(())
    }
}

/// The comment of `session`'s rules.
fn comment(session: u64) -> String {
    format!("{COMMENT_PREFIX}{session}")
}

/// The session a rule comment names, if it is one of ours.
fn session_of(comment: &str) -> Option<u64> {
    let digits = comment.strip_prefix(COMMENT_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Creates what is missing and rewrites the `forward` chain; session rules stay.
fn create_script(table: &str) -> String {
    format!(
        "add table inet {table}\n\
         add chain inet {table} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n\
         add chain inet {table} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         add chain inet {table} forward {{ type filter hook forward priority filter; policy accept; }}\n\
         add set inet {table} nodes4 {{ type ipv4_addr; }}\n\
         add set inet {table} nodes6 {{ type ipv6_addr; }}\n\
         flush chain inet {table} forward\n\
         add rule inet {table} forward ct status dnat accept\n\
         add rule inet {table} forward ct state established,related accept\n\
         add rule inet {table} forward ip daddr @nodes4 drop\n\
         add rule inet {table} forward ip6 daddr @nodes6 drop\n"
    )
}

/// The rules of one new session.
fn add_script(table: &str, new: &NewSession, masquerade: bool) -> String {
    let fam = new.family.keyword();
    let comment = comment(new.session);
    let client = new.client;
    let front_ip = new.front_ip;
    let node_ip = match new.node_ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let mut script = String::new();
    for forward in new.forwards() {
        let proto = forward.proto.as_str();
        let (front_port, node_port) = (forward.front_port, forward.node_port);
        // Writing to a String cannot fail.
        let _ = writeln!(
            script,
            "add rule inet {table} prerouting {fam} saddr {client} {fam} daddr {front_ip} \
             {proto} dport {front_port} dnat {fam} to {node_ip}:{node_port} comment \"{comment}\""
        );
    }
    if masquerade {
        let node = new.node_ip;
        let _ = writeln!(
            script,
            "add rule inet {table} postrouting {fam} saddr {client} {fam} daddr {node} \
             ct status dnat ct original {fam} daddr {front_ip} masquerade comment \"{comment}\""
        );
    }
    script
}

/// Deletes `rules` by handle.
fn delete_script(table: &str, rules: &[SessionRule]) -> String {
    let mut script = String::new();
    for rule in rules {
        let _ = writeln!(
            script,
            "delete rule inet {table} {} handle {}",
            rule.chain.as_str(),
            rule.handle
        );
    }
    script
}

/// Replaces the contents of `nodes4` and `nodes6` with `nodes`.
fn node_set_script(table: &str, nodes: &BTreeSet<IpAddr>) -> String {
    let mut script = format!("flush set inet {table} nodes4\nflush set inet {table} nodes6\n");
    let v4: Vec<String> = nodes
        .iter()
        .filter(|ip| ip.is_ipv4())
        .map(ToString::to_string)
        .collect();
    let v6: Vec<String> = nodes
        .iter()
        .filter(|ip| ip.is_ipv6())
        .map(ToString::to_string)
        .collect();
    for (set, elements) in [("nodes4", v4), ("nodes6", v6)] {
        if !elements.is_empty() {
            let _ = writeln!(
                script,
                "add element inet {table} {set} {{ {} }}",
                elements.join(", ")
            );
        }
    }
    script
}

/// The node addresses `rules` forward to.
fn node_addresses(rules: &[SessionRule]) -> BTreeSet<IpAddr> {
    rules
        .iter()
        .filter_map(|r| r.forward.map(|f| f.node))
        .collect()
}

/// The session rules in `nft -j list table inet <table>` output.
fn parse_rules(json: &[u8], table: &str) -> Result<Vec<SessionRule>, DnatError> {
    let root: Value = serde_json::from_slice(json).map_err(|_| DnatError::Output("not JSON"))?;
    let items = root
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or(DnatError::Output("no \"nftables\" array"))?;
    let mut rules = Vec::new();
    for rule in items.iter().filter_map(|item| item.get("rule")) {
        let field = |name: &str| rule.get(name).and_then(Value::as_str);
        if field("family") != Some("inet") || field("table") != Some(table) {
            continue;
        }
        let Some(session) = field("comment").and_then(session_of) else {
            continue;
        };
        let Some(chain) = field("chain").and_then(Chain::parse) else {
            continue;
        };
        let handle = rule
            .get("handle")
            .and_then(Value::as_u64)
            .ok_or(DnatError::Output("rule without a handle"))?;
        let forward = match chain {
            Chain::Prerouting => rule
                .get("expr")
                .and_then(Value::as_array)
                .and_then(|exprs| parse_forward(exprs)),
            Chain::Postrouting | Chain::Forward => None,
        };
        rules.push(SessionRule {
            session,
            chain,
            handle,
            forward,
        });
    }
    Ok(rules)
}

/// The translation of a DNAT rule in the shape [`add_script`] writes.
fn parse_forward(exprs: &[Value]) -> Option<Forward> {
    let mut client = None;
    let mut front = None;
    let mut port = None;
    let mut node = None;
    for expr in exprs {
        if let Some(m) = expr.get("match") {
            let Some(payload) = m.get("left").and_then(|l| l.get("payload")) else {
                continue;
            };
            let protocol = payload.get("protocol").and_then(Value::as_str);
            let field = payload.get("field").and_then(Value::as_str);
            let right = m.get("right");
            let addr = || right?.as_str()?.parse::<IpAddr>().ok();
            let number = || u16::try_from(right?.as_u64()?).ok();
            match (protocol, field) {
                (Some("ip" | "ip6"), Some("saddr")) => client = addr(),
                (Some("ip" | "ip6"), Some("daddr")) => front = addr(),
                (Some("tcp"), Some("dport")) => port = number().map(|p| (Proto::Tcp, p)),
                (Some("udp"), Some("dport")) => port = number().map(|p| (Proto::Udp, p)),
                _ => {}
            }
        } else if let Some(dnat) = expr.get("dnat") {
            let addr = dnat.get("addr")?.as_str()?.parse::<IpAddr>().ok()?;
            let node_port = u16::try_from(dnat.get("port")?.as_u64()?).ok()?;
            node = Some((addr, node_port));
        }
    }
    let (proto, front_port) = port?;
    let (node, node_port) = node?;
    Some(Forward {
        proto,
        client: client?,
        front: front?,
        front_port,
        node,
        node_port,
    })
}

/// Whether the boolean sysctl at `path` is 1.
async fn sysctl_on(path: &'static str) -> Result<bool, DnatError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| DnatError::Sysctl { path, source })?;
    Ok(text.trim() == "1")
}

/// Runs `nft -f -` with `script` as one transaction.
async fn nft_apply(script: String) -> Result<(), DnatError> {
    tracing::debug!(%script, "nft -f -");
    nft(
        vec!["-f".to_owned(), "-".to_owned()],
        Some(script.into_bytes()),
    )
    .await?;
    Ok(())
}

/// Runs `nft` with `args` and returns its stdout.
async fn nft(args: Vec<String>, stdin: Option<Vec<u8>>) -> Result<Vec<u8>, DnatError> {
    let out = run("nft", args, stdin).await?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let stderr = stderr_text(&out.stderr);
    if stderr.contains("Operation not permitted") {
        Err(DnatError::Permission { stderr })
    } else {
        Err(DnatError::Nft {
            status: out.status,
            stderr,
        })
    }
}

/// A command's trimmed stderr, cut to [`MAX_STDERR`] bytes.
fn stderr_text(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    let mut end = text.len().min(MAX_STDERR);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

/// What a finished command left.
#[derive(Debug)]
struct Output {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Why a command gave no [`Output`].
#[derive(Debug)]
enum RunError {
    NotFound,
    Timeout,
    Io(io::Error),
}

impl From<RunError> for DnatError {
    fn from(error: RunError) -> DnatError {
        match error {
            RunError::NotFound => DnatError::NftMissing,
            RunError::Timeout => DnatError::Timeout(COMMAND_TIMEOUT),
            RunError::Io(e) => DnatError::Spawn(e),
        }
    }
}

/// Runs `program` (no shell) on the blocking pool, killing it after [`COMMAND_TIMEOUT`].
async fn run(
    program: &'static str,
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
) -> Result<Output, RunError> {
    tokio::task::spawn_blocking(move || run_blocking(program, &args, stdin, COMMAND_TIMEOUT))
        .await
        .map_err(|e| RunError::Io(io::Error::other(e)))?
}

/// Runs `program` with `args`, feeding it `input`, and collects its output; kills it once
/// `timeout` has passed. Helper threads write stdin and drain stdout and stderr, so a full
/// pipe cannot stall it.
fn run_blocking(
    program: &str,
    args: &[String],
    input: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Output, RunError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => RunError::NotFound,
            _ => RunError::Io(e),
        })?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    thread::scope(|scope| {
        if let (Some(mut pipe), Some(bytes)) = (stdin, input) {
            // A write error means the program exited early; its status tells why.
            scope.spawn(move || pipe.write_all(&bytes));
        }
        let stdout = scope.spawn(move || drain(stdout));
        let stderr = scope.spawn(move || drain(stderr));
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(RunError::Timeout);
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(RunError::Io(e));
                }
            }
        };
        // The pipes close once the program is gone, so both readers end.
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        Ok(Output {
            status: status?,
            stdout,
            stderr,
        })
    })
}

/// Reads a pipe to its end; errors end the read.
fn drain(pipe: Option<impl Read>) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    /// `nft -j list table inet hati` (nftables 1.0.6) after two sessions were added, one IPv4
    /// with masquerade and one IPv6, plus a rule of another table and an uncommented rule.
    const LISTING: &str = r#"{"nftables": [
      {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
      {"table": {"family": "inet", "name": "hati", "handle": 1}},
      {"set": {"family": "inet", "name": "nodes4", "table": "hati", "type": "ipv4_addr", "handle": 4, "elem": ["10.0.1.2"]}},
      {"chain": {"family": "inet", "table": "hati", "name": "prerouting", "handle": 1, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}},
      {"rule": {"family": "inet", "table": "hati", "chain": "prerouting", "handle": 10, "comment": "hati-session-7", "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.0.0.2"}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.0.1"}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 40000}},
        {"dnat": {"family": "ip", "addr": "10.0.1.2", "port": 47998}}]}},
      {"rule": {"family": "inet", "table": "hati", "chain": "prerouting", "handle": 11, "comment": "hati-session-8", "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "fd00::2"}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "fd00::1"}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 40000}},
        {"dnat": {"family": "ip6", "addr": "fd00:1::2", "port": 48010}}]}},
      {"rule": {"family": "inet", "table": "hati", "chain": "postrouting", "handle": 12, "comment": "hati-session-7", "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.0.0.2"}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.1.2"}},
        {"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}},
        {"match": {"op": "==", "left": {"ct": {"key": "ip daddr", "dir": "original"}}, "right": "10.0.0.1"}},
        {"masquerade": null}]}},
      {"rule": {"family": "inet", "table": "hati", "chain": "forward", "handle": 14, "expr": [
        {"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}, {"accept": null}]}},
      {"rule": {"family": "inet", "table": "other", "chain": "prerouting", "handle": 3, "comment": "hati-session-9", "expr": []}}
    ]}"#;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    fn ports(base: u16) -> PortSet {
        PortSet {
            rtsp: base,
            control: base + 1,
            video: base + 2,
            audio: base + 3,
        }
    }

    #[test]
    fn table_names() {
        for ok in ["hati", "hati_gw_1", "H", &"a".repeat(MAX_TABLE_NAME)] {
            assert!(validate_table_name(ok).is_ok(), "{ok:?}");
        }
        let too_long = "a".repeat(MAX_TABLE_NAME + 1);
        for bad in ["", &too_long, "hati-gw", "ha ti", "hät", "a;b", "a\n"] {
            assert!(
                matches!(
                    validate_table_name(bad),
                    Err(DnatError::InvalidTableName(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn families_must_match() {
        let six = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let four = v4(10, 0, 0, 1);
        assert_eq!(Family::of(four, four, four).unwrap(), Family::V4);
        assert_eq!(Family::of(six, six, six).unwrap(), Family::V6);
        for (c, f, n) in [(six, four, four), (four, six, four), (four, four, six)] {
            assert!(matches!(
                Family::of(c, f, n),
                Err(DnatError::MixedFamilies { .. })
            ));
        }
    }

    #[test]
    fn zero_port_is_rejected() {
        assert!(check_ports("front", ports(40000)).is_ok());
        let mut zero = ports(40000);
        zero.audio = 0;
        assert!(matches!(
            check_ports("node", zero),
            Err(DnatError::ZeroPort("node"))
        ));
    }

    #[test]
    fn session_comments() {
        assert_eq!(comment(7), "hati-session-7");
        assert_eq!(session_of("hati-session-7"), Some(7));
        assert_eq!(session_of(&comment(u64::MAX)), Some(u64::MAX));
        for bad in [
            "hati-session-",
            "hati-session-+7",
            "hati-session-7x",
            "hati-session-18446744073709551616",
            "other",
        ] {
            assert_eq!(session_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ipv4_session_rules() {
        let new = NewSession {
            session: 7,
            family: Family::V4,
            client: v4(10, 0, 0, 2),
            front_ip: v4(10, 0, 0, 1),
            front: ports(40000),
            node_ip: v4(10, 0, 1, 2),
            node: ports(48010),
        };
        let p = "add rule inet hati prerouting ip saddr 10.0.0.2 ip daddr 10.0.0.1";
        let c = "comment \"hati-session-7\"";
        let expected = format!(
            "{p} tcp dport 40000 dnat ip to 10.0.1.2:48010 {c}\n\
             {p} udp dport 40001 dnat ip to 10.0.1.2:48011 {c}\n\
             {p} udp dport 40002 dnat ip to 10.0.1.2:48012 {c}\n\
             {p} udp dport 40003 dnat ip to 10.0.1.2:48013 {c}\n"
        );
        assert_eq!(add_script("hati", &new, false), expected);
        let masquerade = format!(
            "{expected}add rule inet hati postrouting ip saddr 10.0.0.2 ip daddr 10.0.1.2 \
             ct status dnat ct original ip daddr 10.0.0.1 masquerade {c}\n"
        );
        assert_eq!(add_script("hati", &new, true), masquerade);
    }

    #[test]
    fn ipv6_session_rules() {
        let new = NewSession {
            session: 8,
            family: Family::V6,
            client: "fd00::2".parse().unwrap(),
            front_ip: "fd00::1".parse().unwrap(),
            front: ports(40000),
            node_ip: "fd00:1::2".parse().unwrap(),
            node: ports(48010),
        };
        let script = add_script("gw", &new, true);
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(
            lines[0],
            "add rule inet gw prerouting ip6 saddr fd00::2 ip6 daddr fd00::1 tcp dport 40000 \
             dnat ip6 to [fd00:1::2]:48010 comment \"hati-session-8\""
        );
        assert_eq!(
            lines[4],
            "add rule inet gw postrouting ip6 saddr fd00::2 ip6 daddr fd00:1::2 ct status dnat \
             ct original ip6 daddr fd00::1 masquerade comment \"hati-session-8\""
        );
    }

    #[test]
    fn parses_session_rules() {
        let rules = parse_rules(LISTING.as_bytes(), "hati").unwrap();
        let summary: Vec<(u64, Chain, u64)> = rules
            .iter()
            .map(|r| (r.session, r.chain, r.handle))
            .collect();
        assert_eq!(
            summary,
            [
                (7, Chain::Prerouting, 10),
                (8, Chain::Prerouting, 11),
                (7, Chain::Postrouting, 12)
            ]
        );
        assert_eq!(
            rules[0].forward,
            Some(Forward {
                proto: Proto::Udp,
                client: v4(10, 0, 0, 2),
                front: v4(10, 0, 0, 1),
                front_port: 40000,
                node: v4(10, 0, 1, 2),
                node_port: 47998,
            })
        );
        let six = rules[1].forward.unwrap();
        assert_eq!(six.proto, Proto::Tcp);
        assert_eq!(six.node, "fd00:1::2".parse::<IpAddr>().unwrap());
        assert_eq!(rules[2].forward, None);
        let nodes: Vec<IpAddr> = node_addresses(&rules).into_iter().collect();
        assert_eq!(
            nodes,
            [v4(10, 0, 1, 2), "fd00:1::2".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(parse_rules(LISTING.as_bytes(), "other").unwrap().len(), 1);
    }

    #[test]
    fn rejects_bad_listings() {
        assert!(matches!(
            parse_rules(b"nft: error", "hati"),
            Err(DnatError::Output(_))
        ));
        assert!(matches!(
            parse_rules(b"{}", "hati"),
            Err(DnatError::Output(_))
        ));
        let no_handle = r#"{"nftables": [{"rule": {"family": "inet", "table": "hati",
            "chain": "prerouting", "comment": "hati-session-1", "expr": []}}]}"#;
        assert!(matches!(
            parse_rules(no_handle.as_bytes(), "hati"),
            Err(DnatError::Output(_))
        ));
    }

    #[test]
    fn delete_and_node_set_scripts() {
        let rules = parse_rules(LISTING.as_bytes(), "hati").unwrap();
        assert_eq!(
            delete_script("hati", &rules),
            "delete rule inet hati prerouting handle 10\n\
             delete rule inet hati prerouting handle 11\n\
             delete rule inet hati postrouting handle 12\n"
        );
        let nodes: BTreeSet<IpAddr> = [
            v4(10, 0, 1, 3),
            v4(10, 0, 1, 2),
            "fd00:1::2".parse().unwrap(),
        ]
        .into();
        assert_eq!(
            node_set_script("hati", &nodes),
            "flush set inet hati nodes4\nflush set inet hati nodes6\n\
             add element inet hati nodes4 { 10.0.1.2, 10.0.1.3 }\n\
             add element inet hati nodes6 { fd00:1::2 }\n"
        );
        assert_eq!(
            node_set_script("hati", &BTreeSet::new()),
            "flush set inet hati nodes4\nflush set inet hati nodes6\n"
        );
    }

    #[test]
    fn create_script_keeps_session_chains() {
        let script = create_script("hati");
        assert!(script.contains("flush chain inet hati forward\n"));
        assert!(!script.contains("flush chain inet hati prerouting"));
        assert!(!script.contains("flush chain inet hati postrouting"));
        assert!(!script.contains("flush table"));
    }

    #[test]
    fn runs_commands_with_stdin_and_timeout() {
        let out =
            run_blocking("cat", &[], Some(b"hello".to_vec()), Duration::from_secs(5)).unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"hello");
        // More than a pipe buffer each way, so a runner that did not drain would stall.
        let big = vec![b'x'; 1 << 20];
        let out = run_blocking("cat", &[], Some(big.clone()), Duration::from_secs(5)).unwrap();
        assert_eq!(out.stdout.len(), big.len());

        let started = Instant::now();
        let slow = run_blocking("sleep", &["5".to_owned()], None, Duration::from_millis(100));
        assert!(matches!(slow, Err(RunError::Timeout)));
        assert!(started.elapsed() < Duration::from_secs(2));

        let missing = run_blocking("hati-no-such-program", &[], None, Duration::from_secs(1));
        assert!(matches!(missing, Err(RunError::NotFound)));
    }

    #[test]
    fn stderr_is_trimmed_and_cut() {
        assert_eq!(stderr_text(b"  Error: x\n"), "Error: x");
        let long = "é".repeat(MAX_STDERR);
        let cut = stderr_text(long.as_bytes());
        assert!(cut.len() <= MAX_STDERR && cut.len() >= MAX_STDERR - 1);
    }
}
