"""Many machines behind one address (docs/many-machines.md), on a real network: `hati gateway` in
its own network namespace owns the one client-facing address; two `hati node`s (capacity 1
each) run in their own namespaces behind it; the clients (the real moonlight-common-c through
moonlight-python, each in its own process) sit in two home namespaces behind a router namespace
that masquerades them to one address, as a family's NAT does.

    homeA ─┐                                       ┌─ node1
           ├─ router (masquerade) ── gateway ──────┤
    homeB ─┘                                       └─ node2

Run once with the user-space relay and once with nftables DNAT. Needs root (namespaces)."""

from __future__ import annotations

import json
import os
import signal
import socket  # noqa: F401 - used in the probes' source
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import HATI_BIN, Host, report
from test_dashboard import browser  # noqa: F401  (the Chromium fixture)

HERE = Path(__file__).resolve().parent
TEST_CLIENT = Path(HATI_BIN).with_name("hati-test-client")
APPS = (
    '[[apps]]\ntitle = "Test pattern"\ncompositor = false\n[apps.video]\n'
    'source = "hatitestsrc background=0xff2060a0 foreground=0xffffd040"\n'
    '[apps.audio]\nsource = "audiotestsrc is-live=true wave=sine freq=440 volume=0.4"\n'
)
FPS = 30
HTTP_PORT = 47989
NODE_LINK = 47990


def desktop_app(log: Path) -> str:
    """The repo's Wayland test client as an app: it logs the input it gets to `log`."""
    return ('[[apps]]\ntitle = "Wayland test"\ncompositor = true\n[apps.runner]\ntype = "process"\n'
            f'cmd = "{TEST_CLIENT}"\nenv = ["HATI_TEST_CLIENT_LOG={log}"]\n')


def run(*command: str, check: bool = True, ns: str | None = None) -> subprocess.CompletedProcess:
    prefix = ["ip", "netns", "exec", ns] if ns else []
    return subprocess.run([*prefix, *command], capture_output=True, text=True, check=check, timeout=30)


class Topology:
    """Six namespaces and five veth pairs (see the module doc). Subnets 10.24N.T.0/24 with T from
    the pid, so parallel runs do not meet."""

    LINKS = (("homeA", "router"), ("homeB", "router"), ("router", "gateway"),
             ("gateway", "node1"), ("gateway", "node2"))

    def __init__(self) -> None:
        tag = os.getpid() % 100000
        self.t = os.getpid() % 250 + 1
        self.ns = {name: f"hg{name[:2]}{name[-1]}{tag}" for name in
                   ("homeA", "homeB", "router", "gateway", "node1", "node2")}
        self.addresses: dict[tuple[str, str], tuple[str, str]] = {}
        self.devices: dict[tuple[str, str], tuple[str, str]] = {}
        for i, (left, right) in enumerate(self.LINKS):
            subnet = f"10.{240 + i}.{self.t}"
            # The right side of a home link is the router (.1); elsewhere the left is .1.
            if left.startswith("home"):
                self.addresses[(left, right)] = (f"{subnet}.2", f"{subnet}.1")
            else:
                self.addresses[(left, right)] = (f"{subnet}.1", f"{subnet}.2")
            self.devices[(left, right)] = (f"hg{i}a{tag}"[:15], f"hg{i}b{tag}"[:15])

    def address(self, left: str, right: str, side: str) -> str:
        pair = self.addresses[(left, right)]
        return pair[0] if side == left else pair[1]

    @property
    def front(self) -> str:
        """The one address clients use: the gateway's side of the router link."""
        return self.address("router", "gateway", "gateway")

    @property
    def masquerade_address(self) -> str:
        return self.address("router", "gateway", "router")

    def node_address(self, node: str) -> str:
        return self.address("gateway", node, node)

    def gateway_address_for(self, node: str) -> str:
        return self.address("gateway", node, "gateway")

    def __enter__(self) -> "Topology":
        if os.geteuid() != 0:
            pytest.skip("network namespaces need root")
        try:
            for ns in self.ns.values():
                run("ip", "netns", "add", ns)
                run("ip", "link", "set", "lo", "up", ns=ns)
            for (left, right), (dev_l, dev_r) in self.devices.items():
                run("ip", "link", "add", dev_l, "netns", self.ns[left], "type", "veth",
                    "peer", "name", dev_r, "netns", self.ns[right])
                addr_l, addr_r = self.addresses[(left, right)]
                for ns, dev, addr in ((left, dev_l, addr_l), (right, dev_r, addr_r)):
                    run("ip", "addr", "add", f"{addr}/24", "dev", dev, ns=self.ns[ns])
                    run("ip", "link", "set", dev, "up", ns=self.ns[ns])
                    # As on a LAN: the kernel cuts GSO batches before the wire.
                    run("ip", "link", "set", dev, "gso_max_segs", "1", ns=self.ns[ns])
            for home in ("homeA", "homeB"):
                run("ip", "route", "add", "default", "via", self.address(home, "router", "router"), ns=self.ns[home])
            for node in ("node1", "node2"):
                run("ip", "route", "add", "default", "via", self.gateway_address_for(node), ns=self.ns[node])
            run("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=self.ns["router"])
            uplink = self.devices[("router", "gateway")][0]
            subprocess.run(["ip", "netns", "exec", self.ns["router"], "nft", "-f", "-"], input=(
                "table ip hati_home_nat {\n"
                "  chain post { type nat hook postrouting priority 100; policy accept;\n"
                f'    oifname "{uplink}" masquerade\n'
                "  }\n}\n"), capture_output=True, text=True, check=True, timeout=30)
        except (subprocess.CalledProcessError, FileNotFoundError) as error:
            self.__exit__()
            detail = getattr(error, "stderr", "") or str(error)
            pytest.skip(f"cannot build network namespaces here: {detail.strip()}")
        return self

    def __exit__(self, *_: object) -> None:
        for ns in self.ns.values():
            run("ip", "netns", "del", ns, check=False)


@pytest.fixture
def topology():
    with Topology() as built:
        yield built


class Cluster:
    """A gateway and two nodes on a topology, and the clients' processes."""

    def __init__(self, topology: Topology, workdir: Path, forwarding: str):
        self.topology = topology
        self.workdir = workdir
        self.forwarding = forwarding
        if forwarding == "dnat":
            run("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=topology.ns["gateway"])
        self.gateway = self._host("gateway", APPS + desktop_app(workdir / "unused.log") + "[gateway]\n"
                                  f'node_listen = "0.0.0.0:{NODE_LINK}"\n'
                                  'front_ports = "40000-40099"\n'
                                  f'forwarding = "{forwarding}"\n'
                                  f'nft_table = "hati_gw_test"\n', "0.0.0.0")
        self.gateway.role = ["gateway"]
        self.nodes: dict[str, Host] = {}

    def _host(self, name: str, config: str, bind: str) -> Host:
        host = Host(self.workdir / name, config, bind=bind)
        # Every namespace has its own ports: all use the standard ones.
        host.http_port = HTTP_PORT
        host.https_port = HTTP_PORT - 5
        host.config_path.write_text(config + f'\n[network]\nbind = "{bind}"\nhttp_port = {HTTP_PORT}\nmdns = false\n')
        host.netns = self.topology.ns[name]
        return host

    def start_gateway(self) -> None:
        self.gateway.start()

    def token(self) -> str:
        result = self.gateway.cli("join-token")
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def start_node(self, name: str) -> Host:
        node = self.nodes.get(name) or self._host(
            name, APPS + desktop_app(self.input_log(name)) + f'[node]\nmax_sessions = 1\nname = "{name}"\n',
            "0.0.0.0")
        node.role = ["node", "--gateway", f"{self.topology.gateway_address_for(name)}:{NODE_LINK}",
                     "--token", self.token()]
        self.nodes[name] = node
        mark = self.gateway.bus().position()
        node.start()
        self.gateway.bus().wait_for("node_joined", start=mark, timeout=20, name=name)
        return node

    def input_log(self, node: str) -> Path:
        """What the Wayland test app on `node` logged."""
        return self.workdir / f"input-{node}.log"

    def client(self, home: str, action: str, name: str, *extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.topology.ns[home], sys.executable, str(HERE / "gwclient.py"), action,
             "--host", self.topology.front, "--port", str(HTTP_PORT),
             "--config-dir", str(self.workdir / f"client-{name}"), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def pair(self, home: str, name: str) -> None:
        bus = self.gateway.bus()
        mark = bus.position()
        client = self.client(home, "pair", name)
        try:
            waiting = bus.wait_for("pairing_waiting", start=mark, timeout=30)
            # Both homes reach the gateway from the router's one address.
            assert waiting["address"] == self.topology.masquerade_address, waiting
            result = self.gateway.cli("pair", "4711")
            assert result.returncode == 0, result.stderr
            out, err = client.communicate(timeout=60)
        finally:
            if client.poll() is None:
                client.kill()
        assert "paired" in out, f"{name} did not pair: {out}\n{err[-2000:]}"

    def stop(self) -> None:
        for host in [*self.nodes.values(), self.gateway]:
            host.stop()
        if self.forwarding == "dnat":
            run("nft", "delete", "table", "inet", "hati_gw_test", check=False, ns=self.topology.ns["gateway"])


def outcome(process: subprocess.Popen, timeout: float) -> dict:
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"the client printed no result: {out}\n{err[-3000:]}"
    return json.loads(lines[-1])


def share(result: dict, skip: int = 1) -> float:
    """Frames received from the second `skip` on, as a share of the frame rate."""
    window = result["frames_per_second"][skip:]
    return sum(window) / (FPS * len(window)) if window else 0.0


def node_session(node: Host, session: int) -> dict | None:
    return next((s for s in node.sessions() if s["id"] == session), None)


def started_cluster(topology: Topology, workdir: Path, forwarding: str):
    built = Cluster(topology, workdir, forwarding)
    try:
        built.start_gateway()
        built.start_node("node1")
        built.start_node("node2")
        yield built
    finally:
        built.stop()


@pytest.fixture(params=["relay", "dnat"])
def cluster(request, topology, tmp_path):
    yield from started_cluster(topology, tmp_path, request.param)


@pytest.fixture
def dnat_cluster(topology, tmp_path):
    yield from started_cluster(topology, tmp_path, "dnat")


def test_two_clients_behind_one_nat_get_their_own_nodes(cluster):
    gateway = cluster.gateway
    bus = gateway.bus()
    for home, name in (("homeA", "a"), ("homeB", "b"), ("homeA", "c")):
        cluster.pair(home, name)
    mark = bus.position()
    clients = {name: cluster.client(home, "stream", name, "--seconds", "10", "--input")
               for home, name in (("homeA", "a"), ("homeB", "b"))}
    results = {name: outcome(process, 90) for name, process in clients.items()}
    placed = bus.of_type("session_placed")[-2:]
    report(f"{cluster.forwarding}: two clients behind one NAT: "
           + "; ".join(f"{name}: frames/s {r['frames_per_second']}, audio chunks {r['audio_chunks']}, "
                       f"rms {r['audio_rms']:.2f}" for name, r in results.items())
           + f"; placed on nodes {[p['node'] for p in placed]}")
    for name, result in results.items():
        assert result["error"] is None, f"{name}: {result['error']}"
        assert share(result) >= 0.95, (name, result["frames_per_second"])
        assert result["audio_chunks"] > 0.5 * 10 * 200, (name, result["audio_chunks"])
        assert result["audio_rms"] > 0.05, (name, result["audio_rms"])
    assert len(placed) == 2 and placed[0]["node"] != placed[1]["node"], placed
    # Each client's input reached its own session on its own node, and only there.
    sessions = {p["session"] for p in placed}
    for node in cluster.nodes.values():
        listed = node.sessions()
        assert len(listed) == 1 and listed[0]["id"] in sessions, listed
        assert listed[0]["input_events"] >= 30, listed[0]
    gateway_sessions = gateway.sessions()
    assert {s["id"] for s in gateway_sessions} == sessions, gateway_sessions
    assert all(s["node_name"] for s in gateway_sessions), gateway_sessions
    # The nodes' figures reach the gateway's listing (and its dashboard).
    assert all(s["stats"] and s["stats"]["video_frames"] >= 250 for s in gateway_sessions), gateway_sessions

    # Into the apps themselves: both quit the Test pattern and launch the Wayland test app;
    # A presses "a" and B "b", and each node's app logs only its own client's key.
    for home, name in (("homeA", "a"), ("homeB", "b")):
        assert outcome(cluster.client(home, "quit", name), 60)["error"] is None
    clients = {name: cluster.client(home, "stream", name, "--app", "Wayland test", "--seconds", "5",
                                    "--input", "--key", key)
               for home, name, key in (("homeA", "a", "0x41"), ("homeB", "b", "0x42"))}
    typed = {name: outcome(process, 90) for name, process in clients.items()}
    assert all(r["error"] is None for r in typed.values()), {n: r["error"] for n, r in typed.items()}
    placed = bus.of_type("session_placed")[-2:]
    keys = {}
    for node in cluster.nodes:
        log = cluster.input_log(node).read_text() if cluster.input_log(node).exists() else ""
        keys[node] = {code for code in ("30", "48") if f"keyboard key code={code} state=pressed" in log}
    report(f"{cluster.forwarding}: keys each node's app got (30 = a, 48 = b): {keys}")
    assert sorted(map(sorted, keys.values())) == [["30"], ["48"]], keys

    # A third launch: both nodes are full.
    third = outcome(cluster.client("homeA", "stream", "c", "--seconds", "2"), 60)
    report(f"{cluster.forwarding}: third launch: {third['error']}")
    assert third["error"] and "no free node" in third["error"], third
    assert len(gateway.sessions()) == 2
    ports_in_use = {s["front"]["rtsp"] for s in gateway.sessions()}
    assert len(ports_in_use) == 2, gateway.sessions()


def test_a_lost_node_ends_its_sessions_and_the_next_launch_goes_elsewhere(cluster):
    gateway = cluster.gateway
    bus = gateway.bus()
    cluster.pair("homeA", "a")
    cluster.pair("homeB", "b")
    # Client A takes one node, then quits its app: that node is free again.
    first = outcome(cluster.client("homeA", "stream", "a", "--seconds", "3"), 60)
    assert first["error"] is None, first
    assert outcome(cluster.client("homeA", "quit", "a"), 60)["error"] is None
    mark = bus.position()
    b = cluster.client("homeB", "stream", "b", "--seconds", "15")
    placed = bus.wait_for("session_placed", start=mark, timeout=30)
    victim = next(node for node in cluster.nodes.values() if node_session(node, placed["session"]))
    time.sleep(4)
    killed = time.time()
    victim.kill()  # its private PulseAudio goes with it (test_runners.py checks that)
    lost = bus.wait_for("node_lost", start=mark, timeout=10)
    ended = bus.wait_for("session_ended", start=mark, timeout=10, session=placed["session"])
    delay = lost["time_ms"] / 1000 - killed
    report(f"{cluster.forwarding}: node killed with SIGKILL mid-stream: node_lost after {delay * 1000:.0f} ms "
           f"({lost['reason']}); session_ended reason {ended['reason']}")
    assert delay <= 5.0, lost
    assert ended["reason"] == "node_lost", ended
    outcome(b, 60)
    assert gateway.sessions() == []
    # The next launch lands on the node that is left, and streams.
    mark = bus.position()
    again = outcome(cluster.client("homeB", "stream", "b", "--seconds", "8"), 60)
    placed_again = bus.wait_for("session_placed", start=mark, timeout=5)
    survivor = next(node for node in cluster.nodes.values() if node is not victim)
    report(f"{cluster.forwarding}: relaunch after the loss: frames/s {again['frames_per_second']}")
    assert again["error"] is None, again
    assert share(again) >= 0.95, again
    assert node_session(survivor, placed_again["session"]), survivor.sessions()
    # A node that hangs (SIGSTOP: its link stays open, heartbeats stop) is taken out after 5 s;
    # when it comes back it re-joins, and the session the gateway ended is stopped there too.
    mark = bus.position()
    assert survivor.process is not None
    survivor.process.send_signal(signal.SIGSTOP)
    stopped = time.time()
    try:
        silent = bus.wait_for("node_lost", start=mark, timeout=15)
    finally:
        survivor.process.send_signal(signal.SIGCONT)
    waited = silent["time_ms"] / 1000 - stopped
    report(f"{cluster.forwarding}: node frozen with SIGSTOP: node_lost after {waited:.1f} s ({silent['reason']})")
    assert 4.0 <= waited <= 7.0 and "heartbeat" in silent["reason"], silent
    assert bus.wait_for("session_ended", start=mark, session=placed_again["session"])["reason"] == "node_lost"
    rejoined = bus.wait_for("node_joined", start=mark, timeout=20, name=silent["name"])
    deadline = time.monotonic() + 20
    while node_session(survivor, placed_again["session"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rejoined["sessions"] == 0 and not node_session(survivor, placed_again["session"]), survivor.sessions()
    assert gateway.sessions() == []


def test_a_restarted_gateway_keeps_dnat_streams_and_relearns_them(dnat_cluster):
    """Only DNAT streams bypass the gateway process; relay streams stop with it."""
    cluster = dnat_cluster
    gateway = cluster.gateway
    cluster.pair("homeA", "a")
    bus = gateway.bus()
    mark = bus.position()
    client = cluster.client("homeA", "stream", "a", "--seconds", "20")
    placed = bus.wait_for("session_placed", start=mark, timeout=30)
    time.sleep(5)
    gateway.kill()
    killed = time.monotonic()
    gateway.start()
    # The node re-dials on its own: wait until the new gateway lists the session again.
    listed: list = []
    while time.monotonic() < killed + 15 and not listed:
        listed = gateway.sessions()
        time.sleep(0.1)
    relearnt = time.monotonic() - killed
    result = outcome(client, 60)
    report(f"dnat: gateway killed and restarted mid-stream: frames/s {result['frames_per_second']}; "
           f"the new gateway listed the session {relearnt:.1f} s after the kill")
    assert [s["id"] for s in listed] == [placed["session"]], listed
    assert result["error"] is None, result
    assert share(result) >= 0.95, result["frames_per_second"]
    assert [n["name"] for n in gateway.admin("/nodes")] == ["node1", "node2"] or len(gateway.admin("/nodes")) == 2


def test_launch_to_first_frame_through_the_gateway_against_direct(cluster):
    """Benchmark, one run: a fresh launch to the first decoded frame, through the gateway and
    straight to a single host (`hati serve` in the gateway's namespace, on other ports), taken
    in turns. Figures only; the target (gateway ≤ direct + 50 ms) is judged from them."""
    direct = Host(cluster.workdir / "direct", APPS, bind="0.0.0.0")
    direct.netns = cluster.topology.ns["gateway"]
    direct.http_port, direct.https_port = 48989, 48984
    direct.config_path.write_text(APPS + '\n[network]\nbind = "0.0.0.0"\nhttp_port = 48989\nmdns = false\n')
    direct.start()
    try:
        cluster.pair("homeA", "a")
        mark = direct.bus().position()
        pairing = cluster.client("homeA", "pair", "direct", "--port", "48989")
        direct.bus().wait_for("pairing_waiting", start=mark, timeout=30)
        assert direct.cli("pair", "4711").returncode == 0
        assert "paired" in pairing.communicate(timeout=60)[0]
        times: dict[str, list[float]] = {"direct": [], "gateway": []}
        for _ in range(3):
            for name, extra in (("direct", ("--port", "48989")), ("gateway", ())):
                client = "direct" if name == "direct" else "a"
                result = outcome(cluster.client("homeA", "stream", client, "--seconds", "2", "--quit", *extra), 60)
                assert result["error"] is None and result["first_frame_ms"], (name, result)
                times[name].append(result["first_frame_ms"])
    finally:
        direct.stop()
    median = {name: sorted(values)[len(values) // 2] for name, values in times.items()}
    report(f"{cluster.forwarding}: launch to first frame, median of 3 (each): direct {median['direct']:.0f} ms, "
           f"through the gateway {median['gateway']:.0f} ms ({median['gateway'] - median['direct']:+.0f} ms); "
           f"all: {({k: [round(v) for v in vs] for k, vs in times.items()})}")


def test_strangers_change_nothing(cluster):
    """Hostile LAN, gateway edition: unauthenticated node links are refused and bounded; a peer
    behind the same NAT replaying the client's captured start (RTSP, ENet, pings) to its front
    ports, sending junk there, or sending to a node's own ports, moves no stream and creates
    nothing."""
    gateway = cluster.gateway
    topology = cluster.topology
    cluster.pair("homeA", "a")
    bus = gateway.bus()
    mark = bus.position()
    # Everything the client sends to its front ports while it starts (sealed RTSP requests,
    # ENet, pings) is captured on the gateway's side of the router, to be replayed below.
    captured = cluster.workdir / "captured.json"
    capture = subprocess.Popen(
        ["ip", "netns", "exec", topology.ns["gateway"], sys.executable, str(HERE / "replay.py"), "capture",
         "--device", topology.devices[("router", "gateway")][1], "--to", topology.front,
         "--ports", "40000-40099", "--seconds", "6", "--out", str(captured)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    client = cluster.client("homeA", "stream", "a", "--seconds", "16")
    placed = bus.wait_for("session_placed", start=mark, timeout=30)
    front = next(s["front"] for s in gateway.sessions() if s["id"] == placed["session"])
    node = next(n for n in cluster.nodes.values() if node_session(n, placed["session"]))
    node_ip = topology.node_address(next(k for k, v in cluster.nodes.items() if v is node))
    capture_out, capture_err = capture.communicate(timeout=30)
    assert "captured" in capture_out, capture_err
    # Replayed from homeB, behind the same NAT address as the client.
    replayed = run(sys.executable, str(HERE / "replay.py"), "replay", "--file", str(captured),
                   "--to", topology.front, ns=topology.ns["homeB"], check=False)
    # From homeB (the same masqueraded address as the client): junk and a plain RTSP request
    # to the session's front ports, and datagrams straight to the node's own ports.
    stranger = (
        "import socket, time\n"
        f"front, node = {topology.front!r}, {node_ip!r}\n"
        f"ports = {front!r}\n"
        "for _ in range(50):\n"
        "    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "    for name in ('control', 'video', 'audio'):\n"
        "        u.sendto(b'\\x00' * 16 + b'PINGPINGPINGPING', (front, ports[name]))\n"
        "    for port in (47998, 47999, 48000):\n"
        "        u.sendto(b'PING', (node, port))\n"
        "    u.close()\n"
        "    time.sleep(0.02)\n"
        "for target in ((front, ports['rtsp']), (node, 48010)):\n"
        "    try:\n"
        "        t = socket.create_connection(target, timeout=2)\n"
        "        t.sendall(b'ANNOUNCE rtsp://0.0.0.0 RTSP/1.0\\r\\nCSeq: 1\\r\\nContent-Length: 0\\r\\n\\r\\n')\n"
        "        t.settimeout(2)\n"
        "        print(target, t.recv(200)[:40])\n"
        "    except OSError as e:\n"
        "        print(target, 'error', e)\n"
    )
    probe = run(sys.executable, "-c", stranger, ns=topology.ns["homeB"], check=False)
    # Unauthenticated node links: many bare connections, and one TLS link with a wrong token.
    bare = (
        "import socket, time\n"
        f"conns = [socket.create_connection(({topology.gateway_address_for('node1')!r}, {NODE_LINK}), timeout=2) for _ in range(40)]\n"
        "time.sleep(6)\n"
        "closed = 0\n"
        "for c in conns:\n"
        "    c.settimeout(1)\n"
        "    try:\n"
        "        closed += c.recv(1) == b''\n"
        "    except OSError:\n"
        "        closed += 1\n"
        "print('closed', closed)\n"
    )
    bare_result = run(sys.executable, "-c", bare, ns=topology.ns["node1"], check=False)
    wrong = list(cluster.nodes.values())[0]
    token = cluster.token()
    bad_token = token.split(".")[0] + "." + "0" * 32 + "." + token.split(".")[2]
    bad = Host(cluster.workdir / "intruder", APPS + "[node]\nmax_sessions = 1\n", bind="0.0.0.0")
    bad.config_path.write_text(APPS + f'\n[network]\nbind = "127.0.0.1"\nhttp_port = 45989\nmdns = false\n')
    bad.netns = topology.ns["node1"]
    bad.role = ["node", "--gateway", f"{topology.gateway_address_for('node1')}:{NODE_LINK}", "--token", bad_token]
    bad.start()
    try:
        bad.wait_for_log("the gateway refused this node", timeout=15)
    finally:
        bad.stop()
    result = outcome(client, 60)
    nodes = gateway.admin("/nodes")
    listed = node.sessions()
    report(f"{cluster.forwarding}: strangers: {capture_out.strip()} datagrams and segments of the client's start replayed "
           f"from behind its NAT: {replayed.stdout.strip()[:300]}; session's replayed control messages "
           f"{listed[0]['replayed_control_messages'] if listed else '?'}")
    report(f"{cluster.forwarding}: strangers: probe {probe.stdout.strip()!r}; bare node links: {bare_result.stdout.strip()}; "
           f"stream frames/s {result['frames_per_second']}; session refused pings "
           f"{listed[0]['refused_pings'] if listed else '?'}")
    assert result["error"] is None and share(result) >= 0.95, result
    assert "closed 40" in bare_result.stdout, bare_result.stdout + bare_result.stderr
    assert len(nodes) == 2, nodes
    assert [s["id"] for s in gateway.sessions()] == [placed["session"]]
    assert [s["id"] for s in listed] == [placed["session"]]
    assert wrong.process and wrong.process.poll() is None


def test_a_browser_pairs_at_the_gateway_and_plays_on_a_node(make_host, browser):  # noqa: F811
    """Browser play through a gateway (on this machine's loopback: Chromium runs here): the page
    pairs and signals at the gateway; WebRTC media goes between Chromium and the node."""
    from selenium.webdriver.support.ui import WebDriverWait

    from conftest import free_http_port
    from test_browser import (TEST_PATTERN_RGB, app_id, browser_stats, pair_page, press_toolbar, shot,
                              start_playing, video_colour, wait_until_steady)

    link = free_http_port()
    gateway = make_host(APPS + f'[gateway]\nnode_listen = "127.0.0.1:{link}"\nfront_ports = "41000-41099"\n')
    gateway.role = ["gateway"]
    gateway.start()
    node = make_host(APPS + '[node]\nmax_sessions = 2\nname = "loopback"\n')
    token = gateway.cli("join-token").stdout.strip()
    node.role = ["node", "--gateway", f"127.0.0.1:{link}", "--token", token]
    mark = gateway.bus().position()
    node.start()
    node.bus().wait_for_open()
    gateway.bus().wait_for("node_joined", start=mark, timeout=20)

    pair_page(gateway, browser, "Gateway Chromium")
    test_pattern = app_id(gateway, "Test pattern")
    start_playing(browser, test_pattern, "gateway-1-playing")
    streaming = node.bus().wait_for("session_streaming", timeout=30)
    placed = gateway.bus().wait_for("session_placed", timeout=5)
    assert placed["session"] == streaming["session"], (placed, streaming)
    wait_until_steady(browser, 60)
    before = browser_stats(browser)
    time.sleep(5)
    after = browser_stats(browser)
    frames = after["framesDecoded"] - before["framesDecoded"]
    audio = after["audioPacketsReceived"] - before["audioPacketsReceived"]
    colour = video_colour(browser)
    relayed = gateway.sessions()
    report(f"browser through the gateway, Test pattern 1280x720@60 on node 'loopback' for 5 s: {frames} frames "
           f"decoded (of 300), {audio} audio packets, most common colour {colour}")
    assert frames >= 270, frames
    assert audio > 0
    assert all(abs(c - e) <= 24 for c, e in zip(colour, TEST_PATTERN_RGB)), colour
    assert [s["id"] for s in relayed] == [placed["session"]] and "relay" not in relayed[0], relayed
    # The gateway's dashboard (a second tab) shows the node and where the session runs.
    main = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.get(f"http://127.0.0.1:{gateway.http_port}/dashboard")
    WebDriverWait(browser, 20).until(lambda d: d.find_elements("id", "node-1") and d.find_elements(
        "css selector", f"#session-{placed['session']} .state"))
    WebDriverWait(browser, 20).until(lambda d: "on loopback" in d.find_element(
        "css selector", f"#session-{placed['session']} .state").text)
    node_row = browser.find_element("id", "node-1").text
    shot(browser, "gateway-dashboard")
    report(f"gateway dashboard: node row {node_row!r}")
    assert "loopback" in node_row and "1 / 2" in node_row, node_row
    browser.close()
    browser.switch_to.window(main)
    # Back to the list pauses the session on the node; Resume streams it again through the gateway.
    press_toolbar(browser, "back")
    node.bus().wait_for("session_paused", session=placed["session"], timeout=20)
    # The list re-renders as the node's events arrive: a button found a moment ago may be
    # replaced before the click lands (a StaleElementReferenceException, seen in CI), so the
    # wait finds and clicks it as one step and tries again on a replaced one.
    from selenium.common.exceptions import StaleElementReferenceException
    WebDriverWait(browser, 20, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: d.find_element("id", f"resume-{test_pattern}").click() or True)
    node.bus().wait_for("session_resumed", session=placed["session"], timeout=20)
    wait_until_steady(browser, 60)
    shot(browser, "gateway-2-resumed")
    press_toolbar(browser, "quit")
    ended = gateway.bus().wait_for("session_ended", session=placed["session"], timeout=20)
    assert ended["reason"] == "cancelled", ended
    assert gateway.sessions() == [] and node.sessions() == []
