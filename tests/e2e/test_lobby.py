"""Play together (docs/play-together.md): an owner's running session opened as a lobby, joined by
other paired clients through the "Join:" entry in their /applist, each a real moonlight-common-c
client in its own process with its own stream mode; the app (the repo's Wayland test client)
logs whose keys reach it. Also PINs, roles, kicking and the owner's end closing the lobby."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moonlight_python import MoonlightClient
from moonlight_python.exceptions import HttpResponseError

from conftest import HATI_BIN, report
from test_dashboard import browser, shot  # noqa: F401 - the Chromium fixture
from test_pairing import pair

TEST_CLIENT = Path(HATI_BIN).with_name("hati-test-client")
GWCLIENT = Path(__file__).with_name("gwclient.py")
APP = "Wayland test"
# The Windows virtual keys each client presses and the evdev codes the app logs for them.
OWNER_KEY, GUEST_KEY, SPECTATOR_KEY = (0x41, 30), (0x42, 48), (0x43, 46)
# The test client's picture: a colour per quadrant (BGR).
PATTERN = {"top_left": (0, 0, 255), "top_right": (0, 255, 0), "bottom_left": (255, 0, 0), "bottom_right": (255, 255, 255)}


def wayland_host(make_host, log: Path):
    if not TEST_CLIENT.exists():
        pytest.fail(f"{TEST_CLIENT} is missing: build the workspace binaries first")
    return make_host(
        f'[[apps]]\ntitle = "{APP}"\ncompositor = true\n[apps.runner]\ntype = "process"\n'
        f'cmd = "{TEST_CLIENT}"\nenv = ["HATI_TEST_CLIENT_LOG={log}"]\n'
    ).start()


def pair_as(host, directory: Path, role: str | None) -> dict:
    """Pairs a new client (config in `directory`), gives it `role`; its listing."""
    before = {c["id"] for c in host.admin("/clients")}
    pair(host, MoonlightClient(config_dir=directory))
    (listed,) = [c for c in host.admin("/clients") if c["id"] not in before]
    if role:
        result = host.cli("clients", "set", listed["id"][:16], "--role", role)
        assert result.returncode == 0, result.stderr
    return listed


def spawn_stream(host, directory: Path, app: str, width: int, height: int, fps: int, seconds: float,
                 key: int | None) -> subprocess.Popen:
    argv = [sys.executable, str(GWCLIENT), "stream", "--host", "127.0.0.1", "--port", str(host.http_port),
            "--config-dir", str(directory), "--app", app, "--width", str(width), "--height", str(height),
            "--fps", str(fps), "--seconds", str(seconds), "--bitrate", "6000"]
    if key is not None:
        argv += ["--input", "--key", hex(key)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_streaming(process: subprocess.Popen, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.strip() == "streaming":
            return
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"the client never streamed: {process.stderr.read()[-2000:]}")


def result_of(process: subprocess.Popen, timeout: float = 90) -> dict:
    out, err = process.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"no result; stderr: {err[-2000:]}"
    result = json.loads(lines[-1])
    assert result["error"] is None, result
    return result


def assert_pattern(spots: dict, who: str) -> None:
    for name, expected in PATTERN.items():
        got = spots[name]
        assert all(abs(g - e) < 50 for g, e in zip(got, expected)), f"{who}: {name} is BGR {got}, not {expected}"


def join_title(host, session: int) -> str:
    (lobby,) = [l for l in host.admin("/lobbies") if l["session"] == session]
    return lobby["join_title"]


def keys_logged(log: Path) -> set[int]:
    return {int(line.split("code=")[1].split()[0]) for line in log.read_text().splitlines()
            if "keyboard key code=" in line and "state=pressed" in line}


def test_owner_guest_and_spectator_play_one_app(make_host, tmp_path):
    log = tmp_path / "input.log"
    host = wayland_host(make_host, log)
    owner_dir, guest_dir, spectator_dir = (tmp_path / n for n in ("owner", "guest", "spectator"))
    pair_as(host, owner_dir, None)
    guest = pair_as(host, guest_dir, "player")
    spectator = pair_as(host, spectator_dir, "spectator")
    bus = host.bus()

    owner = spawn_stream(host, owner_dir, APP, 1280, 720, 60, 24, OWNER_KEY[0])
    wait_streaming(owner)
    (session,) = [s["id"] for s in host.sessions()]

    # Nothing to join before the lobby opens; a spectator may launch nothing at all.
    watcher = MoonlightClient(config_dir=spectator_dir)
    watcher.connect("127.0.0.1", host.http_port)
    assert [a.name for a in watcher.apps()] == []

    opened = host.cli("lobby", "open", str(session))
    assert opened.returncode == 0, opened.stderr
    lobby = bus.wait_for("lobby_opened", session=session)
    title = join_title(host, session)
    assert title.startswith(f"Join: {APP} ("), title
    assert [a.name for a in watcher.apps()] == [title]

    mark = bus.position()
    joined = spawn_stream(host, guest_dir, title, 640, 360, 30, 11, GUEST_KEY[0])
    watching = spawn_stream(host, spectator_dir, title, 640, 360, 30, 11, SPECTATOR_KEY[0])
    guest_result, spectator_result = result_of(joined), result_of(watching)
    owner_result = result_of(owner)

    roles = {e["client"]: e["role"] for e in bus.of_type("guest_joined") if e["lobby"] == lobby["lobby"]}
    assert roles == {guest["id"][:12]: "player", spectator["id"][:12]: "spectator"}, roles
    for who, result, fps, shape in (("owner", owner_result, 60, [720, 1280]),
                                    ("guest", guest_result, 30, [360, 640]),
                                    ("spectator", spectator_result, 30, [360, 640])):
        # The first second holds the stream's start; the 10 after it must be full.
        seconds = result["frames_per_second"][1:11]
        report(f"lobby {who} {shape[1]}x{shape[0]}@{fps}: frames per second {seconds}, key frames {result['key_frames']}")
        assert sum(seconds) >= 0.95 * fps * len(seconds), (who, seconds)
        assert result["frame_shape"] == shape, (who, result["frame_shape"])
        assert_pattern(result["spots"], who)
        assert result["audio_chunks"] > 100, (who, result["audio_chunks"])

    # Owner's and guest's keys reached the app; the spectator's were dropped at the host.
    logged = keys_logged(log)
    assert OWNER_KEY[1] in logged and GUEST_KEY[1] in logged, logged
    assert SPECTATOR_KEY[1] not in logged, logged
    listed = {s["client"]: s for s in host.sessions()}
    report(f"lobby idr requests: {[(s['client'], s['idr_requests']) for s in listed.values()]}")
    watched = listed[spectator["id"][:12]]
    assert watched["guest"]["role"] == "spectator" and watched["input_dropped"] >= 20, watched
    assert listed[guest["id"][:12]]["input_dropped"] == 0

    # The owner quits: both guests' sessions end first (lobby_closed), then the lobby, then the owner's.
    quitter = subprocess.run([sys.executable, str(GWCLIENT), "quit", "--host", "127.0.0.1", "--port", str(host.http_port),
                              "--config-dir", str(owner_dir)], capture_output=True, text=True, timeout=60)
    assert '"error": null' in quitter.stdout, quitter.stdout + quitter.stderr
    ended = bus.wait_for("session_ended", session=session, start=mark)
    assert ended["reason"] == "cancelled"
    guests = {e["session"]: e for e in bus.of_type("session_ended") if e["session"] != session}
    assert len(guests) == 2 and {e["reason"] for e in guests.values()} == {"lobby_closed"}, guests
    assert len(bus.of_type("guest_left")) == 2
    assert bus.of_type("lobby_closed", lobby=lobby["lobby"])
    assert host.sessions() == [] and host.admin("/lobbies") == []


def launch(client: MoonlightClient, app_id: int) -> None:
    client._http.launch_app(app_id, 640, 360, 30, 5000, 0x0001, os.urandom(16), os.urandom(16), 0x30002)


def refusal(call) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as error:
        call()
    return error.value


def test_pins_roles_and_kicks(make_host, tmp_path):
    """Without streams: what each client sees and may do, by the lobby's settings and its role."""
    host = make_host("").start()
    owner_dir = tmp_path / "owner"
    pair_as(host, owner_dir, None)
    player = pair_as(host, tmp_path / "player", "player")
    watcher = pair_as(host, tmp_path / "watcher", "spectator")
    owner = MoonlightClient(config_dir=owner_dir)
    owner.connect("127.0.0.1", host.http_port)
    pattern = {a.name: a.id for a in owner.apps()}["Test pattern"]
    launch(owner, pattern)
    (session,) = [s["id"] for s in host.sessions()]
    bus = host.bus()

    opened = host.cli("lobby", "open", str(session), "--pin", "2468", "--no-spectators")
    assert opened.returncode == 0, opened.stderr
    (lobby,) = host.admin("/lobbies")
    clients = {}
    for name, listed in (("player", player), ("watcher", watcher)):
        clients[name] = MoonlightClient(config_dir=tmp_path / name)
        clients[name].connect("127.0.0.1", host.http_port)
    player_client = clients["player"]

    # A PIN lobby is invisible until its PIN was entered, and joining it is refused.
    assert lobby["join_title"] not in [a.name for a in player_client.apps()]
    error = refusal(lambda: launch(player_client, lobby["join_app_id"]))
    assert "needs its PIN" in str(error), error
    wrong = host.cli("lobby", "unlock", str(lobby["lobby"]), player["id"][:16], "0000")
    assert wrong.returncode != 0 and "wrong PIN" in wrong.stderr, wrong.stderr
    assert lobby["join_title"] not in [a.name for a in player_client.apps()]
    right = host.cli("lobby", "unlock", str(lobby["lobby"]), player["id"][:16], "2468")
    assert right.returncode == 0, right.stderr
    assert lobby["join_title"] in [a.name for a in player_client.apps()]

    # An unpaired client sees nothing at all, and cannot launch the lobby's entry.
    from moonlight_python.http_client import NvHTTP
    from moonlight_python.identity import Identity

    stranger = NvHTTP("127.0.0.1", Identity(tmp_path / "stranger"), host.http_port, host.https_port)
    for call in (stranger.get_app_list,
                 lambda: stranger.launch_app(lobby["join_app_id"], 640, 360, 30, 5000, 0x0001, os.urandom(16),
                                             os.urandom(16), 0x30002)):
        assert "401" in str(refusal(call))

    # A spectator cannot join a players-only lobby, even with the PIN.
    assert host.cli("lobby", "unlock", str(lobby["lobby"]), watcher["id"][:16], "2468").returncode == 0
    assert lobby["join_title"] not in [a.name for a in clients["watcher"].apps()]
    error = refusal(lambda: launch(clients["watcher"], lobby["join_app_id"]))
    assert "players only" in str(error), error

    # The player joins, is listed as a guest, and is kicked: only its session ends.
    mark = bus.position()
    launch(player_client, lobby["join_app_id"])
    joined = bus.wait_for("guest_joined", start=mark)
    (listed,) = host.admin("/lobbies")
    assert [(g["session"], g["role"]) for g in listed["guests"]] == [(joined["session"], "player")]
    kicked = host.cli("lobby", "kick", str(lobby["lobby"]), str(joined["session"]))
    assert kicked.returncode == 0, kicked.stderr
    assert bus.wait_for("session_ended", session=joined["session"], start=mark)["reason"] == "kicked"
    assert bus.wait_for("guest_left", session=joined["session"], start=mark)["reason"] == "kicked"
    assert [s["id"] for s in host.sessions()] == [session]
    (listed,) = host.admin("/lobbies")
    assert listed["guests"] == []

    # Closing the lobby leaves the owner's session running.
    assert host.cli("lobby", "close", str(lobby["lobby"])).returncode == 0
    bus.wait_for("lobby_closed", lobby=lobby["lobby"], start=mark)
    assert [s["id"] for s in host.sessions()] == [session] and host.admin("/lobbies") == []
    assert lobby["join_title"] not in [a.name for a in player_client.apps()]


def test_an_apps_lobby_setting_opens_a_lobby_at_launch(make_host, tmp_path):
    host = make_host('[[apps]]\ntitle = "Party"\n[apps.lobby]\nmax_guests = 2\nguest_input = "gamepad_only"\n').start()
    owner_dir = tmp_path / "owner"
    pair_as(host, owner_dir, None)
    owner = MoonlightClient(config_dir=owner_dir)
    owner.connect("127.0.0.1", host.http_port)
    bus = host.bus()
    launch(owner, {a.name: a.id for a in owner.apps()}["Party"])
    opened = bus.wait_for("lobby_opened")
    assert (opened["app"], opened["max_guests"], opened["pin"]) == ("Party", 2, False), opened
    (lobby,) = host.admin("/lobbies")
    assert lobby["guest_input"] == "gamepad_only"


def nft(*args: str) -> None:
    subprocess.run(["nft", *args], check=True, capture_output=True, text=True)


def test_a_guests_loss_forces_key_frames_on_its_own_encoder_only(make_host, tmp_path):
    """Loss on the guest's stream alone (nftables drops 30% of the packets to its port) makes its
    client ask for key frames; the owner, in another mode and so on another encoder, gets none."""
    if os.geteuid() != 0 or not shutil.which("nft"):
        pytest.skip("dropping a stream's packets needs root and nft")
    log = tmp_path / "input.log"
    host = wayland_host(make_host, log)
    owner_dir, guest_dir = tmp_path / "owner", tmp_path / "guest"
    pair_as(host, owner_dir, None)
    guest = pair_as(host, guest_dir, "player")
    bus = host.bus()
    owner = spawn_stream(host, owner_dir, APP, 1280, 720, 30, 20, None)
    wait_streaming(owner)
    (session,) = [s["id"] for s in host.sessions()]
    assert host.cli("lobby", "open", str(session)).returncode == 0
    joined = spawn_stream(host, guest_dir, join_title(host, session), 640, 360, 30, 14, None)
    wait_streaming(joined)
    guest_session = bus.wait_for("guest_joined")["session"]

    def counts() -> dict:
        listed = {s["id"]: s for s in host.sessions()}
        return {who: (listed[sid]["video_key_frames"], listed[sid]["idr_requests"])
                for who, sid in (("owner", session), ("guest", guest_session))}

    port = int({s["id"]: s for s in host.sessions()}[guest_session]["video_target"].rsplit(":", 1)[1])
    time.sleep(2)  # a window without loss: no key frame on either side
    before = counts()
    table = f"hati_lobby_loss_{os.getpid()}"
    nft("add", "table", "inet", table)
    try:
        nft("add", "chain", "inet", table, "out", "{ type filter hook output priority 0 ; }")
        nft("add", "rule", "inet", table, "out", "udp", "dport", str(port), "numgen", "random", "mod", "100", "<", "30", "drop")
        time.sleep(6)  # the window with loss on the guest's link
    finally:
        nft("delete", "table", "inet", table)
    after = counts()
    report(f"lobby key frames (encoder count, client IDR requests) before/after the guest's loss: {before} -> {after}")
    assert after["guest"][1] > before["guest"][1], "the guest's client asked for no key frame under 30% loss"
    assert after["guest"][0] > before["guest"][0], "the guest's encoder made no key frame"
    assert after["owner"] == before["owner"], "the owner's encoder made key frames for the guest's loss"
    result_of(joined)
    result_of(owner)


def test_a_guest_in_the_owners_mode_shares_its_encoder(make_host, tmp_path):
    """Same size, rate and codec as the owner: the guest's stream is the owner's encoded frames
    (one encoder), payloaded with the guest's own keys; its key-frame requests reach that
    encoder."""
    log = tmp_path / "input.log"
    host = wayland_host(make_host, log)
    owner_dir, guest_dir = tmp_path / "owner", tmp_path / "guest"
    pair_as(host, owner_dir, None)
    pair_as(host, guest_dir, "player")
    bus = host.bus()
    owner = spawn_stream(host, owner_dir, APP, 640, 360, 30, 16, None)
    wait_streaming(owner)
    (session,) = [s["id"] for s in host.sessions()]
    assert host.cli("lobby", "open", str(session)).returncode == 0
    mark = host.log_position()
    joined = spawn_stream(host, guest_dir, join_title(host, session), 640, 360, 30, 11, GUEST_KEY[0])
    wait_streaming(joined)
    guest_session = bus.wait_for("guest_joined")["session"]
    host.wait_for_log(r"sharing the lobby owner's encoders \(same mode\) .*video=true audio=true", start=mark, timeout=10)
    pipelines = [p["name"] for p in host.admin("/pipelines")]
    # The guest's video pipeline has no encoder of its own: it starts at the payloader the
    # owner's tap feeds.
    assert f"hati-video-{guest_session}" in pipelines, pipelines
    guest_result, owner_result = result_of(joined), result_of(owner)
    seconds = guest_result["frames_per_second"][1:11]
    report(f"lobby same-mode guest 640x360@30: frames per second {seconds}")
    assert sum(seconds) >= 0.95 * 30 * len(seconds), seconds
    assert guest_result["frame_shape"] == [360, 640]
    # Its sound is the owner's Opus packets, payloaded with its own key.
    assert guest_result["audio_chunks"] > 100, guest_result["audio_chunks"]
    assert_pattern(guest_result["spots"], "guest")
    assert_pattern(owner_result["spots"], "owner")
    assert GUEST_KEY[1] in keys_logged(log)


def test_the_dashboard_opens_lists_kicks_and_closes(make_host, tmp_path, browser):
    """The owner's view in Chromium: "Open lobby" on a session, the lobby's guests with their
    roles, Kick and Close. Screenshots under target/e2e-output/dashboard/lobby-*.png."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    host = make_host("").start()
    owner_dir = tmp_path / "owner"
    pair_as(host, owner_dir, None)
    player = pair_as(host, tmp_path / "player", "player")
    owner = MoonlightClient(config_dir=owner_dir)
    owner.connect("127.0.0.1", host.http_port)
    launch(owner, {a.name: a.id for a in owner.apps()}["Test pattern"])
    (session,) = [s["id"] for s in host.sessions()]
    bus = host.bus()
    # The tables are redrawn on every event: an element found may be replaced before it is read.
    wait = WebDriverWait(browser, 20, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
    browser.get(f"http://127.0.0.1:{host.http_port}/dashboard")
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, f"#session-{session} .open-lobby"))
    browser.find_element(By.CSS_SELECTOR, f"#session-{session} .open-lobby").click()
    lobby = bus.wait_for("lobby_opened", session=session)["lobby"]
    wait.until(lambda b: b.find_elements(By.ID, f"lobby-{lobby}"))
    wait.until(lambda b: not b.find_elements(By.CSS_SELECTOR, f"#session-{session} .open-lobby"))
    shot(browser, "lobby-1-opened")

    guest = MoonlightClient(config_dir=tmp_path / "player")
    guest.connect("127.0.0.1", host.http_port)
    (title,) = [a for a in guest.apps() if a.name.startswith("Join:")]
    launch(guest, title.id)
    joined = bus.wait_for("guest_joined", lobby=lobby)["session"]
    row = f"#lobby-{lobby}"
    wait.until(lambda b: player["name"] in b.find_element(By.CSS_SELECTOR, row).text)
    wait.until(lambda b: "player" in b.find_element(By.CSS_SELECTOR, f"{row} .guest").text)
    wait.until(lambda b: "player in lobby" in b.find_element(By.CSS_SELECTOR, f"#session-{joined} .state").text)
    shot(browser, "lobby-2-guest")

    browser.find_element(By.CSS_SELECTOR, f"{row} .guest button").click()
    assert bus.wait_for("session_ended", session=joined)["reason"] == "kicked"
    wait.until(lambda b: not b.find_elements(By.CSS_SELECTOR, f"{row} .guest"))
    shot(browser, "lobby-3-kicked")
    browser.find_element(By.CSS_SELECTOR, f"{row} td:last-child button").click()
    bus.wait_for("lobby_closed", lobby=lobby)
    wait.until(lambda b: not b.find_elements(By.ID, f"lobby-{lobby}"))
    assert [s["id"] for s in host.sessions()] == [session]
