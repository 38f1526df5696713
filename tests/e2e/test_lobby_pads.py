"""Gamepads in a lobby (docs/play-together.md), up to the device boundary: the host runs with
`[debug] virtual_pads = "record"` (there is no /dev/uinput here), so pads are created without a
device but take their app player slots, receive events and go exactly as real ones do. The
owner's controller 0 takes slot 0, the first guest's controller 0 the first slot after the
owner's four (slot 4), the second guest's the next (slot 5: one table for the lobby); when the
first guest quits, its pad goes (listing and event) and the others stay. Each client is a real
moonlight-common-c client in its own process (gwclient.py --pad)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_lobby import APP, GWCLIENT, TEST_CLIENT, join_title, pair_as, result_of, wait_streaming


def recording_host(make_host, log: Path):
    if not TEST_CLIENT.exists():
        pytest.fail(f"{TEST_CLIENT} is missing: build the workspace binaries first")
    return make_host(
        '[debug]\nvirtual_pads = "record"\n'
        f'[[apps]]\ntitle = "{APP}"\ncompositor = true\n[apps.runner]\ntype = "process"\n'
        f'cmd = "{TEST_CLIENT}"\nenv = ["HATI_TEST_CLIENT_LOG={log}"]\n'
    ).start()


def spawn_with_pad(host, directory: Path, app: str, seconds: float) -> subprocess.Popen:
    argv = [sys.executable, str(GWCLIENT), "stream", "--host", "127.0.0.1", "--port", str(host.http_port),
            "--config-dir", str(directory), "--app", app, "--width", "640", "--height", "360",
            "--fps", "30", "--seconds", str(seconds), "--bitrate", "3000", "--pad"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def quit_app(host, directory: Path) -> None:
    quitter = subprocess.run([sys.executable, str(GWCLIENT), "quit", "--host", "127.0.0.1", "--port", str(host.http_port),
                              "--config-dir", str(directory)], capture_output=True, text=True, timeout=60)
    assert '"error": null' in quitter.stdout, quitter.stdout + quitter.stderr


def pads_of(host, session: int) -> list[dict]:
    (listed,) = [s for s in host.sessions() if s["id"] == session]
    return listed["gamepads"]


def pads_pressed(host, session: int, timeout: float = 15) -> list[dict]:
    """The session's pads once each has received events (the client's A presses)."""
    deadline = time.monotonic() + timeout
    while True:
        pads = pads_of(host, session)
        if pads and all(p["events"] > 0 for p in pads):
            return pads
        if time.monotonic() > deadline:
            raise AssertionError(f"session {session}'s pads never got events: {pads}")
        time.sleep(0.2)


def test_guest_pads_take_slots_after_the_owners_and_go_with_the_guest(make_host, tmp_path):
    host = recording_host(make_host, tmp_path / "input.log")
    owner_dir, guest_dir, second_dir = tmp_path / "owner", tmp_path / "guest", tmp_path / "second"
    pair_as(host, owner_dir, None)
    pair_as(host, guest_dir, "player")
    pair_as(host, second_dir, "player")
    bus = host.bus()

    owner = spawn_with_pad(host, owner_dir, APP, 25)
    wait_streaming(owner)
    (session,) = [s["id"] for s in host.sessions()]
    plugged = bus.wait_for("gamepad_connected", session=session)
    assert (plugged["controller"], plugged["slot"], plugged["kind"]) == (0, 0, "xbox"), plugged

    opened = host.cli("lobby", "open", str(session))
    assert opened.returncode == 0, opened.stderr
    title = join_title(host, session)
    sessions, streams = {}, {}
    for name, directory, slot in (("guest", guest_dir, 4), ("second", second_dir, 5)):
        mark = bus.position()
        streams[name] = spawn_with_pad(host, directory, title, 8)
        wait_streaming(streams[name])
        sessions[name] = bus.wait_for("guest_joined", start=mark)["session"]
        plugged = bus.wait_for("gamepad_connected", session=sessions[name], start=mark)
        assert (name, plugged["controller"], plugged["slot"]) == (name, 0, slot), plugged
    guest_session, second_session = sessions["guest"], sessions["second"]

    # Every pad is listed in its own session, in its slot, with the presses written to it.
    for listed, slot in ((session, 0), (guest_session, 4), (second_session, 5)):
        pads = pads_pressed(host, listed)
        assert [(p["controller"], p["slot"], p["kind"], p["device"]) for p in pads] == [(0, slot, "xbox", None)], pads

    # The guest's stream stops (its session waits, its pad stays), then it quits: its session
    # ends, and its pad goes before that; the owner's and the second guest's pads stay.
    assert result_of(streams["guest"])["inputs"] > 2
    assert [p["slot"] for p in pads_of(host, guest_session)] == [4]
    mark = bus.position()
    quit_app(host, guest_dir)
    ended = bus.wait_for("session_ended", session=guest_session, start=mark)
    assert ended["reason"] == "cancelled", ended
    removed = bus.of_type("gamepad_removed", session=guest_session)
    assert [(e["controller"], e["slot"]) for e in removed] == [(0, 4)], removed
    assert bus.events.index(removed[0]) < bus.events.index(ended), "the pad goes before the session ends"
    assert bus.of_type("gamepad_removed", session=session) == []
    assert bus.of_type("gamepad_removed", session=second_session) == []
    assert guest_session not in [s["id"] for s in host.sessions()]
    assert [(p["controller"], p["slot"]) for p in pads_of(host, session)] == [(0, 0)]
    assert [(p["controller"], p["slot"]) for p in pads_of(host, second_session)] == [(0, 5)]

    result_of(streams["second"])
    result_of(owner)
    quit_app(host, owner_dir)
    bus.wait_for("session_ended", session=session)
    removed = bus.of_type("gamepad_removed", session=session)
    assert [(e["controller"], e["slot"]) for e in removed] == [(0, 0)], removed
