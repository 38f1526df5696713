"""Harness for end-to-end tests: starts the real `hati serve` on free loopback ports with a
temporary state dir, and drives it with the real Moonlight client library (moonlight-python,
which wraps moonlight-common-c)."""

from __future__ import annotations

import json
import os
import resource
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

HATI_BIN = os.environ.get("HATI_BIN", str(Path(__file__).resolve().parents[2] / "target/debug/hati"))
# Offsets of the derived ports from the HTTP port (HTTPS, RTSP, video, control, audio).
PORT_OFFSETS = (0, -5, 21, 9, 10, 11)


FIGURES: list[str] = []


def report(line: str) -> None:
    """Records a measured figure; all of them are printed at the end of the run."""
    FIGURES.append(line)


def pytest_terminal_summary(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.section("measured figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
    if ALLOWED_SKIPS:
        terminalreporter.section("skips allowed under CI=true")
        for line in ALLOWED_SKIPS:
            terminalreporter.write_line(line)


# The tests of the release build's products (the container image, the Debian package) run last:
# `make test` compiles the release binary in the background, at idle CPU priority, while the
# other end-to-end tests run (scripts/test.sh), and these wait for it.
RELEASE_FIXTURES = {"image", "deb"}


def pytest_collection_modifyitems(session, config, items) -> None:
    items.sort(key=lambda item: bool(RELEASE_FIXTURES & set(getattr(item, "fixturenames", ()))))


# Under CI (`CI=true`, as `make test` runs there: root, Docker, PulseAudio, Wayland tools and
# Chromium installed) a skipped test is a check that did not run, so it fails the run. A test
# whose skip is acceptable in CI says so with `@pytest.mark.skip_allowed_in_ci(match=..., why=...)`:
# only a skip whose reason contains `match` passes, and `why` must say why CI may skip it.
# Allowed now: test_runners.py::test_gamepads_without_uinput_warn_once_and_stream_on, when
# /dev/uinput is writable (the real pad is then tested by tests/runners/gamepad.rs).
ALLOWED_SKIPS: list[str] = []


def ci_forbids_skips() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "skip_allowed_in_ci(match, why): under CI=true, a skip whose reason contains `match` "
        "does not fail the run; `why` says why that is acceptable there",
    )


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_skip(report, where: str) -> None:
    reason = _skip_reason(report)
    report.outcome = "failed"
    report.longrepr = (
        f"{where} was skipped under CI=true, where every test must run: {reason}\n"
        "(CI has root, Docker, PulseAudio, the Wayland tools and Chromium: install what is missing, or "
        "mark a skip that is acceptable there with @pytest.mark.skip_allowed_in_ci(match=..., why=...))"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skip (in a fixture, a `skipif` mark or the test itself) is a failure."""
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail") or not ci_forbids_skips():
        return
    reason = _skip_reason(report)
    allowed = item.get_closest_marker("skip_allowed_in_ci")
    if allowed is not None:
        match, why = allowed.kwargs.get("match", ""), allowed.kwargs.get("why", "")
        if match and why and match in reason:
            ALLOWED_SKIPS.append(f"{item.nodeid}: {reason} (allowed: {why})")
            return
    _fail_skip(report, item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A whole module skipped at collection (`pytest.skip(allow_module_level=True)`,
    `importorskip`) fails under CI=true too."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and ci_forbids_skips():
        _fail_skip(report, report.nodeid)


def free_http_port() -> int:
    """An HTTP port whose derived TCP and UDP ports are all free on 127.0.0.1."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base < 1100 or base > 65000:
            continue
        if all(_free(base + offset) for offset in PORT_OFFSETS):
            return base
    raise RuntimeError("no free port range found")


def _free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


class EventReader:
    """Reads the host's Server-Sent Events in a thread; tests wait on events, not log text."""

    def __init__(self, socket_path: Path):
        self.events: list[dict] = []
        self._lock = threading.Condition()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(str(socket_path))
        self._sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: hati\r\n\r\n")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self.wait_for_open()

    def _run(self) -> None:
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = self._sock.recv(65536)
            if not chunk:
                return
            raw += chunk
        head, _, raw = raw.partition(b"\r\n\r\n")
        chunked = b"transfer-encoding: chunked" in head.lower()
        body = b""
        while True:
            if chunked:
                while True:
                    line_end = raw.find(b"\r\n")
                    if line_end < 0:
                        break
                    size = int(raw[:line_end].split(b";")[0] or b"0", 16)
                    if len(raw) < line_end + 2 + size + 2:
                        break
                    body += raw[line_end + 2 : line_end + 2 + size]
                    raw = raw[line_end + 2 + size + 2 :]
            else:
                body, raw = body + raw, b""
            while b"\n\n" in body:
                message, _, body = body.partition(b"\n\n")
                self._message(message.decode())
            try:
                chunk = self._sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            raw += chunk

    def _message(self, message: str) -> None:
        data = [line[5:].strip() for line in message.splitlines() if line.startswith("data:")]
        with self._lock:
            if message.startswith(": hati events"):
                self.events.append({"type": "_open"})
            elif data:
                self.events.append(json.loads("".join(data)))
            self._lock.notify_all()

    def wait_for_open(self, timeout: float = 10) -> None:
        self.wait_for("_open", timeout=timeout)

    def wait_for(self, kind: str, timeout: float = 30, start: int = 0, **fields) -> dict:
        """The first event of type `kind` (at index ≥ `start`) whose fields match."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for event in self.events[start:]:
                    if event.get("type") == kind and all(event.get(k) == v for k, v in fields.items()):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    kinds = [e.get("type") for e in self.events]
                    raise AssertionError(f"no {kind} event {fields} within {timeout}s; saw {kinds}")
                self._lock.wait(remaining)

    def position(self) -> int:
        with self._lock:
            return len(self.events)

    def of_type(self, kind: str, **fields) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e.get("type") == kind and all(e.get(k) == v for k, v in fields.items())]

    def close(self) -> None:
        self._sock.close()


def admin_request(state_dir: Path, path: str) -> object:
    """GET `path` from the admin API on the unix socket of the host whose state is in
    `state_dir`; returns the decoded JSON (tests and the scripts share it)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(state_dir / "admin.sock"))
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: hati\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return json.loads(body)


class Host:
    """One `hati serve` process; its log is collected for assertions."""

    def __init__(self, workdir: Path, extra_config: str = "", mdns: bool = False, bind: str = "127.0.0.1"):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir = workdir / "state"
        self.http_port = free_http_port()
        self.https_port = self.http_port - 5
        self.config_path = workdir / "config.toml"
        # Extra keys first: top-level keys must precede the first table header.
        self.config_path.write_text(
            extra_config
            + f'\n[network]\nbind = "{bind}"\nhttp_port = {self.http_port}\nmdns = {str(mdns).lower()}\n'
        )
        self.process: subprocess.Popen | None = None
        # Extra environment for the host process (e.g. PULSE_SERVER), and an optional open-file
        # limit it starts under (what `ulimit -n` sets).
        self.env: dict[str, str] = {}
        self.nofile: int | None = None
        # A network namespace to run in (`ip netns exec`), for the network-condition tests.
        self.netns: str | None = None
        # The role and its arguments: `serve`, or `gateway` / `node --gateway … --token …`.
        self.role: list[str] = ["serve"]
        self.log_lines: list[str] = []
        self._log_lock = threading.Lock()
        self._bus: EventReader | None = None

    def start(self, timeout: float = 30.0) -> "Host":
        env = dict(os.environ, RUST_LOG=os.environ.get("HATI_TEST_LOG", "info,tokio_enet=warn"), NO_COLOR="1")
        env.update(self.env)
        nofile = self.nofile

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.log_lines = []
        if self._bus is not None:
            self._bus.close()
            self._bus = None
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.process = subprocess.Popen(
            [*prefix, HATI_BIN, "--state-dir", str(self.state_dir), *self.role, "--config", str(self.config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            preexec_fn=limit,
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        self.wait_for_log("hati is running", timeout)
        return self

    def _read_log(self) -> None:
        assert self.process and self.process.stdout
        for line in self.process.stdout:
            line = re.sub(r"\x1b\[[0-9;]*m", "", line.rstrip())
            with self._log_lock:
                self.log_lines.append(line)
            print("[hati]", line)

    def wait_for_log(self, pattern: str, timeout: float = 30.0, start: int = 0) -> re.Match:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            with self._log_lock:
                lines = list(self.log_lines[start:])
            for line in lines:
                match = regex.search(line)
                if match:
                    return match
            if self.process and self.process.poll() is not None:
                raise AssertionError(f"hati exited ({self.process.returncode}) before logging {pattern!r}")
            time.sleep(0.05)
        raise AssertionError(f"hati did not log {pattern!r} within {timeout}s")

    def log_position(self) -> int:
        with self._log_lock:
            return len(self.log_lines)

    def cli(self, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess:
        return subprocess.run(
            [HATI_BIN, "--state-dir", str(self.state_dir), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def admin(self, path: str) -> object:
        """GET `path` from the admin API on the host's unix socket; returns the decoded JSON."""
        return admin_request(self.state_dir, path)

    def bus(self) -> "EventReader":
        """This host process's event reader, opened on first use (and again after a restart):
        tests wait on its events rather than on log text."""
        if self._bus is None:
            self._bus = self.event_reader()
        return self._bus

    def event_reader(self) -> "EventReader":
        """Subscribes to the host's event stream (`GET /api/v1/events` on the admin socket)."""
        return EventReader(self.state_dir / "admin.sock")

    def sessions(self) -> list[dict]:
        """The running sessions as the admin API shows them."""
        return self.admin("/sessions")  # type: ignore[return-value]

    def kill(self) -> None:
        """SIGKILL, as a crash would end it: nothing is cleaned up."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def private_pulseaudio_pids(state_dir: Path) -> list[int]:
    """The processes of the private pulseaudio whose socket is under `state_dir`."""
    marker = f"socket={state_dir}/".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # it exited meanwhile
            continue
        if argv and argv[0].endswith(b"pulseaudio") and any(marker in arg for arg in argv):
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def make_host(tmp_path):
    hosts: list[Host] = []

    def make(extra_config: str = "", mdns: bool = False, bind: str = "127.0.0.1") -> Host:
        host = Host(tmp_path / f"host{len(hosts)}", extra_config, mdns, bind)
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.stop()


@pytest.fixture
def host(make_host) -> Host:
    return make_host().start()
