"""Apps in their own containers or processes, with their own PulseAudio sink (issue: runners,
audio, gamepads), end to end with the real client library, the real Docker engine and a real
PulseAudio daemon (Hati starts a private one when none runs)."""

from __future__ import annotations

import io
import math
import os
import re
import select
import shutil
import struct
import subprocess
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from moonlight_python import MoonlightClient

from test_desktop import TEST_CLIENT, limelight
from conftest import private_pulseaudio_pids, report
from test_pairing import pair
from test_streaming import measure

IMAGE = "hati-e2e-app:test"
WIDTH, HEIGHT = 1280, 720
TONE_CMD = "gst-launch-1.0 -q audiotestsrc is-live=true wave=sine freq=440 volume=0.4 ! pulsesink"


def docker_unavailable() -> str | None:
    if not shutil.which("docker"):
        return "the docker command is not installed"
    result = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if result.returncode != 0:
        return f"the Docker engine does not answer: {result.stderr.strip()[:200]}"
    return None


def library_closure(binary: str) -> set[str]:
    """The binary and every shared library ldd resolves for it."""
    files = {binary}
    output = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    for match in re.finditer(r"(/\S+) \(0x", output):
        files.add(match.group(1))
    return files


def build_image() -> None:
    """A minimal image made here (nothing can be pulled): dash, pacat, the repo's Wayland test
    client, a 440 Hz tone, and their shared libraries, imported as a root filesystem."""
    files = set()
    for binary in ("/bin/sh", shutil.which("pacat"), str(TEST_CLIENT)):
        files |= library_closure(os.path.realpath(binary) if binary != str(TEST_CLIENT) else binary)
    tone = b"".join(
        struct.pack("<hh", sample, sample)
        for sample in (int(12000 * math.sin(2 * math.pi * 440 * i / 48000)) for i in range(48000))
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        def add_bytes(path: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))

        for path in sorted(files):
            target = "/app/hati-test-client" if path == str(TEST_CLIENT) else path
            add_bytes(target, Path(path).read_bytes(), 0o755)
        add_bytes("/bin/sh", Path(os.path.realpath("/bin/sh")).read_bytes(), 0o755)
        add_bytes("/app/tone.raw", tone)
        for directory in ("tmp", "run"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777
            tar.addfile(info)
    command = (
        '["/bin/sh", "-c", "/app/hati-test-client & while true; do '
        '/usr/bin/pacat --raw --rate=48000 --channels=2 --format=s16le /app/tone.raw; done"]'
    )
    subprocess.run(
        ["docker", "import", "--change", f"CMD {command}", "-", IMAGE],
        input=buffer.getvalue(),
        capture_output=True,
        check=True,
    )


@pytest.fixture(scope="module")
def docker_image():
    reason = docker_unavailable()
    if reason:
        # scripts/test.sh sets HATI_REQUIRE_DOCKER=1: there a missing engine is a failure.
        if os.environ.get("HATI_REQUIRE_DOCKER") == "1":
            pytest.fail(f"Docker runner not tested, and HATI_REQUIRE_DOCKER=1 requires it: {reason}")
        pytest.skip(f"Docker runner not tested: {reason}")
    build_image()
    return IMAGE


APPS = (
    f'[[apps]]\ntitle = "Docker test"\nxwayland = false\n[apps.runner]\ntype = "docker"\nimage = "{IMAGE}"\n'
    f'[[apps]]\ntitle = "Process test"\nxwayland = false\n[apps.runner]\ntype = "process"\n'
    f"cmd = \"sh -c '{TEST_CLIENT} & exec {TONE_CMD}'\"\n"
    '[[apps]]\ntitle = "Missing image"\nxwayland = false\n[apps.runner]\ntype = "docker"\nimage = "hati-no-such-image:1"\n'
)


@pytest.fixture
def runner_host(make_host, tmp_path):
    host = make_host(APPS).start()
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    return host, client


def hati_containers() -> list[str]:
    result = subprocess.run(
        ["docker", "ps", "-a", "--filter", "label=hati.managed=true", "--format", "{{.Names}} {{.Labels}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in result.stdout.splitlines() if line.strip()]


def pulse_server(host) -> str:
    return host.wait_for_log(r"audio server ready server=(\S+)").group(1)


def hati_sinks(server: str) -> list[str]:
    result = subprocess.run(
        ["pactl", "--server", server, "list", "short", "sinks"], capture_output=True, text=True, check=True
    )
    return [line.split()[1] for line in result.stdout.splitlines() if "\thati-" in line]


def app_processes() -> list[str]:
    result = subprocess.run(["pgrep", "-af", str(TEST_CLIENT)], capture_output=True, text=True)
    return [line for line in result.stdout.splitlines() if "pgrep" not in line]


def check_picture_and_sound(client: MoonlightClient, label: str) -> None:
    result = measure(client, 4)
    report(result.summary(label))
    with client.latest_frame() as frames:
        frame = frames.get(timeout=5).data
    red = frame[HEIGHT // 4, WIDTH // 4]
    white = frame[3 * HEIGHT // 4, 3 * WIDTH // 4]
    assert red[2] > 190 and red[0] < 60 and red[1] < 60, f"{label}: top-left is BGR {tuple(red)}, not red"
    assert min(white) > 200, f"{label}: bottom-right is BGR {tuple(white)}, not white"
    assert result.frames > 0.8 * result.expected, result.summary(label)
    assert result.audio_rms > 0.05, result.summary(f"{label}: silent audio from the app's sink")


def stream_docker_app(client: MoonlightClient, label: str) -> None:
    """Streams the "Docker test" app: its one session container, its picture and its sound."""
    client.start_stream(app="Docker test", width=WIDTH, height=HEIGHT, fps=60, ready_timeout=30)
    try:
        containers = hati_containers()
        assert len(containers) == 1 and "hati.session=" in containers[0], containers
        check_picture_and_sound(client, label)
    finally:
        client.stop_stream()


def test_docker_app_streams_its_picture_and_sound(runner_host, docker_image):
    host, client = runner_host
    stream_docker_app(client, "Docker app")
    server = pulse_server(host)
    assert len(hati_sinks(server)) == 1
    client.quit_app()
    assert hati_containers() == []
    assert hati_sinks(server) == []


def test_process_app_streams_its_picture_and_sound(runner_host):
    host, client = runner_host
    client.start_stream(app="Process test", width=WIDTH, height=HEIGHT, fps=60, ready_timeout=30)
    try:
        check_picture_and_sound(client, "Process app")
    finally:
        client.stop_stream()
    server = pulse_server(host)
    client.quit_app()
    assert app_processes() == []
    assert hati_sinks(server) == []


def test_missing_image_is_reported_to_the_client(runner_host, docker_image):
    host, client = runner_host
    events = host.event_reader()
    with pytest.raises(Exception) as error:
        client.start_stream(app="Missing image", width=WIDTH, height=HEIGHT, fps=60, ready_timeout=10)
    assert "hati-no-such-image:1" in str(error.value), error.value
    failed = events.wait_for("launch_failed", app="Missing image")
    assert "hati-no-such-image:1" in failed["error"], failed
    assert host.sessions() == []
    events.close()


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_twenty_launch_cancel_cycles_leave_nothing_behind(runner_host, docker_image):
    host, client = runner_host
    http = client._http
    apps = {app.name: app.id for app in http.get_app_list()}

    def cycle(title: str) -> None:
        http.launch_app(apps[title], WIDTH, HEIGHT, 60, 10000, 1, os.urandom(16), os.urandom(16), 196610)
        http.quit_app()

    cycle("Docker test")
    cycle("Process test")
    before = open_fds(host.process.pid)
    started = time.monotonic()
    for i in range(20):
        cycle("Docker test" if i % 2 == 0 else "Process test")
    after = open_fds(host.process.pid)
    report(f"20 launch/cancel cycles in {time.monotonic() - started:.1f} s; host fds {before} -> {after}")
    assert hati_containers() == []
    assert hati_sinks(pulse_server(host)) == []
    assert app_processes() == []
    assert after <= before + 2, f"open file descriptors grew from {before} to {after}"


@pytest.mark.skip_allowed_in_ci(
    match="/dev/uinput is writable here",
    why="CI has no /dev/uinput; where a machine has it, tests/runners/gamepad.rs "
    "(pads_through_dev_uinput_or_a_clean_degradation) tests the real pads instead",
)
def test_gamepads_without_uinput_warn_once_and_stream_on(make_host, tmp_path):
    if os.access("/dev/uinput", os.W_OK):
        pytest.skip("/dev/uinput is writable here: the missing-uinput path cannot be shown")
    host = make_host().start()
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    ffi = None
    client.start_stream(app="Test pattern", width=WIDTH, height=HEIGHT, fps=60, ready_timeout=20)
    try:
        ffi, lib = limelight()
        ffi.cdef(
            "int LiSendControllerArrivalEvent(uint8_t controllerNumber, uint16_t activeGamepadMask, "
            "uint8_t type, uint32_t supportedButtonFlags, uint16_t capabilities);\n"
            "int LiSendMultiControllerEvent(short controllerNumber, short activeGamepadMask, int buttonFlags, "
            "unsigned char leftTrigger, unsigned char rightTrigger, short leftStickX, short leftStickY, "
            "short rightStickX, short rightStickY);"
        )
        lib = ffi.dlopen(str(Path(__import__("moonlight_python").__file__).with_name("libmoonlight-common-c.so")))
        lib.LiSendControllerArrivalEvent(0, 1, 0x01, 0xFFFF, 0x02)
        for press in range(10):
            lib.LiSendMultiControllerEvent(0, 1, 0x1000 if press % 2 else 0, 0, 255, 1000, -1000, 0, 0)
            time.sleep(0.05)
        result = measure(client, 2)
    finally:
        client.stop_stream()
    assert result.frames > 0.8 * result.expected, result.summary("stream after gamepad input")
    # The warning came with the arrival, seconds ago; wait for the log reader to have it, then
    # count (the ten presses and two seconds of stream after it would have repeated it).
    host.wait_for_log("virtual gamepads are unavailable", timeout=10)
    warnings = [line for line in host.log_lines if "virtual gamepads are unavailable" in line]
    assert len(warnings) == 1, warnings
    assert "uinput" in warnings[0], warnings[0]


@pytest.fixture
def shared_pulse(tmp_path):
    """A PulseAudio server of its own that two Hati instances share, as users' hosts share the
    user's server."""
    if not shutil.which("pulseaudio"):
        pytest.fail("pulseaudio is not installed (make test installs it)")
    runtime = tmp_path / "pulse"
    runtime.mkdir()
    socket_path = runtime / "native"
    daemon = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disable-shm=yes",
         f"--load=module-native-protocol-unix socket={socket_path} auth-anonymous=1",
         "--load=module-null-sink sink_name=fallback"],
        env=dict(os.environ, XDG_RUNTIME_DIR=str(runtime), HOME=str(runtime)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not socket_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert socket_path.exists(), "the shared pulseaudio did not start"
    yield f"unix:{socket_path}"
    daemon.terminate()
    daemon.wait(timeout=10)


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Whether process `pid` exits within `timeout`, waiting on its pidfd (readable at exit)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(fd)


@pytest.mark.parametrize("end", ["sigterm", "sigkill"])
def test_the_private_sound_server_ends_with_the_host(make_host, end):
    """A host that started its own pulseaudio takes it along when it stops (SIGTERM: the
    shutdown path stops it) and when it is killed (SIGKILL: the kernel's parent-death signal).
    Every e2e host used to leave one running."""
    host = make_host()
    host.start()
    host.wait_for_log(r"audio server ready .*private=true")
    pids = private_pulseaudio_pids(host.state_dir)
    assert len(pids) == 1, f"expected the host's one private pulseaudio, found {pids}"
    if end == "sigterm":
        host.stop()
    else:
        host.kill()
    assert wait_for_exit(pids[0], timeout=5), f"pulseaudio {pids[0]} outlived the host ({end})"
    assert private_pulseaudio_pids(host.state_dir) == []


def test_killed_host_leftovers_are_removed_at_next_start_and_other_hosts_kept(make_host, tmp_path, docker_image, shared_pulse):
    hosts, clients, session_ids = [], [], []
    for name in ("crashing", "neighbour"):
        host = make_host(APPS)
        host.env["PULSE_SERVER"] = shared_pulse
        host.start()
        client = MoonlightClient(config_dir=tmp_path / f"client-{name}")
        pair(host, client)
        apps = {app.name: app.id for app in client._http.get_app_list()}
        client._http.launch_app(apps["Docker test"], WIDTH, HEIGHT, 60, 10000, 1, os.urandom(16), os.urandom(16), 196610)
        session_ids.append(host.sessions()[0]["id"])
        hosts.append(host)
        clients.append(client)
    crashing, neighbour = hosts
    containers = hati_containers()
    sinks = hati_sinks(shared_pulse)
    for session_id in session_ids:
        assert any(f"hati.session={session_id}" in c for c in containers), containers
        assert any(s.endswith(f"-{session_id}") for s in sinks), sinks
    crashing.kill()
    # Left behind by the crash.
    assert any(f"hati.session={session_ids[0]}" in c for c in hati_containers())
    assert any(s.endswith(f"-{session_ids[0]}") for s in hati_sinks(shared_pulse))

    crashing.start()  # the log starts afresh
    crashing.wait_for_log("removed what a crashed earlier run left containers=1 sinks=1 runtime_dirs=1")
    containers, sinks = hati_containers(), hati_sinks(shared_pulse)
    report(f"after restart: containers {len(containers)}, hati sinks {sinks}")
    assert not any(f"hati.session={session_ids[0]}" in c for c in containers), containers
    assert not any(s.endswith(f"-{session_ids[0]}") for s in sinks), sinks
    # The neighbour's session is untouched and still ends cleanly.
    assert any(f"hati.session={session_ids[1]}" in c for c in containers), containers
    assert any(s.endswith(f"-{session_ids[1]}") for s in sinks), sinks
    clients[1]._http.quit_app()
    assert hati_containers() == []
    assert hati_sinks(shared_pulse) == []


def host_threads(pid: int) -> list[str]:
    """The names of the host process's threads (`/proc/<pid>/task/*/comm`: Linux keeps 15 bytes
    of a name); none once the process is gone."""
    names = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return []
    for task in tasks:
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # the thread ended while listed
            pass
    return names


def pipeline_threads(pid: int, session: int) -> list[str]:
    """Threads of a Moonlight session's pipelines in the host: the video sender
    (`hati-send-<session>`, cut to 15 bytes as Linux cuts it; the video pipeline's appsink holds
    it, and dropping the pipeline joins it) and the audio pipeline's `pulsesrc` mainloop
    (`threaded-ml`; the host's own PulseAudio connection runs on `pulse`). GStreamer's streaming
    threads are no measure: its pool keeps idle threads under their last task's name."""
    sender = f"hati-send-{session}"[:15]
    return [name for name in host_threads(pid) if name in (sender, "threaded-ml")]


def pulse_connections(server: str, pid: int) -> list[str]:
    """The connections the host process `pid` holds to the PulseAudio `server` for pipelines:
    `pulsesrc` names its connection after the program (`hati`); the host's own connection,
    which manages the sinks, is `Hati`."""
    listing = subprocess.run(
        ["pactl", "--server", server, "list", "clients"], capture_output=True, text=True, check=True
    ).stdout
    found = []
    for block in listing.split("Client #")[1:]:
        number = block.split(None, 1)[0]
        if 'application.name = "hati"' in block and f'application.process.id = "{pid}"' in block:
            found.append(number)
    return found


def session_dirs(session_id: int) -> list[str]:
    """Runtime directories of a session, wherever this user's runtime base is."""
    bases = [os.environ.get("XDG_RUNTIME_DIR", ""), f"/tmp/hati-{os.getuid()}"]
    return [str(p) for base in bases if base for p in Path(base).glob(f"hati/*/session-{session_id}")]


# A real GStreamer error mid-stream: `identity error-after` fails the video pipeline after about
# two seconds at 60 fps, while the app, its desktop and its sink run.
BREAKER_APP = (
    '[[apps]]\ntitle = "Breaker"\nxwayland = false\n[apps.runner]\ntype = "process"\n'
    f"cmd = \"sh -c '{TEST_CLIENT} & exec {TONE_CMD}'\"\n"
    '[apps.video]\nsource = "videotestsrc is-live=true pattern=smpte ! identity error-after=120"\n'
)


@pytest.mark.parametrize(
    "way", ["cancel", "app_exit", "admin_stop", "host_shutdown", "pipeline_error", "client_timeout"]
)
def test_every_way_a_session_ends_releases_everything_once(make_host, tmp_path, shared_pulse, way):
    apps = APPS + BREAKER_APP + '[[apps]]\ntitle = "Quitter"\nxwayland = false\n[apps.runner]\ntype = "process"\ncmd = "sleep 6"\n'
    # The client timeout only for its own case: a paused session otherwise waits for /resume.
    timeout = "[streaming]\nclient_timeout_s = 2\n" if way == "client_timeout" else ""
    host = make_host(timeout + apps)
    host.env["PULSE_SERVER"] = shared_pulse
    host.start()
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    events = host.event_reader()
    app = {"app_exit": "Quitter", "pipeline_error": "Breaker"}.get(way, "Process test")
    # Quitter draws nothing: its desktop is black, which the client must accept as started.
    client.start_stream(app=app, width=WIDTH, height=HEIGHT, fps=60, ready_timeout=30,
                        black_frame_threshold=-1 if app == "Quitter" else 5)
    session = events.wait_for("session_launched", app=app)["session"]
    events.wait_for("session_streaming", session=session)
    pid = host.process.pid
    # What the session holds while it runs, each checked again after its end (so that check
    # can fail): the sink, the runtime directory, and the pipelines, seen from outside them.
    assert hati_sinks(shared_pulse), "the session has a sink while it runs"
    assert session_dirs(session), "the session has a runtime directory while it runs"
    running = sorted(pipeline_threads(pid, session))
    assert running == sorted([f"hati-send-{session}"[:15], "threaded-ml"]), (
        f"the pipelines' threads while streaming: {running}; all threads: {host_threads(pid)}")
    assert pulse_connections(shared_pulse, pid), "the audio pipeline's pulsesrc has no PulseAudio connection"
    expected = {
        "cancel": "cancelled",
        "app_exit": "app_exited",
        "admin_stop": "stopped",
        "host_shutdown": "host_shutdown",
        "pipeline_error": "pipeline_error",
        "client_timeout": "client_timeout",
    }[way]
    started = time.monotonic()
    if way == "cancel":
        client.stop_stream()
        client.quit_app()
    elif way == "admin_stop":
        result = host.cli("stop", str(session))
        assert result.returncode == 0, result.stderr
    elif way == "host_shutdown":
        host.stop()
    elif way == "client_timeout":
        # The client goes away without quitting the app: the session pauses, then times out.
        client.stop_stream()
        events.wait_for("session_paused", session=session)
        assert host.sessions()[0]["state"] == "paused"
    ended = events.wait_for("session_ended", session=session, timeout=30)
    took = time.monotonic() - started
    if way == "pipeline_error":
        failed = events.of_type("stream_failed", session=session)
        assert len(failed) >= 1 and "identity" in failed[0]["message"], failed
    # `session_ended` comes after everything was released (docs/admin-api.md): checked at once,
    # before the client's own teardown below, with no wait.
    threads_left = pipeline_threads(pid, session)
    connections_left = pulse_connections(shared_pulse, pid)
    sinks_left, apps_left, dirs_left = hati_sinks(shared_pulse), app_processes(), session_dirs(session)
    report(f"session ended by {way}: reason {ended['reason']} after {took:.1f} s; left: pipeline threads "
           f"{threads_left}, pulsesrc connections {connections_left}, sinks {sinks_left}, "
           f"app processes {len(apps_left)}, runtime dirs {dirs_left}")
    assert ended["reason"] == expected
    assert threads_left == [], f"the pipelines' threads outlived the session: {threads_left}"
    assert connections_left == [], "the audio pipeline's PulseAudio connection outlived the session"
    assert sinks_left == []
    assert apps_left == []
    assert dirs_left == []
    if way != "host_shutdown":
        assert host.sessions() == []
    if way not in ("cancel", "client_timeout"):
        try:
            client.stop_stream()
        except Exception:  # noqa: BLE001 - the host already ended the stream
            pass
    # Exactly once, counted after a later event on the same (ordered) bus rather than after a
    # bare sleep: the end of the stream when the host shut down, else a config reload's event.
    if way == "host_shutdown":
        events._thread.join(timeout=10)
        assert not events._thread.is_alive(), "the host's event stream did not end with the host"
    else:
        mark = events.position()
        result = host.cli("reload")
        assert result.returncode == 0, result.stderr
        events.wait_for("config_reloaded", start=mark)
    assert len(events.of_type("session_ended", session=session)) == 1
    events.close()
