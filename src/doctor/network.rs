//! Network: whether each configured port can be bound on `[network] bind`, which addresses
//! clients can reach the host on, whether mDNS (UDP 5353) can be joined, and the firewall
//! commands that would open Hati's ports.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::Path;

use socket2::{Domain, Protocol, Socket, Type};

use super::{Check, which};
use crate::config::{Config, Ports};

/// The mDNS port.
const MDNS_PORT: u16 = 5353;

/// The mDNS IPv4 group.
const MDNS_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);

/// An inclusive range of ports; one port is `(p, p)`.
type PortRange = (u16, u16);

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One port Hati listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortUse {
    /// The port number.
    pub port: u16,
    /// TCP or UDP.
    pub proto: Proto,
    /// What it carries ("HTTP").
    pub label: &'static str,
    /// The `[network]` key that sets it.
    pub key: &'static str,
}

impl PortUse {
    /// `47989/tcp (HTTP)`.
    fn describe(&self) -> String {
        format!("{}/{} ({})", self.port, self.proto.name(), self.label)
    }
}

/// Every port Hati listens on: TCP HTTP, HTTPS, RTSP; UDP video, control, audio.
pub fn port_list(ports: Ports) -> [PortUse; 6] {
    let tcp = |port, label, key| PortUse {
        port,
        proto: Proto::Tcp,
        label,
        key,
    };
    let udp = |port, label, key| PortUse {
        port,
        proto: Proto::Udp,
        label,
        key,
    };
    [
        tcp(ports.http, "HTTP", "http_port"),
        tcp(ports.https, "HTTPS", "https_port"),
        tcp(ports.rtsp, "RTSP", "rtsp_port"),
        udp(ports.video, "video", "video_port"),
        udp(ports.control, "control", "control_port"),
        udp(ports.audio, "audio", "audio_port"),
    ]
}

/// Binds each port on the configured address, and releases it at once.
pub fn ports_check(config: &Config, state_dir: &Path) -> Check {
    let bind = config.network.bind;
    let uses = port_list(config.ports());
    let results: Vec<(PortUse, io::Result<()>)> = uses
        .iter()
        .map(|u| {
            let address = SocketAddr::new(bind, u.port);
            let bound = match u.proto {
                Proto::Tcp => TcpListener::bind(address).map(drop),
                Proto::Udp => UdpSocket::bind(address).map(drop),
            };
            (*u, bound)
        })
        .collect();
    let hati_running = UnixStream::connect(state_dir.join("admin.sock")).is_ok();
    ports_verdict(bind, &results, hati_running)
}

/// The verdict, given each port's bind outcome and whether a Hati answers on the admin socket.
fn ports_verdict(bind: IpAddr, results: &[(PortUse, io::Result<()>)], hati_running: bool) -> Check {
    const ID: &str = "ports";
    let mut problems = Vec::new();
    let mut fixes: Vec<String> = Vec::new();
    for (u, result) in results {
        let Err(error) = result else { continue };
        let (problem, fix) = port_problem(bind, u, error, hati_running);
        problems.push(problem);
        if !fixes.contains(&fix) {
            fixes.push(fix);
        }
    }
    if problems.is_empty() {
        let list = |proto| {
            let ports: Vec<String> = results
                .iter()
                .filter(|(u, _)| u.proto == proto)
                .map(|(u, _)| format!("{} ({})", u.port, u.label))
                .collect();
            ports.join(", ")
        };
        return Check::ok(
            ID,
            format!(
                "all free on {bind}: TCP {}; UDP {}",
                list(Proto::Tcp),
                list(Proto::Udp)
            ),
        );
    }
    Check::fail(ID, problems.join("; "), fixes.join("\n"))
}

/// One port's problem sentence and its fix.
fn port_problem(
    bind: IpAddr,
    u: &PortUse,
    error: &io::Error,
    hati_running: bool,
) -> (String, String) {
    let key = if u.key == "http_port" {
        "[network] http_port".to_owned()
    } else {
        format!("[network] {} (or http_port, which moves every port)", u.key)
    };
    match error.kind() {
        io::ErrorKind::AddrInUse if hati_running => (
            format!(
                "port {} is in use: Hati is already running (its admin socket answers)",
                u.describe()
            ),
            format!("stop the running Hati first, or give this one other ports: change {key}"),
        ),
        io::ErrorKind::AddrInUse => (
            format!(
                "port {} is in use by another program — is Hati already running?",
                u.describe()
            ),
            format!(
                "stop the program holding it (`ss -lnp{} 'sport = :{}'` names it), or change {key}",
                if u.proto == Proto::Tcp { "t" } else { "u" },
                u.port
            ),
        ),
        io::ErrorKind::AddrNotAvailable => (
            format!("cannot listen on {bind}: it is not an address of this machine"),
            "change [network] bind to one of this machine's addresses, or 0.0.0.0 for all"
                .to_owned(),
        ),
        io::ErrorKind::PermissionDenied => (
            format!("port {} needs privileges (ports below 1024)", u.describe()),
            format!("choose a port of 1024 or above ({key}), or give Hati CAP_NET_BIND_SERVICE"),
        ),
        _ => (
            format!("cannot listen on port {}: {error}", u.describe()),
            format!("change {key}"),
        ),
    }
}

/// The addresses clients can reach the host on.
pub fn interfaces_check(config: &Config) -> Check {
    const ID: &str = "interfaces";
    let interfaces = match if_addrs::get_if_addrs() {
        Ok(list) => list
            .into_iter()
            .map(|i| (i.name.clone(), i.ip(), i.is_loopback()))
            .collect::<Vec<_>>(),
        Err(error) => {
            return Check::warn(
                ID,
                format!("cannot list network interfaces: {error}"),
                "check `ip address`; clients reach the host on its LAN address",
            );
        }
    };
    interfaces_verdict(config.network.bind, &interfaces)
}

/// The verdict, given the bind address and `(name, address, loopback)` per interface address.
fn interfaces_verdict(bind: IpAddr, interfaces: &[(String, IpAddr, bool)]) -> Check {
    const ID: &str = "interfaces";
    let reachable: Vec<&(String, IpAddr, bool)> = interfaces
        .iter()
        .filter(|(_, ip, _)| match bind {
            IpAddr::V4(v4) if v4.is_unspecified() => ip.is_ipv4(),
            IpAddr::V6(v6) if v6.is_unspecified() => true,
            _ => *ip == bind,
        })
        .collect();
    if reachable.is_empty() {
        return Check::warn(
            ID,
            format!("no interface has the bind address {bind}: clients cannot reach the host"),
            "change [network] bind to one of this machine's addresses (`ip address`), or 0.0.0.0",
        );
    }
    let list: Vec<String> = reachable
        .iter()
        .map(|(name, ip, loopback)| {
            let mark = if *loopback { " (loopback)" } else { "" };
            format!("{name} {ip}{mark}")
        })
        .collect();
    let summary = format!("reachable on {}", list.join(", "));
    if reachable.iter().all(|(_, _, loopback)| *loopback) {
        return Check::warn(
            ID,
            format!("{summary}: only this machine can connect"),
            "set [network] bind = \"0.0.0.0\" and connect the machine to the clients' network",
        );
    }
    Check::ok(ID, summary)
}

/// Whether mDNS can work: `[network] mdns`, UDP 5353 and the multicast group.
pub fn mdns_check(config: &Config) -> Check {
    let avahi = Path::new("/run/avahi-daemon/socket").exists();
    let joined = if config.network.mdns {
        Some(join_mdns())
    } else {
        None
    };
    mdns_verdict(joined, avahi)
}

/// Binds UDP 5353 the way mdns-sd does (address and port shared) and joins the IPv4 group.
fn join_mdns() -> io::Result<()> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::ReusePort, &true)
        .map_err(io::Error::from)?;
    socket.bind(&SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), MDNS_PORT).into())?;
    socket.join_multicast_v4(&MDNS_GROUP, &Ipv4Addr::UNSPECIFIED)
}

/// The verdict, given the outcome of joining (`None`: mDNS is off) and whether avahi runs.
fn mdns_verdict(joined: Option<io::Result<()>>, avahi: bool) -> Check {
    const ID: &str = "mdns";
    let avahi = if avahi {
        "avahi-daemon runs too and shares the port"
    } else {
        "avahi-daemon is not running (not needed)"
    };
    match joined {
        None => Check::ok(
            ID,
            format!(
                "mDNS is off ([network] mdns = false): add the host in Moonlight by its address; \
                 {avahi}"
            ),
        ),
        Some(Ok(())) => Check::ok(
            ID,
            format!("mDNS on: UDP {MDNS_PORT} bound and {MDNS_GROUP} joined; {avahi}"),
        ),
        Some(Err(error)) => Check::warn(
            ID,
            format!(
                "mDNS on, but UDP {MDNS_PORT} / {MDNS_GROUP} cannot be used ({error}): Moonlight \
                 will not find the host by itself; {avahi}"
            ),
            format!(
                "find what holds UDP {MDNS_PORT} without sharing it (`ss -lnup 'sport = :{MDNS_PORT}'`) \
                 and check the interface has multicast; meanwhile add the host in Moonlight by its \
                 address"
            ),
        ),
    }
}

/// A firewall front end and how it opens ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Firewall {
    Ufw,
    Firewalld,
    Nft,
    Iptables,
}

impl Firewall {
    /// In order of preference: a front end manages the tables beneath it.
    const ALL: [Firewall; 4] = [
        Firewall::Ufw,
        Firewall::Firewalld,
        Firewall::Nft,
        Firewall::Iptables,
    ];

    fn program(self) -> &'static str {
        match self {
            Firewall::Ufw => "ufw",
            Firewall::Firewalld => "firewall-cmd",
            Firewall::Nft => "nft",
            Firewall::Iptables => "iptables",
        }
    }

    /// The commands that accept `tcp` and `udp` (inclusive ranges) from anywhere.
    fn commands(self, tcp: &[PortRange], udp: &[PortRange]) -> Vec<String> {
        let join = |ranges: &[PortRange], range_sep: &str, list_sep: &str| {
            let parts: Vec<String> = ranges
                .iter()
                .map(|&(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}{range_sep}{b}")
                    }
                })
                .collect();
            parts.join(list_sep)
        };
        let mut out = Vec::new();
        for (proto, ranges) in [("tcp", tcp), ("udp", udp)] {
            if ranges.is_empty() {
                continue;
            }
            out.push(match self {
                Firewall::Ufw => format!("sudo ufw allow {}/{proto}", join(ranges, ":", ",")),
                Firewall::Firewalld => {
                    let args: Vec<String> = ranges
                        .iter()
                        .map(|r| format!("--add-port={}/{proto}", join(&[*r], "-", "")))
                        .collect();
                    format!("sudo firewall-cmd --permanent {}", args.join(" "))
                }
                Firewall::Nft => format!(
                    "sudo nft add rule inet filter input {proto} dport {{ {} }} accept",
                    join(ranges, "-", ", ")
                ),
                Firewall::Iptables => format!(
                    "sudo iptables -A INPUT -p {proto} -m multiport --dports {} -j ACCEPT",
                    join(ranges, ":", ",")
                ),
            });
        }
        if self == Firewall::Firewalld && !out.is_empty() {
            out.push("sudo firewall-cmd --reload".to_owned());
        }
        out
    }
}

/// The TCP and UDP ranges Hati needs open: its ports, mDNS when on, and the WebRTC ICE range
/// when browser play is on and the range is fixed.
fn needed_ranges(config: &Config) -> (Vec<PortRange>, Vec<PortRange>) {
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    for u in port_list(config.ports()) {
        match u.proto {
            Proto::Tcp => tcp.push((u.port, u.port)),
            Proto::Udp => udp.push((u.port, u.port)),
        }
    }
    if config.network.mdns {
        udp.push((MDNS_PORT, MDNS_PORT));
    }
    let webrtc = &config.webrtc;
    if webrtc.enabled && webrtc.min_port != 0 {
        udp.push((webrtc.min_port, webrtc.max_port.max(webrtc.min_port)));
    }
    tcp.sort_unstable();
    tcp.dedup();
    udp.sort_unstable();
    udp.dedup();
    (tcp, udp)
}

/// A hint: the commands that would open Hati's ports with the firewall tool found. Never fails.
pub fn firewall_check(config: &Config) -> Check {
    let found: Vec<Firewall> = Firewall::ALL
        .into_iter()
        .filter(|f| which(f.program()).is_some())
        .collect();
    let (tcp, udp) = needed_ranges(config);
    firewall_verdict(&found, &tcp, &udp)
}

/// `[gateway] forwarding = "dnat"` (only then): nft, the forwarding sysctl and CAP_NET_ADMIN,
/// which `hati gateway` needs to program the kernel's forwarding.
pub fn gateway_dnat_check(config: &Config) -> Option<Check> {
    if config.gateway.forwarding != crate::config::Forwarding::Dnat {
        return None;
    }
    let forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .map(|v| v.trim() == "1")
        .unwrap_or(false);
    let net_admin = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
            u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
        })
        .is_some_and(|caps| caps >> 12 & 1 == 1);
    Some(dnat_verdict(which("nft").is_some(), forwarding, net_admin))
}

fn dnat_verdict(nft: bool, forwarding: bool, net_admin: bool) -> Check {
    const ID: &str = "gateway.dnat";
    let mut missing = Vec::new();
    let mut fixes = Vec::new();
    if !nft {
        missing.push("the nft program");
        fixes.push("apt install nftables");
    }
    if !forwarding {
        missing.push("IPv4 forwarding");
        fixes.push("sysctl -w net.ipv4.ip_forward=1 (and put it in /etc/sysctl.d/ to keep it)");
    }
    if !net_admin {
        missing.push("CAP_NET_ADMIN");
        fixes.push(
            "run `hati gateway` as root or with CAP_NET_ADMIN (a container: --cap-add NET_ADMIN), \
             or set [gateway] forwarding = \"relay\"",
        );
    }
    if missing.is_empty() {
        Check::ok(
            ID,
            "DNAT forwarding: nft, IPv4 forwarding and CAP_NET_ADMIN are there",
        )
    } else {
        Check::fail(
            ID,
            format!(
                "[gateway] forwarding = \"dnat\" needs {}, missing here",
                missing.join(", ")
            ),
            fixes.join("; "),
        )
    }
}

/// The hint, given the tools found and the ranges to open.
fn firewall_verdict(found: &[Firewall], tcp: &[PortRange], udp: &[PortRange]) -> Check {
    const ID: &str = "firewall";
    let Some(first) = found.first() else {
        let all = Firewall::Iptables.commands(tcp, udp);
        return Check::ok(
            ID,
            "no firewall tool found (ufw, firewall-cmd, nft, iptables): if a firewall sits \
             between clients and this host, open Hati's ports there",
        )
        .with_fix(format!("in iptables terms:\n{}", all.join("\n")));
    };
    let names: Vec<&str> = found.iter().map(|f| f.program()).collect();
    Check::ok(
        ID,
        format!(
            "found {}; if it blocks incoming traffic, open Hati's ports (as root) with the hint \
             below",
            names.join(", ")
        ),
    )
    .with_fix(first.commands(tcp, udp).join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnat_needs_nft_forwarding_and_net_admin() {
        assert_eq!(
            dnat_verdict(true, true, true).status,
            super::super::Status::Ok
        );
        let missing = dnat_verdict(false, true, false);
        assert_eq!(missing.status, super::super::Status::Fail);
        assert!(
            missing.summary.contains("nft program") && missing.summary.contains("CAP_NET_ADMIN")
        );
        assert!(
            !missing.summary.contains("IPv4 forwarding"),
            "{}",
            missing.summary
        );
        assert!(missing.fix.unwrap().contains("forwarding = \"relay\""));
        let config = Config::default_config().unwrap();
        assert!(
            gateway_dnat_check(&config).is_none(),
            "relay (the default) needs nothing"
        );
    }

    fn default_ports() -> Ports {
        Config::default_config().unwrap().ports()
    }

    #[test]
    fn port_list_names_every_port_and_key() {
        let list = port_list(default_ports());
        let text: Vec<String> = list.iter().map(PortUse::describe).collect();
        assert_eq!(
            text,
            [
                "47989/tcp (HTTP)",
                "47984/tcp (HTTPS)",
                "48010/tcp (RTSP)",
                "47998/udp (video)",
                "47999/udp (control)",
                "48000/udp (audio)"
            ]
        );
        assert_eq!(list[3].key, "video_port");
    }

    fn outcomes(taken: Option<(u16, io::ErrorKind)>) -> Vec<(PortUse, io::Result<()>)> {
        port_list(default_ports())
            .into_iter()
            .map(|u| {
                let result = match taken {
                    Some((port, kind)) if port == u.port => Err(io::Error::from(kind)),
                    _ => Ok(()),
                };
                (u, result)
            })
            .collect()
    }

    #[test]
    fn a_taken_port_fails_naming_port_protocol_and_key() {
        let any: IpAddr = Ipv4Addr::UNSPECIFIED.into();
        let free = ports_verdict(any, &outcomes(None), false);
        assert_eq!(free.status, crate::doctor::Status::Ok);
        assert!(free.summary.contains("47989 (HTTP)"), "{}", free.summary);

        let taken = ports_verdict(
            any,
            &outcomes(Some((47989, io::ErrorKind::AddrInUse))),
            false,
        );
        assert_eq!(taken.status, crate::doctor::Status::Fail);
        assert!(
            taken
                .summary
                .contains("port 47989/tcp (HTTP) is in use by another program"),
            "{}",
            taken.summary
        );
        assert!(taken.fix.unwrap().contains("change [network] http_port"));

        let audio = ports_verdict(
            any,
            &outcomes(Some((48000, io::ErrorKind::AddrInUse))),
            true,
        );
        assert!(audio.summary.contains("48000/udp (audio)"));
        assert!(audio.summary.contains("Hati is already running"));
        assert!(audio.fix.unwrap().contains("audio_port"));

        let privileged = ports_verdict(
            any,
            &outcomes(Some((47984, io::ErrorKind::PermissionDenied))),
            false,
        );
        assert!(privileged.summary.contains("needs privileges"));
    }

    #[test]
    fn interfaces_mark_loopback_and_follow_the_bind_address() {
        let ifaces = vec![
            ("lo".to_owned(), IpAddr::from([127, 0, 0, 1]), true),
            ("eth0".to_owned(), IpAddr::from([192, 168, 1, 5]), false),
            ("eth0".to_owned(), "fe80::1".parse().unwrap(), false),
        ];
        let all = interfaces_verdict(Ipv4Addr::UNSPECIFIED.into(), &ifaces);
        assert_eq!(all.status, crate::doctor::Status::Ok);
        assert_eq!(
            all.summary,
            "reachable on lo 127.0.0.1 (loopback), eth0 192.168.1.5"
        );

        let local = interfaces_verdict([127, 0, 0, 1].into(), &ifaces);
        assert_eq!(local.status, crate::doctor::Status::Warn);
        assert!(local.summary.contains("only this machine"));

        let gone = interfaces_verdict([10, 0, 0, 9].into(), &ifaces);
        assert_eq!(gone.status, crate::doctor::Status::Warn);
    }

    #[test]
    fn mdns_verdicts() {
        use crate::doctor::Status;
        assert_eq!(mdns_verdict(None, false).status, Status::Ok);
        assert_eq!(mdns_verdict(Some(Ok(())), true).status, Status::Ok);
        let blocked = mdns_verdict(Some(Err(io::ErrorKind::AddrInUse.into())), false);
        assert_eq!(blocked.status, Status::Warn);
    }

    #[test]
    fn firewall_commands_open_exactly_the_ports() {
        let config = Config::default_config().unwrap();
        let (tcp, udp) = needed_ranges(&config);
        assert_eq!(tcp, [(47984, 47984), (47989, 47989), (48010, 48010)]);
        assert!(udp.contains(&(5353, 5353)) && udp.contains(&(47998, 47998)));

        let udp = [(47998, 47998), (49000, 49100)];
        assert_eq!(
            Firewall::Nft.commands(&tcp, &udp),
            [
                "sudo nft add rule inet filter input tcp dport { 47984, 47989, 48010 } accept",
                "sudo nft add rule inet filter input udp dport { 47998, 49000-49100 } accept"
            ]
        );
        assert_eq!(
            Firewall::Iptables.commands(&tcp, &udp)[1],
            "sudo iptables -A INPUT -p udp -m multiport --dports 47998,49000:49100 -j ACCEPT"
        );
        assert_eq!(
            Firewall::Ufw.commands(&tcp, &udp)[1],
            "sudo ufw allow 47998,49000:49100/udp"
        );
        let fwd = Firewall::Firewalld.commands(&tcp, &udp);
        assert_eq!(
            fwd[1],
            "sudo firewall-cmd --permanent --add-port=47998/udp --add-port=49000-49100/udp"
        );
        assert_eq!(fwd[2], "sudo firewall-cmd --reload");

        let hint = firewall_verdict(&[Firewall::Nft, Firewall::Iptables], &tcp, &udp);
        assert_eq!(hint.status, crate::doctor::Status::Ok);
        assert!(hint.summary.contains("nft, iptables"));
        assert!(hint.fix.unwrap().starts_with("sudo nft"));
        assert_eq!(
            firewall_verdict(&[], &tcp, &udp).status,
            crate::doctor::Status::Ok
        );
    }
}
