"""The session core under races and churn, with the real client library: an end that lands
while an ANNOUNCE starts the pipelines, a client whose start failed launching again, many
sessions from one address started right after the previous ones ended."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from moonlight_python import MoonlightClient

from conftest import report
from test_pairing import pair
from test_runners import host_threads
from test_streaming import measure

GWCLIENT = Path(__file__).with_name("gwclient.py")


def sender_threads(pid: int) -> list[str]:
    """The host's video sender threads (`hati-send-<session>`): each stream has one, joined
    when its pipelines stop. (GStreamer's streaming threads are no such sign: idle ones wait in
    GLib's thread pool under the name of their last task.)"""
    return sorted(name for name in host_threads(pid) if name.startswith("hati-send-"))


def test_an_end_during_announce_leaves_no_pipeline(make_host, tmp_path):
    host = make_host()
    # Debug builds only: the new stream waits 3 s between its pipelines starting and being
    # stored in the session; the session is stopped inside that window.
    host.env["HATI_TEST_HOLD_NEW_STREAM_MS"] = "3000"
    host.start()
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    events = host.event_reader()

    # First prove the check sees a stream's threads while it runs.
    client.start_stream(app="Test pattern", width=640, height=360, fps=30, ready_timeout=30)
    try:
        streaming = sender_threads(host.process.pid)
        assert any(n.startswith("hati-send-") for n in streaming), streaming
        pipelines = host.admin("/pipelines")
        assert {p["name"].split("-")[1] for p in pipelines} == {"video", "audio"}, pipelines
        report(f"a running stream: sender threads {streaming}, pipelines {pipelines}")
    finally:
        client.stop_stream()
    client.quit_app()
    first = events.wait_for("session_launched")["session"]
    events.wait_for("session_ended", session=first)

    mark = events.position()
    log_mark = host.log_position()
    # The client that starts the stream runs in a process of its own: moonlight-common-c has
    # crashed (SIGSEGV, once in a CI run) in LiStartConnection when the host ends the session
    # under it, and a crash in the test's own process would end the whole pytest run. Where
    # the client ends (an error, or even a crash) is its business; this test is about the host.
    starter = subprocess.Popen(
        [sys.executable, str(GWCLIENT), "stream", "--host", "127.0.0.1", "--port", str(host.http_port),
         "--config-dir", str(tmp_path / "client"), "--width", "640", "--height", "360", "--fps", "30",
         "--seconds", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    session = events.wait_for("session_launched", start=mark)["session"]
    host.wait_for_log("test hook: holding the new stream", start=log_mark)
    stopped = host.cli("stop", str(session))
    assert stopped.returncode == 0, stopped.stderr
    ended = events.wait_for("session_ended", start=mark, session=session)
    assert ended["reason"] == "stopped", ended
    # `session_ended` comes after everything the session held is released: the stream that
    # was starting too, although its ANNOUNCE has not been answered yet.
    at_end = sender_threads(host.process.pid)
    pipelines_at_end = [p for p in host.admin("/pipelines") if p["name"].endswith(f"-{session}")]
    report(f"end during ANNOUNCE, at session_ended: sender threads {at_end}, pipelines {pipelines_at_end}")
    assert not at_end, f"the ended session's sender thread runs: {at_end}"
    assert not pipelines_at_end, f"the ended session's pipelines exist: {pipelines_at_end}"
    # The ANNOUNCE's answer comes after the hold; by then the stream must be gone too.
    try:
        out, err = starter.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        starter.kill()
        raise AssertionError("the client's start never returned") from None
    outcome = (out.strip().splitlines() or [f"no result; exit status {starter.returncode}: {err.strip()[-300:]}"])[-1]
    left = sender_threads(host.process.pid)
    pipelines = [p for p in host.admin("/pipelines") if p["name"].endswith(f"-{session}")]
    report(f"end during ANNOUNCE: client start {outcome}; sender threads left {left}, "
           f"pipelines left {pipelines}")
    assert not left, f"the ended session's sender thread still runs: {left}"
    assert not pipelines, f"the ended session's pipelines still exist: {pipelines}"
    assert host.sessions() == []
    assert not events.of_type("session_streaming", session=session), "an ended session streamed"
    events.close()


def raw_launch(client: MoonlightClient, app_title: str) -> str | None:
    """`/launch` alone, as a client whose RTSP or control handshake then fails leaves it."""
    http = client._http
    app = next(a for a in http.get_app_list() if a.name == app_title)
    # Stereo (surroundAudioInfo 0x30002), H.264 only.
    return http.launch_app(app.id, 640, 360, 30, 5000, 0x0001, os.urandom(16), os.urandom(16), 0x30002)


def test_a_client_whose_start_failed_can_launch_again(host, tmp_path):
    """A client launches and never starts its stream: its next launch gets a fresh session
    instead of "An app is already running", and that one streams."""
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    events = host.event_reader()
    raw_launch(client, "Test pattern")
    stale = events.wait_for("session_launched")["session"]

    mark = events.position()
    raw_launch(client, "Test pattern")
    ended = events.wait_for("session_ended", session=stale)
    fresh = events.wait_for("session_launched", start=mark)["session"]
    assert fresh != stale
    assert ended["reason"] == "cancelled", ended
    # The fresh session is the client's current game: start_stream resumes it and streams.
    client.start_stream(app="Test pattern", width=640, height=360, fps=30, ready_timeout=30)
    try:
        events.wait_for("session_resumed", start=mark, session=fresh)
        result = measure(client, 3)
    finally:
        client.stop_stream()
    report(f"relaunch after a failed start: stale session {stale} ended ({ended['reason']}), "
           f"new session {fresh}: {result.frames} frames in {result.seconds:.1f} s")
    assert result.frames >= 0.9 * 3 * 30, result.summary("too few frames")
    events.close()


def test_twelve_quick_reconnects_from_one_address(host, tmp_path):
    """A client that connects and disconnects twelve times in a row, from one address (each
    connection its own control tunnel through the gate): every start gets its control stream.
    The gate used to keep a disconnected client's tunnel for 15 s and allow 8 per address, so
    the 9th start here failed at stage 8 (the control stream)."""
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    events = host.event_reader()
    started = 0
    for _ in range(12):
        client.start_stream(app="Test pattern", width=320, height=180, fps=30, ready_timeout=30)
        started += 1
        # A picture before stopping, as a person would see: moonlight-common-c's
        # LiStopConnection right after LiStartConnection crashed the test process once (SIGSEGV
        # in the client library, in the CI run of 2026-12-07).
        with client.latest_frame() as frames:
            frames.get(timeout=10)
        client.stop_stream()
    session = events.wait_for("session_launched")["session"]
    resumed = len(events.of_type("session_resumed", session=session))
    report(f"quick reconnects from one address: {started} of 12 starts streamed ({resumed} resumes)")
    assert resumed == 11
    client.quit_app()
    events.wait_for("session_ended", session=session)
    events.close()
