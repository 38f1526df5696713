"""Hati's container image (`make image`, scripts/image.sh) run with deploy/compose.yaml's own
settings through docker-compose, end to end with the real Moonlight client library: pairing
kept from a host of this tree (an upgrade), the Test pattern with sound, and a Docker app that
the containerised host starts through the Docker socket, whose Wayland picture and PulseAudio
sound reach the client through the shared runtime directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from moonlight_python import MoonlightClient

from conftest import Host, report
from test_pairing import pair
from test_runners import IMAGE as APP_IMAGE
from test_runners import build_image as build_app_image
from test_runners import docker_unavailable, hati_containers, hati_sinks, stream_docker_app
from test_streaming import FPS, HEIGHT, WIDTH, assert_good_stream, measure

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy/compose.yaml"

APPS = (
    '[[apps]]\ntitle = "Test pattern"\ncompositor = false\n[apps.video]\n'
    'source = "hatitestsrc background=0xff2060a0 foreground=0xffffd040"\n'
    '[apps.audio]\nsource = "audiotestsrc is-live=true wave=sine freq=440 volume=0.4"\n'
    f'[[apps]]\ntitle = "Docker test"\nxwayland = false\n[apps.runner]\ntype = "docker"\nimage = "{APP_IMAGE}"\n'
)


def require_docker_compose() -> None:
    reason = docker_unavailable()
    if reason is None and not shutil.which("docker-compose"):
        reason = "docker-compose is not installed (scripts/setup.sh --test installs it)"
    if reason:
        if os.environ.get("HATI_REQUIRE_DOCKER") == "1":
            pytest.fail(f"the container image is not tested, and HATI_REQUIRE_DOCKER=1 requires it: {reason}")
        pytest.skip(f"the container image is not tested: {reason}")


@pytest.fixture(scope="module")
def image() -> str:
    """`make image`'s script; its cached stages make a rebuild of unchanged inputs quick."""
    require_docker_compose()
    started = time.monotonic()
    result = subprocess.run([str(REPO / "scripts/image.sh"), "image"], capture_output=True, text=True)
    assert result.returncode == 0, f"scripts/image.sh failed:\n{result.stderr[-4000:]}"
    tag = result.stdout.strip().splitlines()[-1]
    size = [line for line in result.stderr.splitlines() if line.startswith("image: size:")]
    report(f"container image {tag} built in {time.monotonic() - started:.0f} s; {size[-1] if size else ''}")
    return tag


class ComposedHost(Host):
    """A Host whose `hati serve` is the image's, started by `docker-compose up` with
    deploy/compose.yaml; state, config and runtime directories are host paths of the test."""

    def __init__(self, like: Host, image: str):
        self.__dict__.update(like.__dict__)
        self._bus = None  # the source host's event reader listened to a host that is gone
        self.image = image
        self.project = f"hatie2e{os.getpid()}{int(time.monotonic() * 1000) % 100000}"
        # Short: the PulseAudio and Wayland socket paths under it must fit a sockaddr_un.
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="hati-run-", dir="/tmp"))
        self.config_dir = self.workdir / "etc"
        self.config_dir.mkdir(exist_ok=True)
        shutil.copy(self.config_path, self.config_dir / "config.toml")
        self.started_in: float | None = None
        self._logs: subprocess.Popen | None = None

    def compose_command(self, *args: str) -> tuple[list[str], dict[str, str]]:
        """The docker-compose command line for this project and the environment that fills
        deploy/compose.yaml's variables."""
        env = dict(
            os.environ,
            HATI_IMAGE=self.image,
            HATI_STATE=str(self.state_dir),
            HATI_CONFIG_DIR=str(self.config_dir),
            HATI_RUNTIME_DIR=str(self.runtime_dir),
            RUST_LOG=os.environ.get("HATI_TEST_LOG", "info,tokio_enet=warn"),
        )
        return ["docker-compose", "-f", str(COMPOSE), "-p", self.project, *args], env

    def compose(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        command, env = self.compose_command(*args)
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
        if check:
            assert result.returncode == 0, f"docker-compose {' '.join(args)}: {result.stderr[-2000:]}"
        return result

    def container(self) -> str:
        return self.compose("ps", "-q").stdout.strip()

    def start(self, timeout: float = 30.0) -> "ComposedHost":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        begun = time.monotonic()
        self.compose("up", "-d")
        url = f"http://127.0.0.1:{self.http_port}/serverinfo"
        deadline = begun + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"/serverinfo did not answer within {timeout} s:\n{self.compose('logs').stdout[-3000:]}")
            time.sleep(0.01)
        answered = time.monotonic()
        answered_wall = time.time()
        self.started_in = answered - begun
        # From the container's process start (Docker's StartedAt) to /serverinfo answering:
        # Hati's own share, without docker-compose's and the engine's.
        started_at = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.StartedAt}}", self.container()],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        seconds, _, fraction = started_at.rstrip("Z").partition(".")
        epoch = time.mktime(time.strptime(seconds, "%Y-%m-%dT%H:%M:%S")) - time.timezone
        self.serving_after_start = answered_wall - (epoch + float(f"0.{fraction or 0}"))
        # The log, for wait_for_log: `docker-compose logs -f` ends when the container does.
        self.log_lines = []
        command, env = self.compose_command("logs", "--no-color", "-f")
        self._logs = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.process = self._logs
        threading.Thread(target=self._read_log, daemon=True).start()
        self.wait_for_log("hati is running", timeout)
        return self

    def hati_uid(self) -> int:
        """The uid `hati serve` runs as, read from /proc of its process (tini's child)."""
        tini = int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", self.container()],
                                  capture_output=True, text=True, check=True).stdout)
        children = Path(f"/proc/{tini}/task/{tini}/children").read_text().split()
        assert children, "tini has no child: hati is not running"
        status = Path(f"/proc/{children[0]}/status").read_text()
        name = next(line for line in status.splitlines() if line.startswith("Name:"))
        assert "hati" in name, name
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        return int(uid_line.split()[1])

    def stop(self) -> None:
        self.compose("down", "--timeout", "15", check=False)
        if self._logs and self._logs.poll() is None:
            self._logs.kill()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)


def runtime_leftovers(host: ComposedHost) -> list[str]:
    """Session runtime directories left under the shared runtime directory."""
    return sorted(str(p.relative_to(host.runtime_dir)) for p in host.runtime_dir.glob("*/session-*"))


def pulse_socket(host: ComposedHost) -> str:
    sockets = list(host.runtime_dir.glob("*/pulse/native"))
    assert len(sockets) == 1, f"the private PulseAudio socket is not in the shared runtime directory: {sockets}"
    return f"unix:{sockets[0]}"


def test_image_with_compose_keeps_pairing_streams_and_runs_docker_apps(make_host, tmp_path, image):
    build_app_image()
    # An installation made by this tree's `hati serve`: pairing done by the real client library.
    source = make_host(APPS).start()
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(source, client)
    identity_before = json.loads((source.state_dir / "identity.json").read_text())
    clients_before = (source.state_dir / "clients.json").read_text()
    source.stop()
    # Hati before this image wrote no `format` file: the state is what an older version left.
    (source.state_dir / "format").unlink()

    host = ComposedHost(source, image)
    try:
        host.start()
        report(
            f"container start to /serverinfo answering: {host.serving_after_start * 1000:.0f} ms from the "
            f"container's process start (Docker's StartedAt), {host.started_in * 1000:.0f} ms from `docker-compose up -d`"
        )
        assert host.hati_uid() != 0, "hati runs as root in the container"

        # `hati doctor` inside the running container sees what compose handed it.
        doctor = host.compose("exec", "-T", "hati", "hati", "doctor", "--config", "/etc/hati/config.toml", "--json", check=False)
        checks = {check["id"]: check for check in json.loads(doctor.stdout)["checks"]}
        for ok in ("encoder.h264", "docker", "runtime-dir", "pulseaudio"):
            assert checks[ok]["status"] == "ok", checks[ok]
        assert checks["ports"]["status"] == "fail" and "Hati is already running" in checks["ports"]["summary"], checks["ports"]

        # The upgrade kept the identity and the pairing: the client's pinned certificate still
        # matches, and the host still knows the client.
        info = client._http.parse_server_info(client._http.get_server_info(use_https=True))
        assert info.unique_id == identity_before["unique_id"], info
        assert info.paired, "the client is no longer paired after the upgrade"
        assert (host.state_dir / "clients.json").read_text() == clients_before
        assert (host.state_dir / "format").read_text() == "1\n", "the older state was not recorded as format 1"
        # A new client pairs with the containerised host (PIN through `hati pair` on its admin
        # socket in the state volume) and sees its apps.
        newcomer = MoonlightClient(config_dir=tmp_path / "newcomer")
        pair(host, newcomer)
        assert {app.name for app in newcomer._http.get_app_list()} == {"Test pattern", "Docker test"}

        client.start_stream(app="Test pattern", width=WIDTH, height=HEIGHT, fps=FPS, ready_timeout=20)
        try:
            result = measure(client, 10)
        finally:
            client.stop_stream()
        report(result.summary("container, Test pattern 720p60"))
        assert_good_stream(result, min_share=0.95)
        client.quit_app()

        stream_docker_app(client, "container, Docker app")
        server = pulse_socket(host)
        assert len(hati_sinks(server)) == 1
        assert len(runtime_leftovers(host)) == 1
        client.quit_app()
        assert hati_containers() == []
        assert hati_sinks(server) == []
        assert runtime_leftovers(host) == []
    finally:
        host.stop()
