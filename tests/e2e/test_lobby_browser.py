"""Play together from a browser (docs/play-together.md): a Moonlight owner (gwclient.py in its
own process) streams the repo's Wayland test client; the lobby opens; a real Chromium paired at
the play page finds the lobby's Join card, joins in its own mode, gets its frame rate and the
owner's picture, types into the app, and is told on the page when the owner's quit closes the
lobby; a Moonlight guest (640x360@30) plays at the same time, and all three keep 95% of their
frame rates over the same 10 s. Also a lobby with a PIN: the Join card asks for it, refuses a wrong one with the host's
message and joins with the right one. Screenshots go to target/e2e-output/lobby-browser/."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import report
from test_browser import (TEST_PATTERN_RGB, browser_stats, choose_mode, pair_page, press_toolbar,
                          video_colour, wait_until_steady)
from test_dashboard import browser  # noqa: F401  (the Chromium fixture)
from test_desktop import line_count, wait_for_line
from test_lobby import (APP, GUEST_KEY, GWCLIENT, OWNER_KEY, PATTERN, assert_pattern, join_title, keys_logged, pair_as, result_of, spawn_stream,
                        wait_streaming, wayland_host)

OUTPUT = Path(os.environ.get("HATI_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "target/e2e-output")) / "lobby-browser"
# The browser's mode: the page offers 854x480 as its smallest resolution, and 30 fps.
BROWSER_MODE, BROWSER_FPS = (854, 480), 30
# The key the browser types ("b") and the evdev code the app logs for it.
BROWSER_KEY = ("b", 48)
# The owner streams this long: the browser's pairing is done before, its join, warm-up, 10 s
# measurement and input checks fit well inside.
OWNER_SECONDS = 40


def shot(driver, name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def pair_browser_as(host, driver, role: str) -> dict:
    """Pairs the page through its own UI and gives its client `role`; its listing."""
    pair_page(host, driver)
    (listed,) = [c for c in host.admin("/clients") if c["kind"] == "browser"]
    result = host.cli("clients", "set", listed["id"][:16], "--role", role)
    assert result.returncode == 0, result.stdout + result.stderr
    return listed


def show_lobby_card(host, driver, session: int) -> dict:
    """The lobby open on `session` as the admin API lists it, once the page shows its card."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    (lobby,) = [l for l in host.admin("/lobbies") if l["session"] == session]
    # The page refreshes its list every 10 s; a player would reload, the test asks at once.
    driver.execute_script("refreshApps()")
    WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.ID, f"join-{lobby['join_app_id']}"))
    return lobby


def choose_fps(driver, fps: int) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "fps")).select_by_value(str(fps))


def wait_playing(driver, timeout: float = 40) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: (d.execute_script("return window.hati.state") == "playing")
        and (d.execute_script("return document.getElementById('video').videoWidth") or 0) > 0
    )


def quadrant_spots(driver) -> dict:
    """The RGB pixel at the middle of each quadrant of the <video>'s current frame (drawn into
    a canvas at the stream's own size), named as gwclient.py names the owner's."""
    width, height, pixels = driver.execute_script(
        """
        const video = document.getElementById('video');
        const canvas = document.createElement('canvas');
        canvas.width = video.videoWidth; canvas.height = video.videoHeight;
        const context = canvas.getContext('2d');
        context.drawImage(video, 0, 0);
        const spots = [[1, 1], [3, 1], [1, 3], [3, 3]].map(([x, y]) =>
          Array.from(context.getImageData(Math.floor(x * canvas.width / 4), Math.floor(y * canvas.height / 4), 1, 1).data.slice(0, 3)));
        return [canvas.width, canvas.height, spots];
        """
    )
    names = ("top_left", "top_right", "bottom_left", "bottom_right")
    return {"size": (width, height), **dict(zip(names, (tuple(p) for p in pixels)))}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` and its threads so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def near(a, b, tolerance: int = 50) -> bool:
    return all(abs(x - y) < tolerance for x, y in zip(a, b))


def quit_owner(host, owner_dir: Path) -> None:
    quitter = subprocess.run([sys.executable, str(GWCLIENT), "quit", "--host", "127.0.0.1", "--port", str(host.http_port),
                              "--config-dir", str(owner_dir)], capture_output=True, text=True, timeout=60)
    assert '"error": null' in quitter.stdout, quitter.stdout + quitter.stderr


def test_a_browser_joins_a_lobby_plays_and_the_owners_quit_ends_it(make_host, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    log = tmp_path / "input.log"
    host = wayland_host(make_host, log)
    owner_dir, guest_dir = tmp_path / "owner", tmp_path / "guest"
    pair_as(host, owner_dir, None)
    pair_as(host, guest_dir, "player")
    player = pair_browser_as(host, browser, "player")
    bus = host.bus()

    owner = spawn_stream(host, owner_dir, APP, 1280, 720, 60, OWNER_SECONDS, OWNER_KEY[0])
    wait_streaming(owner)
    owner_started = time.monotonic()
    (session,) = [s["id"] for s in host.sessions()]
    opened = host.cli("lobby", "open", str(session))
    assert opened.returncode == 0, opened.stderr
    lobby = show_lobby_card(host, browser, session)
    # A Moonlight guest plays at the same time (640x360@30, its own encoder and key).
    moonlight_guest = spawn_stream(host, guest_dir, join_title(host, session), 640, 360, 30, 30, GUEST_KEY[0])
    wait_streaming(moonlight_guest)
    moonlight_started = time.monotonic()
    join_id = lobby["join_app_id"]
    card = browser.find_element(By.ID, f"lobby-{join_id}")
    assert APP in card.text and "Join" in card.text, card.text
    shot(browser, "1-join-card")

    choose_mode(browser, "x".join(map(str, BROWSER_MODE)))
    choose_fps(browser, BROWSER_FPS)
    browser.find_element(By.ID, f"join-{join_id}").click()
    wait_playing(browser)
    joined = bus.wait_for("guest_joined", lobby=lobby["lobby"], client=player["id"][:12])
    guest = joined["session"]
    assert (joined["client"], joined["role"]) == (player["id"][:12], "player"), joined
    streaming = bus.wait_for("session_streaming", session=guest)
    assert (streaming["width"], streaming["height"], streaming["fps"]) == (*BROWSER_MODE, BROWSER_FPS), streaming

    warm_up = wait_until_steady(browser, BROWSER_FPS)
    host_cpu = cpu_seconds(host.process.pid)
    before, measured_from = browser_stats(browser), time.monotonic()
    time.sleep(10)
    after, measured_to = browser_stats(browser), time.monotonic()
    host_cpu = cpu_seconds(host.process.pid) - host_cpu
    machine_load = os.getloadavg()[0]
    frames = after["framesDecoded"] - before["framesDecoded"]
    seconds = measured_to - measured_from
    shot(browser, "2-guest-playing")

    # The owner's picture (quadrants), scaled to the browser's mode by the guest's own pipeline.
    spots = quadrant_spots(browser)
    assert spots["size"] == BROWSER_MODE, spots
    for name, bgr in PATTERN.items():
        assert near(spots[name], bgr[::-1]), f"browser: {name} is RGB {spots[name]}, not {bgr[::-1]}"

    # A key typed in the page reaches the app (the owner's gwclient keeps pressing its own).
    start = line_count(log)
    ActionChains(browser).send_keys(BROWSER_KEY[0]).perform()
    wait_for_line(log, rf"keyboard key code={BROWSER_KEY[1]} state=pressed", start)
    wait_for_line(log, rf"keyboard key code={BROWSER_KEY[1]} state=released", start)
    listed = {s["id"]: s for s in host.sessions()}
    assert listed[guest]["guest"]["role"] == "player" and listed[guest]["input_dropped"] == 0, listed[guest]

    # The owner's figures over the same 10 s (its per-second counts start when it streamed).
    owner_result = result_of(owner)
    first, last = int(measured_from - owner_started) + 1, int(measured_to - owner_started)
    owner_seconds = owner_result["frames_per_second"][first:last]
    report(f"lobby, browser guest {BROWSER_MODE[0]}x{BROWSER_MODE[1]}@{BROWSER_FPS} beside a Moonlight owner "
           f"1280x720@60 (Wayland test): browser decoded {frames} frames in {seconds:.1f} s "
           f"({frames / seconds:.1f} fps, {after['framesDropped'] - before['framesDropped']} dropped, "
           f"after a {warm_up:.0f} s start); owner's frames per second in that window {owner_seconds}; "
           f"host process CPU {100 * host_cpu / seconds:.0f}% of one core (desktop, both encoders, WebRTC), "
           f"machine load average {machine_load:.1f} on {os.cpu_count()} cores; "
           f"browser quadrants {spots}; owner's (BGR) {owner_result['spots']}")
    assert len(owner_seconds) >= 8, f"the owner's stream ended before the browser's 10 s: {owner_result['frames_per_second']}"
    for name in PATTERN:
        assert near(spots[name], owner_result["spots"][name][::-1]), (name, spots[name], owner_result["spots"][name])
    assert OWNER_KEY[1] in keys_logged(log), keys_logged(log)
    assert frames >= 0.95 * BROWSER_FPS * seconds, f"browser: only {frames} frames in {seconds:.1f} s at {BROWSER_FPS} fps"
    # All three at once: the owner and the Moonlight guest over the browser's 10 s too.
    assert sum(owner_seconds) >= 0.95 * 60 * len(owner_seconds), f"owner: {owner_seconds}"
    guest_result = result_of(moonlight_guest)
    first, last = int(measured_from - moonlight_started) + 1, int(measured_to - moonlight_started)
    guest_seconds = guest_result["frames_per_second"][first:last]
    report(f"lobby, Moonlight guest 640x360@30 beside the browser guest: frames per second {guest_seconds}")
    assert len(guest_seconds) >= 8 and sum(guest_seconds) >= 0.95 * 30 * len(guest_seconds), guest_seconds
    assert_pattern(guest_result["spots"], "Moonlight guest")
    assert GUEST_KEY[1] in keys_logged(log), keys_logged(log)

    # The owner quits: the browser's guest session ends (lobby_closed), and the page says why.
    mark = bus.position()
    quit_owner(host, owner_dir)
    ended = bus.wait_for("session_ended", session=guest, start=mark)
    assert ended["reason"] == "lobby_closed", ended
    assert bus.wait_for("session_ended", session=session, start=mark)["reason"] == "cancelled"
    WebDriverWait(browser, 20).until(lambda d: d.execute_script("return window.hati.state") == "ended")
    status = browser.find_element(By.ID, "play-status").text
    shot(browser, "3-lobby-closed")
    report(f"lobby, browser guest after the owner's quit: the page says {status!r}")
    assert "lobby closed" in status, status
    assert host.sessions() == [] and host.admin("/lobbies") == []
    assert not browser.find_elements(By.ID, f"lobby-{join_id}"), "the closed lobby's card is still listed"


def test_a_pin_lobby_asks_the_browser_for_its_pin(make_host, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    host = make_host("").start()
    owner_dir = tmp_path / "owner"
    pair_as(host, owner_dir, None)
    pair_browser_as(host, browser, "player")
    bus = host.bus()
    owner = spawn_stream(host, owner_dir, "Test pattern", 640, 360, 30, 30, None)
    wait_streaming(owner)
    (session,) = [s["id"] for s in host.sessions()]
    opened = host.cli("lobby", "open", str(session), "--pin", "2468")
    assert opened.returncode == 0, opened.stderr

    # The card shows before the PIN is entered (Moonlight's list hides it: it cannot ask).
    lobby = show_lobby_card(host, browser, session)
    join_id = lobby["join_app_id"]
    join = browser.find_element(By.ID, f"join-{join_id}")
    assert join.text == "Join (PIN)", join.text
    join.click()
    field = WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, f"pin-{join_id}"))
    shot(browser, "4-pin-prompt")

    field.send_keys("0000")
    browser.find_element(By.ID, f"unlock-{join_id}").click()
    # Read in the page: the list is drawn again when the answer comes.
    message = WebDriverWait(browser, 10).until(lambda d: d.execute_script(
        "const m = document.querySelector(arguments[0]); return m && m.textContent;", f"#lobby-{join_id} .lobby-message"))
    shot(browser, "5-wrong-pin")
    report(f"lobby, browser with a wrong PIN: the card says {message!r}")
    assert "wrong PIN" in message, message
    assert browser.execute_script("return window.hati.state") == "paired"
    assert not bus.of_type("guest_joined")

    browser.find_element(By.ID, f"pin-{join_id}").send_keys("2468")
    browser.find_element(By.ID, f"unlock-{join_id}").click()
    wait_playing(browser)
    joined = bus.wait_for("guest_joined", lobby=lobby["lobby"])
    time.sleep(1)
    shot(browser, "6-pin-guest-playing")
    colour = video_colour(browser)
    report(f"lobby, browser joined with the right PIN: session {joined['session']}, colour {colour}")
    assert near(colour, TEST_PATTERN_RGB, 24), colour

    # Back to the list pauses the guest's session, which the Join card then offers to resume
    # (the page knows it by the "Join:" entry's ID), as an app's card does.
    press_toolbar(browser, "back")
    bus.wait_for("session_paused", session=joined["session"])
    resume = WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, f"resume-{join_id}"))
    shot(browser, "7-guest-paused-in-the-list")
    resume.click()
    bus.wait_for("session_resumed", session=joined["session"])
    wait_playing(browser)
    assert len(bus.of_type("guest_joined")) == 1

    # The guest leaves: only its session ends; the owner plays on.
    press_toolbar(browser, "quit")
    ended = bus.wait_for("session_ended", session=joined["session"])
    assert ended["reason"] == "cancelled", ended
    assert [s["id"] for s in host.sessions()] == [session]
    assert bus.wait_for("guest_left", session=joined["session"])
    result_of(owner)
    quit_owner(host, owner_dir)
    bus.wait_for("session_ended", session=session)
