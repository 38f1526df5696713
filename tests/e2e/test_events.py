"""The host's event bus as the admin API streams it (`GET /api/v1/events`, Server-Sent Events):
one event for every state change of pairing and of a session's life, and stream statistics once
a second, read here instead of log text."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

from moonlight_python import MoonlightClient

from conftest import report
from test_pairing import pair
from test_streaming import FPS, HEIGHT, WIDTH


def test_pairing_and_a_session_life_arrive_as_events(host, tmp_path):
    events = host.event_reader()
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    waiting = events.wait_for("pairing_waiting")
    paired = events.wait_for("paired", attempt=waiting["attempt"])

    client.start_stream(app="Test pattern", width=WIDTH, height=HEIGHT, fps=FPS, ready_timeout=20)
    launched = events.wait_for("session_launched", app="Test pattern")
    session = launched["session"]
    streaming = events.wait_for("session_streaming", session=session)
    assert (streaming["width"], streaming["height"], streaming["fps"]) == (WIDTH, HEIGHT, FPS)
    # Three seconds of statistics (one event a second): wait for the third, not for the clock.
    mark = events.position()
    for _ in range(3):
        events.wait_for("stream_stats", session=session, start=mark, timeout=10)
        mark = events.position()
    stats = events.of_type("stream_stats", session=session)
    assert len(stats) >= 3, stats
    frames = [s["video_frames"] for s in stats]
    assert frames == sorted(frames) and frames[-1] > frames[0], frames
    last = stats[-1]
    assert last["fps"] >= 50 and last["bitrate_kbps"] > 0, last
    # docs/performance.md measured 2.4 / 3.3 ms (p50 / p99) for this stream (720p60 Test
    # pattern) on the 2-core CI machine, with a release build. The bound leaves a margin of about
    # 6x on p99 for the debug build `make test` uses and for a noisy, shared CI machine; a frame
    # held back a frame interval (the old `videorate`: 19.1 / 20.5 ms there) fails it.
    assert 0 < last["host_latency_p50_ms"] <= last["host_latency_p99_ms"] < 20, last
    assert last["fec_percentage"] == 20
    # Client-reported loss: a clean loopback stream loses nothing.
    assert last["client_frames_lost"] == 0 and last["client_frames_dropped"] == 0, last
    assert host.sessions()[0]["state"] == "streaming"
    report(f"stream_stats at 720p60: fps {last['fps']}, {last['bitrate_kbps']} kbit/s, "
           f"{last['video_packets']} packets after {len(stats)} s, host latency p50 "
           f"{last['host_latency_p50_ms']} ms p99 {last['host_latency_p99_ms']} ms")

    client.stop_stream()
    events.wait_for("session_paused", session=session)
    assert host.sessions()[0]["state"] == "paused"
    mark = events.position()
    client.start_stream(app="Test pattern", width=WIDTH, height=HEIGHT, fps=FPS, ready_timeout=20)
    events.wait_for("session_resumed", session=session, start=mark)
    events.wait_for("session_streaming", session=session, start=mark)
    client.stop_stream()
    client.quit_app()
    ended = events.wait_for("session_ended", session=session)
    assert ended["reason"] == "cancelled"

    result = host.cli("unpair", paired["client_id"][:12])
    assert result.returncode == 0, result.stderr
    events.wait_for("client_unpaired", client_id=paired["client_id"])
    # Exactly once, counted after the unpairing rather than after a bare sleep: a second end
    # path racing the first has had the CLI's run to publish a duplicate.
    assert len(events.of_type("session_ended", session=session)) == 1
    kinds = [e["type"] for e in events.events if e["type"] != "stream_stats"]
    report("event sequence: " + ", ".join(kinds))
    events.close()


def test_admin_api_on_a_tcp_port_needs_the_bearer_token(make_host):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host = make_host(f'[admin]\nlisten = "127.0.0.1:{port}"\n').start()
    token = (host.state_dir / "api-token").read_text().strip()
    base = f"http://127.0.0.1:{port}/api/v1"

    def get(path: str, headers: dict[str, str]) -> tuple[int, dict]:
        request = urllib.request.Request(base + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    # Even from this machine: the TCP port has no page and no loopback exemption.
    status, body = get("/status", {})
    assert status == 401 and "api-token" in body["error"], (status, body)
    status, body = get("/status", {"Authorization": "Bearer not-the-token"})
    assert status == 401, (status, body)
    status, body = get("/status", {"Authorization": f"Bearer {token}"})
    assert status == 200 and body["hostname"], (status, body)
    reload = urllib.request.Request(base + "/reload", method="POST", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(reload, timeout=10) as response:
        assert json.loads(response.read())["reloaded"]["apps"] >= 1
    report(f"admin API on TCP {port}: 401 without or with a wrong token, 200 with it")
