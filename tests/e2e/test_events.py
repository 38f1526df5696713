"""The host's event bus as the admin API streams it (`GET /api/v1/events`, Server-Sent Events):
one event for every state change of pairing and of a session's life, and stream statistics once
a second, read here instead of log text."""

from __future__ import annotations

import time

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
    time.sleep(3)
    stats = events.of_type("stream_stats", session=session)
    assert len(stats) >= 2, stats
    frames = [s["video_frames"] for s in stats]
    assert frames == sorted(frames) and frames[-1] > frames[0], frames
    last = stats[-1]
    assert last["fps"] >= 50 and last["bitrate_kbps"] > 0, last
    assert 0 < last["host_latency_p50_ms"] <= last["host_latency_p99_ms"] < 200, last
    assert last["fec_percentage"] == 20
    report(f"stream_stats at 720p60: fps {last['fps']}, {last['bitrate_kbps']} kbit/s, "
           f"{last['video_packets']} packets after {len(stats)} s, host latency p50 "
           f"{last['host_latency_p50_ms']} ms p99 {last['host_latency_p99_ms']} ms")

    client.stop_stream()
    events.wait_for("session_paused", session=session)
    mark = events.position()
    client.start_stream(app="Test pattern", width=WIDTH, height=HEIGHT, fps=FPS, ready_timeout=20)
    events.wait_for("session_resumed", session=session, start=mark)
    events.wait_for("session_streaming", session=session, start=mark)
    client.stop_stream()
    client.quit_app()
    ended = events.wait_for("session_ended", session=session)
    assert ended["reason"] == "cancelled"
    time.sleep(0.5)
    assert len(events.of_type("session_ended", session=session)) == 1

    result = host.cli("unpair", paired["client_id"][:12])
    assert result.returncode == 0, result.stderr
    events.wait_for("client_unpaired", client_id=paired["client_id"])
    kinds = [e["type"] for e in events.events if e["type"] != "stream_stats"]
    report("event sequence: " + ", ".join(kinds))
    events.close()
