"""A session's own Wayland desktop, end to end: the repo's test client (a real Wayland client)
runs in it, its picture reaches the Moonlight client, and input sent with moonlight-common-c's
`LiSend*` functions arrives in the test client with the right values."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import cffi
import pytest

import moonlight_python
from moonlight_python import MoonlightClient

from conftest import HATI_BIN
from test_pairing import pair

TEST_CLIENT = Path(HATI_BIN).with_name("hati-test-client")
WIDTH, HEIGHT = 1280, 720

LIMELIGHT = """
int LiSendMouseMoveEvent(short deltaX, short deltaY);
int LiSendMousePositionEvent(short x, short y, short referenceWidth, short referenceHeight);
int LiSendMouseButtonEvent(signed char action, int button);
int LiSendKeyboardEvent(short keyCode, signed char keyAction, signed char modifiers);
int LiSendUtf8TextEvent(const char *text, unsigned int length);
int LiSendScrollEvent(signed char scrollClicks);
int LiSendHScrollEvent(signed char scrollClicks);
int LiSendTouchEvent(uint8_t eventType, uint32_t pointerId, float x, float y, float pressureOrDistance,
                     float contactAreaMajor, float contactAreaMinor, uint16_t rotation);
int LiSendPenEvent(uint8_t eventType, uint8_t toolType, uint8_t penButtons, float x, float y,
                   float pressureOrDistance, float contactAreaMajor, float contactAreaMinor,
                   uint16_t rotation, uint8_t tilt);
"""
BUTTON_PRESS, BUTTON_RELEASE = 0x07, 0x08
KEY_DOWN, KEY_UP = 0x03, 0x04
TOUCH_HOVER, TOUCH_DOWN, TOUCH_UP = 0x00, 0x01, 0x02
TOOL_PEN, TILT_UNKNOWN = 0x01, 0xFF


def limelight():
    """The client library already loaded by moonlight-python (dlopen returns the same instance)."""
    ffi = cffi.FFI()
    ffi.cdef(LIMELIGHT)
    library = Path(moonlight_python.__file__).with_name("libmoonlight-common-c.so")
    return ffi, ffi.dlopen(str(library))


def wait_for_line(log: Path, pattern: str, start: int = 0, timeout: float = 10) -> re.Match:
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = log.read_text().splitlines()[start:] if log.exists() else []
        for line in lines:
            if match := regex.search(line):
                return match
        time.sleep(0.05)
    tail = "\n".join(log.read_text().splitlines()[-15:]) if log.exists() else "(no log)"
    raise AssertionError(f"test client never logged {pattern!r}; last lines:\n{tail}")


def line_count(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture
def desktop(make_host, tmp_path):
    if not TEST_CLIENT.exists():
        pytest.fail(f"{TEST_CLIENT} is missing: build the workspace binaries first")
    log = tmp_path / "input.log"
    host = make_host(
        '[[apps]]\ntitle = "Wayland test"\ncompositor = true\n[apps.runner]\ntype = "process"\n'
        f'cmd = "{TEST_CLIENT}"\nenv = ["HATI_TEST_CLIENT_LOG={log}"]\n'
    ).start()
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    client.start_stream(app="Wayland test", width=WIDTH, height=HEIGHT, fps=60, ready_timeout=20)
    wait_for_line(log, r"drawn width=1280 height=720")
    yield host, client, log
    client.stop_stream()


def test_frames_show_the_apps_pattern(desktop):
    host, client, log = desktop

    def spots(frame) -> dict:
        return {
            "top-left red": (frame[HEIGHT // 4, WIDTH // 4], (0, 0, 255)),
            "top-right green": (frame[HEIGHT // 4, 3 * WIDTH // 4], (0, 255, 0)),
            "bottom-left blue": (frame[3 * HEIGHT // 4, WIDTH // 4], (255, 0, 0)),
            "bottom-right white": (frame[3 * HEIGHT // 4, 3 * WIDTH // 4], (255, 255, 255)),
        }

    def shows_pattern(frame) -> bool:
        return all(all(abs(int(p) - e) < 40 for p, e in zip(pixel, expected)) for pixel, expected in spots(frame).values())

    # The app logged its first drawing; the frame that shows it reaches the client a few frames
    # later: take frames until one shows the pattern (at most 10 s), then check that one.
    deadline = time.monotonic() + 10
    with client.latest_frame() as frames:
        frame = frames.get(timeout=5).data  # BGR
        while not shows_pattern(frame) and time.monotonic() < deadline:
            time.sleep(0.05)
            frame = frames.get(timeout=5).data
    for name, (pixel, expected) in spots(frame).items():
        assert all(abs(int(p) - e) < 40 for p, e in zip(pixel, expected)), f"{name}: got BGR {tuple(pixel)}"


def test_input_reaches_the_app(desktop):
    host, client, log = desktop
    ffi, lib = limelight()

    start = line_count(log)
    lib.LiSendMousePositionEvent(640, 360, WIDTH, HEIGHT)
    match = wait_for_line(log, r"pointer (?:enter|motion) x=([\d.]+) y=([\d.]+)", start)
    assert abs(float(match.group(1)) - 640) < 2 and abs(float(match.group(2)) - 360) < 2, match.group(0)

    start = line_count(log)
    lib.LiSendMouseMoveEvent(10, 5)
    match = wait_for_line(log, r"pointer motion x=([\d.]+) y=([\d.]+)", start)
    assert abs(float(match.group(1)) - 650) < 2 and abs(float(match.group(2)) - 365) < 2, match.group(0)

    for button, code in ((1, 272), (3, 273), (2, 274)):
        start = line_count(log)
        lib.LiSendMouseButtonEvent(BUTTON_PRESS, button)
        lib.LiSendMouseButtonEvent(BUTTON_RELEASE, button)
        wait_for_line(log, rf"pointer button code={code} state=pressed", start)
        wait_for_line(log, rf"pointer button code={code} state=released", start)

    start = line_count(log)
    lib.LiSendScrollEvent(1)
    wait_for_line(log, r"pointer axis_value120 axis=vertical value120=-120", start)
    start = line_count(log)
    lib.LiSendHScrollEvent(-1)
    wait_for_line(log, r"pointer axis_value120 axis=horizontal value120=-120", start)

    start = line_count(log)
    lib.LiSendKeyboardEvent(0x41, KEY_DOWN, 0)  # VK_A
    lib.LiSendKeyboardEvent(0x41, KEY_UP, 0)
    wait_for_line(log, r"keyboard key code=30 state=pressed", start)
    wait_for_line(log, r"keyboard key code=30 state=released", start)

    start = line_count(log)
    text = "b".encode()
    lib.LiSendUtf8TextEvent(text, len(text))
    wait_for_line(log, r"keyboard key code=48 state=pressed", start)

    start = line_count(log)
    lib.LiSendTouchEvent(TOUCH_DOWN, 7, 0.25, 0.5, 1.0, 0.0, 0.0, 0xFFFF)
    match = wait_for_line(log, r"touch down id=\d+ x=([\d.]+) y=([\d.]+)", start)
    assert abs(float(match.group(1)) - 320) < 2 and abs(float(match.group(2)) - 360) < 2, match.group(0)
    lib.LiSendTouchEvent(TOUCH_UP, 7, 0.25, 0.5, 0.0, 0.0, 0.0, 0xFFFF)
    wait_for_line(log, r"touch up id=\d+", start)

    start = line_count(log)
    lib.LiSendPenEvent(TOUCH_HOVER, TOOL_PEN, 0, 0.75, 0.25, 0.5, 0.0, 0.0, 0xFFFF, TILT_UNKNOWN)
    wait_for_line(log, r"tablet tool proximity_in", start)
    match = wait_for_line(log, r"tablet tool motion x=([\d.]+) y=([\d.]+)", start)
    assert abs(float(match.group(1)) - 960) < 2 and abs(float(match.group(2)) - 180) < 2, match.group(0)
    lib.LiSendPenEvent(TOUCH_DOWN, TOOL_PEN, 0, 0.75, 0.25, 0.8, 0.0, 0.0, 0xFFFF, TILT_UNKNOWN)
    wait_for_line(log, r"tablet tool down", start)
    match = wait_for_line(log, r"tablet tool pressure value=(\d+)", start)
    assert int(match.group(1)) > 40000, match.group(0)  # 0.8 of 65535
    lib.LiSendPenEvent(TOUCH_UP, TOOL_PEN, 0, 0.75, 0.25, 0.0, 0.0, 0.0, 0xFFFF, TILT_UNKNOWN)
    wait_for_line(log, r"tablet tool up", start)


def test_app_exit_ends_the_session(desktop):
    host, client, log = desktop
    session = host.sessions()[0]["id"]
    sockets = runtime_sockets(session)
    assert sockets, "the session's Wayland socket was not found where it should be"
    bus = host.bus()
    client.quit_app()
    assert bus.wait_for("session_ended", session=session)["reason"] == "cancelled"
    # The session's desktop is gone with its socket.
    assert not runtime_sockets(session), sockets


def runtime_sockets(session: int) -> list[Path]:
    """The Wayland sockets in session `session`'s runtime directory."""
    bases = [os.environ.get("XDG_RUNTIME_DIR", ""), f"/tmp/hati-{os.getuid()}"]
    return [p for base in bases if base for p in Path(base).glob(f"hati/*/session-{session}/*wayland-*")]


def test_default_desktop_app_shows_a_terminal(host, tmp_path):
    import shutil

    if not (shutil.which("foot") or shutil.which("weston-terminal")):
        pytest.skip("neither foot nor weston-terminal is installed: the Desktop app has nothing to show")
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    # A terminal is mostly black: accept dark frames as real ones.
    client.start_stream(app="Desktop", width=WIDTH, height=HEIGHT, fps=30, ready_timeout=30, black_frame_threshold=-1)
    try:
        deadline = time.monotonic() + 15
        bright = 0
        while time.monotonic() < deadline and bright < 200:
            time.sleep(0.5)
            with client.latest_frame() as frames:
                frame = frames.get(timeout=5).data
            # The prompt's text in the top rows.
            bright = int((frame[: HEIGHT // 8] > 128).sum())
        assert bright >= 200, "no terminal prompt visible in the Desktop app"
    finally:
        client.stop_stream()
        client.quit_app()
