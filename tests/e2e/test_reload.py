"""Live config reload (`hati reload`, SIGHUP): apps and pipelines change for sessions launched
afterwards while a running one keeps streaming; a broken file is refused with the key-and-line
message of start-up, and the old config stays in force."""

from __future__ import annotations

import re

import numpy as np

from moonlight_python import MoonlightClient

from conftest import report
from test_pairing import pair
from test_streaming import assert_good_stream, measure

WIDTH, HEIGHT, FPS = 640, 360, 60
APP = '[[apps]]\ntitle = "Reloadable"\ncompositor = false\n[apps.video]\nsource = "videotestsrc is-live=true pattern={pattern}"\n'


def dominant_colour(client: MoonlightClient) -> str:
    with client.latest_frame() as frames:
        frame = frames.get(timeout=5).data
    # Frames are BGR.
    b, g, r = (float(c) for c in np.asarray(frame, dtype=np.float32).reshape(-1, 3).mean(axis=0))
    return max((("red", r), ("green", g), ("blue", b)), key=lambda kv: kv[1])[0]


def colour_of_new_session(client: MoonlightClient) -> str:
    """Launches Reloadable, reads its colour, stops the stream."""
    client.start_stream(app="Reloadable", width=WIDTH, height=HEIGHT, fps=FPS, ready_timeout=20)
    try:
        return dominant_colour(client)
    finally:
        client.stop_stream()


def test_reload_changes_new_sessions_keeps_running_ones_and_refuses_broken_files(make_host, tmp_path):
    host = make_host(APP.format(pattern="red")).start()
    events = host.event_reader()
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    client.start_stream(app="Reloadable", width=WIDTH, height=HEIGHT, fps=FPS, ready_timeout=20)
    try:
        assert dominant_colour(client) == "red"
        host.config_path.write_text(host.config_path.read_text().replace("pattern=red", "pattern=green"))
        result = host.cli("reload")
        assert result.returncode == 0, result.stderr
        assert events.wait_for("config_reloaded")["apps"] == 1
        # The running session keeps its pipeline and keeps streaming.
        during = measure(client, 3)
        still = dominant_colour(client)
    finally:
        client.stop_stream()
    report(during.summary("running session across a reload"))
    assert_good_stream(during)
    assert still == "red", "the running session was switched to the new pipeline"
    client.quit_app()

    # A session launched now uses the reloaded pipeline.
    assert colour_of_new_session(client) == "green"
    client.quit_app()

    # A broken file is refused with the start-up message and the old config stays.
    good = host.config_path.read_text()
    host.config_path.write_text(good + "\n[streaming]\nfec_percentage = 300\n")
    result = host.cli("reload")
    report(f"broken reload: {result.stderr.strip()}")
    assert result.returncode != 0
    # The start-up format: `FILE:LINE: key `streaming.fec_percentage`: …`.
    assert re.search(r"config\.toml:\d+: key `streaming\.fec_percentage`", result.stderr), result.stderr
    assert "the running config stays" in result.stderr
    assert "fec_percentage" in events.wait_for("config_refused")["error"]
    assert colour_of_new_session(client) == "green"
    events.close()
