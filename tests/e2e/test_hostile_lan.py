"""A hostile neighbour on the LAN (issue: sessions that last an evening, and a host that a
hostile LAN peer cannot stop or hijack). Each test plays one attack against a real `hati serve`
while a paired real client (moonlight-common-c) streams, and checks the client is unaffected
and the host's state unchanged."""

from __future__ import annotations

import os
import resource
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from moonlight_python import MoonlightClient

from conftest import report
from lan import EnetPeer, UdpSniffer, connect_datagram, enet_payloads
from test_pairing import PairingAttempt, pair
from test_streaming import FPS, HEIGHT, WIDTH, assert_good_stream, measure


def ports(host) -> dict[str, int]:
    base = host.http_port
    return {"rtsp": base + 21, "video": base + 9, "control": base + 10, "audio": base + 11}


@pytest.fixture
def paired(host, tmp_path):
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    return host, client


def start(client: MoonlightClient) -> None:
    client.start_stream(app="Test pattern", width=WIDTH, height=HEIGHT, fps=FPS, codec="h264", ready_timeout=20)


def wait_until(what: str, condition, timeout: float = 10.0):
    """Polls `condition` until it returns something true (returned) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def test_connect_flood_does_not_keep_a_client_out(paired):
    host, client = paired
    control = ("127.0.0.1", ports(host)["control"])
    flooder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flooder.bind(("127.0.0.1", 0))
    stop = threading.Event()
    sent = [0]

    def flood() -> None:
        # The burst that used to fill every peer slot, then a steady 20/s, all from one socket:
        # garbage, CONNECTs for no session, and CONNECTs with the live session's connect data
        # (sent in clear by the real client) with a new connect ID each time.
        for k in range(200):
            flooder.sendto(connect_datagram(k, 0x1234_5678), control)
            sent[0] += 1
        k = 0
        while not stop.is_set():
            sessions = host.sessions()
            live = sessions[0]["id"] if sessions else 0
            for datagram in (os.urandom(48), connect_datagram(1000 + k, 0), connect_datagram(2000 + k, live)):
                flooder.sendto(datagram, control)
                sent[0] += 1
            k += 1
            time.sleep(3 / 20)

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        start(client)
        result = measure(client, 6)
    finally:
        stop.set()
        thread.join(timeout=5)
        client.stop_stream()
    report(result.summary(f"while one socket flooded the control port ({sent[0]} datagrams)"))
    assert_good_stream(result)
    host.wait_for_log("control datagram dropped at the gate")


def raise_own_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.fail(f"the test needs {needed} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def test_idle_connections_do_not_lock_out_a_client_under_1024_fds(make_host, tmp_path):
    raise_own_fd_limit(2048)  # 1 100 held sockets and the client's own
    host = make_host()
    host.nofile = 1024  # systemd's default soft limit, as `ulimit -n 1024` sets it
    host.start()
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    held: list[socket.socket] = []
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    started = time.monotonic()
    tls_ok = 0
    try:
        for k in range(550):
            # Half-sent requests on HTTP ...
            s = socket.create_connection(("127.0.0.1", host.http_port), timeout=5)
            s.sendall(b"GET /serverinfo HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            held.append(s)
            # ... and TLS connections that finish the handshake and send nothing.
            t = socket.create_connection(("127.0.0.1", host.https_port), timeout=5)
            try:
                held.append(context.wrap_socket(t))
                tls_ok += 1
            except (ssl.SSLError, OSError):
                held.append(t)  # evicted during its handshake: still an open socket here
        opened = time.monotonic() - started
        info = urllib.request.urlopen(f"http://127.0.0.1:{host.http_port}/serverinfo", timeout=10).read().decode()
        assert "<hostname>" in info
        start(client)
        try:
            result = measure(client, 4)
        finally:
            client.stop_stream()
    finally:
        closed_by_host = 0
        for s in held:
            try:
                s.setblocking(False)
                if s.recv(1) == b"":
                    closed_by_host += 1
            except (BlockingIOError, ssl.SSLWantReadError):
                pass
            except OSError:
                closed_by_host += 1
            s.close()
    report(
        f"{len(held)} idle connections ({tls_ok} TLS handshakes done) opened in {opened:.1f} s under a 1024-fd host; "
        f"the host had closed {closed_by_host} of them; /serverinfo answered"
    )
    report(result.summary("stream while 1100 idle connections were held"))
    assert_good_stream(result)


def test_half_sent_requests_and_idle_tls_time_out(host):
    plain = socket.create_connection(("127.0.0.1", host.http_port), timeout=30)
    plain.sendall(b"GET /serverinfo HTTP/1.1\r\n")
    raw = socket.create_connection(("127.0.0.1", host.https_port), timeout=30)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    tls = context.wrap_socket(socket.create_connection(("127.0.0.1", host.https_port), timeout=30))
    started = time.monotonic()
    durations = []
    for s in (plain, raw, tls):
        try:
            while s.recv(4096):
                pass
        except (ConnectionResetError, ssl.SSLError):
            pass
        durations.append(time.monotonic() - started)
        s.close()
    report("idle connections closed by the host after " + ", ".join(f"{d:.1f} s" for d in durations))
    assert max(durations) < 15, durations


def test_cross_site_pin_post_is_refused_and_nobody_paired(host, tmp_path):
    client = MoonlightClient(config_dir=tmp_path / "client")
    bus = host.bus()  # subscribed before the client asks, so its event is not missed
    attempt = PairingAttempt(client, host, "1337")
    bus.wait_for("pairing_waiting")
    page = f"http://127.0.0.1:{host.http_port}/pin"
    forged = [
        # What a web page can send cross-site without a preflight: text/plain, its own Origin.
        ({"Origin": "http://evil.example", "Content-Type": "text/plain"}, b"pin=1337"),
        ({"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"}, b"pin=1337"),
        # No Origin (an old browser), a form post, but no form token from the page.
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"pin=1337"),
        # DNS rebinding: the page addressed by the attacker's name.
        ({"Host": "evil.example", "Content-Type": "application/x-www-form-urlencoded"}, b"pin=1337"),
    ]
    for headers, body in forged:
        request = urllib.request.Request(page, data=body, headers=headers, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403, (headers, refused.value.code)
    time.sleep(0.5)
    status = host.admin("/status")
    clients = host.admin("/clients")
    report(f"cross-site PIN posts refused: {len(forged)}; paired clients {len(clients)}")
    assert clients == [], clients
    assert status["client_waiting_for_pin"] is True, status
    # The owner can still pair the waiting client the honest way.
    assert host.cli("pair", "1337").returncode == 0
    attempt.join()
    assert attempt.error is None, attempt.error


def test_replayed_control_messages_are_ignored_and_strangers_not_attached(paired):
    host, client = paired
    sniffer = UdpSniffer(ports(host)["control"])
    start(client)
    try:
        replay_and_stranger(host, client, sniffer)
    finally:
        client.stop_stream()


def replay_and_stranger(host, client, sniffer) -> None:
    try:
        time.sleep(1.0)
        # One input event, sealed by the client: the message an attacker would most like to
        # replay (it types or clicks).
        ffi_library = __import__("test_desktop").limelight()
        ffi_library[1].LiSendMouseMoveEvent(5, 0)
        # A quiet second, not a wait for an event: the counters below must be taken once the
        # client's own input (which comes in several messages) has stopped arriving.
        time.sleep(1.0)
    finally:
        sniffer.close()
    sealed = [p for _, _, d in sniffer.captured() for p in enet_payloads(d) if p[:2] == b"\x01\x00"]
    assert sealed, "no sealed control message was captured"
    session = host.sessions()[0]
    before = {k: session[k] for k in ("input_events", "idr_requests", "replayed_control_messages")}
    assert before["input_events"] >= 1

    attacker = EnetPeer(("127.0.0.1", ports(host)["control"]), session["id"])
    assert attacker.connect(), "the gate refused a CONNECT with the live connect data"
    replays = sealed[-3:]
    for payload in replays:
        attacker.send_reliable(payload)
    # Each replay is counted as refused when the host handles it: once all are, none was applied
    # later (they arrive in order on one reliable channel).
    wanted = before["replayed_control_messages"] + len(replays)
    after = wait_until("the host to refuse every replay", lambda: (
        s := host.sessions()[0])["replayed_control_messages"] >= wanted and s)
    report(f"replayed {len(replays)} captured sealed control messages: counters {before} -> "
           f"{ {k: after[k] for k in before} }")
    assert after["input_events"] == before["input_events"], "a replayed input message was applied"
    assert after["idr_requests"] == before["idr_requests"]
    assert after["replayed_control_messages"] - before["replayed_control_messages"] == len(replays)
    attacker.close()

    # A peer that knows only the connect data and sends garbage is never attached.
    stranger = EnetPeer(("127.0.0.1", ports(host)["control"]), session["id"])
    assert stranger.connect()
    for _ in range(4):
        stranger.send_reliable(b"\x01\x00" + os.urandom(40))
    host.wait_for_log("control connection dropped: its messages do not open with the session key")
    stranger.close()
    result = measure(client, 3)
    assert_good_stream(result)


def test_plain_rtsp_to_an_encrypted_session_is_refused(paired):
    host, client = paired
    start(client)
    try:
        announce = (
            f"ANNOUNCE rtsp://127.0.0.1:{ports(host)['rtsp']} RTSP/1.0\r\nCSeq: 7\r\n"
            "X-GS-ClientVersion: 14\r\nContent-type: application/sdp\r\nContent-length: 0\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", ports(host)["rtsp"]), timeout=10) as rtsp:
            rtsp.sendall(announce)
            reply = rtsp.recv(4096).decode(errors="replace")
        report(f"plain ANNOUNCE to an rtspenc session: {reply.splitlines()[0] if reply else '(no reply)'}")
        assert reply.startswith("RTSP/1.0 403"), reply
        host.wait_for_log("plain RTSP request refused")
        result = measure(client, 3)
    finally:
        client.stop_stream()
    assert_good_stream(result)


def test_pings_from_elsewhere_do_not_move_a_streaming_session(paired):
    host, client = paired
    video_port, audio_port = ports(host)["video"], ports(host)["audio"]
    sniffer = UdpSniffer(video_port)
    try:
        start(client)
        pings = wait_until("a client ping on the wire", lambda: [d for _, _, d in sniffer.captured() if len(d) == 20])
    finally:
        sniffer.close()
    payload = pings[-1][:16]
    session = host.sessions()[0]
    target = session["video_target"]
    try:
        other_port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other_port.bind(("127.0.0.1", 0))
        other_address = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other_address.bind(("127.0.0.2", 0))
        for k in range(40):
            ping = payload + k.to_bytes(4, "big")
            for sender in (other_port, other_address):
                sender.sendto(ping, ("127.0.0.1", video_port))
                sender.sendto(ping, ("127.0.0.1", audio_port))
                sender.sendto(b"PING", ("127.0.0.1", video_port))
            time.sleep(0.05)
        result = measure(client, 3)
        after = host.sessions()[0]
    finally:
        client.stop_stream()
    report(
        f"pings from another port and address: video target {target} -> {after['video_target']}, "
        f"target changes {after['target_changes']}, refused pings {after['refused_pings']}"
    )
    report(result.summary("stream while pinged from elsewhere"))
    assert after["video_target"] == target
    assert after["target_changes"] == 2, "only the first video and audio pings may set a target"
    assert after["refused_pings"] >= 160
    assert_good_stream(result)


def test_plain_http_unpair_is_refused_and_the_client_stays_paired(paired):
    host, client = paired
    query = urllib.parse.urlencode({"uniqueid": "0123456789ABCDEF", "uuid": "abc"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{host.http_port}/unpair?{query}", timeout=10)
    body = refused.value.read().decode()
    report(f"plain-HTTP /unpair: HTTP {refused.value.code}, {body.strip()[:120]}")
    assert refused.value.code == 403
    assert 'status_code="403"' in body and "hati unpair" in body
    assert client.apps(), "the client lost its pairing"


def play_request(host, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, str]:
    """One plain-HTTP request to the play page's API; (status, body)."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", host.http_port, timeout=15)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        reply = connection.getresponse()
        return reply.status, reply.read().decode(errors="replace")
    finally:
        connection.close()


def test_play_endpoints_refuse_strangers_and_bound_what_they_hold(host):
    """What a LAN neighbour or another site's page can do to browser play: nothing that pairs,
    launches, or holds a connection past the hello timeout."""
    import websocket

    events = host.event_reader()
    origin = f"http://127.0.0.1:{host.http_port}"
    # Another site's page can post a form (text/plain, no preflight) at the pairing API.
    status, body = play_request(host, "POST", "/play/api/pair", b'{"name":"evil","pin":"1234"}',
                                {"Content-Type": "text/plain", "Origin": "http://evil.example"})
    report(f"cross-site form post to /play/api/pair: HTTP {status} {body.strip()}")
    assert status == 415, body
    # No credential, a made-up one: no app list, no quit.
    for headers in ({}, {"Authorization": "Bearer " + "ab" * 32}):
        status, body = play_request(host, "GET", "/play/api/apps", headers=headers)
        assert status == 401, (headers, status, body)
        status, body = play_request(host, "POST", "/play/api/quit", headers=headers)
        assert status == 401, (headers, status, body)
    # Another origin's WebSocket is refused before the upgrade.
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"ws://127.0.0.1:{host.http_port}/play/ws", origin="http://evil.example", timeout=10)
    report(f"WebSocket from another origin: HTTP {refused.value.status_code}")
    assert refused.value.status_code == 403
    # Same origin but a forged credential: an error names the problem, nothing launches.
    ws = websocket.create_connection(f"ws://127.0.0.1:{host.http_port}/play/ws", origin=origin, timeout=10)
    ws.send('{"type":"hello","token":"' + "cd" * 32 + '","app_id":1,"width":1280,"height":720,"fps":60}')
    replies = []
    try:
        while True:
            replies.append(ws.recv())
    except (websocket.WebSocketConnectionClosedException, websocket.WebSocketTimeoutException):
        pass
    report(f"forged credential over the WebSocket: {replies}")
    assert any('"error"' in r for r in replies), replies
    # Idle WebSockets (no hello) are closed after the hello timeout, so 40 of them hold nothing.
    idle = [websocket.create_connection(f"ws://127.0.0.1:{host.http_port}/play/ws", origin=origin, timeout=15)
            for _ in range(40)]
    started = time.monotonic()
    closed = 0
    for ws in idle:
        try:
            while True:
                ws.recv()
        except (websocket.WebSocketConnectionClosedException, websocket.WebSocketTimeoutException, ConnectionError):
            closed += 1
    took = time.monotonic() - started
    report(f"40 idle WebSockets: {closed} closed by the host within {took:.1f} s")
    assert closed == 40 and took < 14, (closed, took)
    time.sleep(0.5)
    kinds = {e["type"] for e in events.events}
    assert not kinds & {"pairing_waiting", "paired", "session_launched"}, kinds
    events.close()
