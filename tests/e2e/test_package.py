"""The Debian package (`make deb`: scripts/deb.sh, deploy/debian/, docs/package.md): its systemd
unit passes `systemd-analyze verify` and scores OK in `systemd-analyze security`; apt installs it
with its dependencies into a clean Debian 12 root (a container of `scripts/image.sh base`); the
unit's own command line, run as the unit's user with its environment, serves; and installing it
over the state of a host of this tree that a real Moonlight client paired with (an upgrade from a
root-run host), reinstalling it and upgrading it keep that pairing, byte for byte."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from moonlight_python import MoonlightClient

from conftest import Host, report
from test_pairing import pair
from test_runners import docker_unavailable
from test_streaming import measure

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("HATI_BUILD_CACHE", "/var/cache/hati-build"))
UNIT = "/usr/lib/systemd/system/hati.service"
CONFIG = "/etc/hati/config.toml"
MAX_EXPOSURE = 3.0


def run(*args: str, timeout: float = 600, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check:
        assert result.returncode == 0, f"{shlex.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


# --- The package --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deb() -> Path:
    """`make deb`'s script (the release build it needs is incremental after the first)."""
    missing = [tool for tool in ("dpkg-deb", "dpkg-shlibdeps", "systemd-analyze", "strip") if not shutil.which(tool)]
    if missing:
        pytest.skip(f"the Debian package is not tested: {', '.join(missing)} missing (scripts/setup.sh --package installs them)")
    started = time.monotonic()
    result = run(str(REPO / "scripts/deb.sh"), timeout=3600)
    path = REPO / result.stdout.strip().splitlines()[-1]
    assert path.is_file() and path.suffix == ".deb", result.stdout
    report(f"package {path.name} ({path.stat().st_size / 1e6:.1f} MB) built by scripts/deb.sh in {time.monotonic() - started:.0f} s")
    return path


def test_package_contents_and_control(deb, tmp_path):
    fields = {
        name: run("dpkg-deb", "-f", str(deb), name).stdout.strip()
        for name in ("Package", "Version", "Architecture", "Depends", "Recommends", "Section", "Priority")
    }
    version = re.search(r'^version = "(.*)"$', (REPO / "Cargo.toml").read_text(), re.M).group(1)
    assert fields["Package"] == "hati" and fields["Version"] == version, fields
    assert fields["Architecture"] == run("dpkg", "--print-architecture").stdout.strip()
    assert (fields["Section"], fields["Priority"]) == ("net", "optional"), fields
    depends = [alternative.strip().split()[0] for alternative in fields["Depends"].split(",")]
    for package in ("libc6", "libgstreamer1.0-0", "gstreamer1.0-plugins-ugly", "pulseaudio", "xwayland"):
        assert package in depends, f"{package} missing from Depends: {fields['Depends']}"
    assert "libgl1-mesa-dri" in fields["Recommends"] and "libgl1-mesa-dri" not in depends, fields

    run("dpkg-deb", "-x", str(deb), str(tmp_path))
    for path in (UNIT, CONFIG, "/usr/bin/hati", "/usr/lib/sysusers.d/hati.conf", "/usr/lib/udev/rules.d/60-hati.rules",
                 "/usr/share/doc/hati/copyright", "/usr/share/doc/hati/README.md"):
        assert (tmp_path / path.lstrip("/")).is_file(), f"{path} is not in the package"
    assert (tmp_path / CONFIG.lstrip("/")).read_bytes() == (REPO / "config/default.toml").read_bytes()
    sections = run("readelf", "-S", "-W", str(tmp_path / "usr/bin/hati")).stdout
    assert ".symtab" not in sections and ".debug_info" not in sections, "/usr/bin/hati is not stripped"
    control = tmp_path / "control"
    run("dpkg-deb", "-e", str(deb), str(control))
    assert (control / "conffiles").read_text().split() == [CONFIG]


def test_unit_verifies_and_its_exposure_is_ok(deb, tmp_path):
    # `systemd-analyze verify` checks that ExecStart/ExecReload name executables, which the build
    # machine lacks (/usr/bin/hati is not installed here). So it runs on the real unit file in a
    # scratch root: the package's files, the system's unit files (sysinit.target & co., which the
    # default dependencies pull in) and /bin/kill; --root resolves every path inside it.
    root = tmp_path / "root"
    run("dpkg-deb", "-x", str(deb), str(root))
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True, dirs_exist_ok=True)
    shutil.copy2(shutil.which("kill") or "/bin/kill", root / "usr/bin/kill")
    (root / "bin").symlink_to("usr/bin")
    unit = root / UNIT.lstrip("/")
    verify = run("systemd-analyze", "verify", f"--root={root}", str(unit), check=False)
    assert verify.returncode == 0 and not verify.stderr.strip(), f"systemd-analyze verify: {verify.stdout}{verify.stderr}"

    security = run("systemd-analyze", "security", "--offline=true", str(unit), check=False)
    match = re.search(r"Overall exposure level for hati\.service: ([0-9.]+) (\S+)", security.stdout)
    assert match, security.stdout + security.stderr
    score = float(match.group(1))
    report(f"systemd-analyze security --offline=true hati.service: exposure {score} {match.group(2)} (limit {MAX_EXPOSURE})")
    assert score <= MAX_EXPOSURE, security.stdout


# --- Installed into a clean Debian 12 root ---------------------------------------------------------


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    """A host of this tree's debug build (HATI_BIN, as root: a state directory root owns) that a
    real Moonlight client paired with; stopped. Its state directory becomes the package's."""
    workdir = tmp_path_factory.mktemp("source")
    source = Host(workdir / "host")
    source.start()
    client = MoonlightClient(config_dir=workdir / "client")
    try:
        pair(source, client)
    finally:
        source.stop()
    return source, client


@pytest.fixture(scope="module")
def container(deb, paired):
    """A container of the Debian 12 minbase image with the package installed by apt, the paired
    state bind-mounted at /var/lib/hati, host networking (Moonlight reaches it on 127.0.0.1)."""
    reason = docker_unavailable()
    if reason:
        pytest.skip(f"the package's installation is not tested: {reason}")
    source, _ = paired
    base = run(str(REPO / "scripts/image.sh"), "base").stdout.strip().splitlines()[-1]
    (CACHE / "apt").mkdir(parents=True, exist_ok=True)
    name = f"hati-package-test-{os.getpid()}"
    run("docker", "run", "-d", "--name", name, "--network", "host",
        "-v", f"{(CACHE / 'apt').resolve()}:/var/cache/apt/archives",
        "-v", f"{deb.parent.resolve()}:/deb:ro",
        "-v", f"{source.state_dir}:/var/lib/hati",
        "-e", "DEBIAN_FRONTEND=noninteractive", base, "sleep", "infinity")
    try:
        started = time.monotonic()
        run("docker", "exec", name, "apt-get", "update", "-qq")
        install = run("docker", "exec", "-w", "/deb", name, "apt-get", "install", "-y", "-q", f"./{deb.name}")
        newly = re.search(r"(\d+) newly installed", install.stdout)
        report(f"apt-get update + install ./{deb.name} in a clean bookworm minbase container: "
               f"{time.monotonic() - started:.0f} s ({newly.group(1) if newly else '?'} packages newly installed)")
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def dexec(container: str, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return run("docker", "exec", container, *args, check=check, **kwargs)


def test_apt_installs_dependencies_user_and_config(container, deb):
    for package in ("hati", "gstreamer1.0-plugins-ugly", "gstreamer1.0-plugins-bad", "pulseaudio", "xwayland"):
        status = dexec(container, "dpkg-query", "-W", "-f", "${Status}", package, check=False).stdout
        assert status == "install ok installed", f"{package}: {status!r} (a Depends missing?)"
    user = dexec(container, "getent", "passwd", "hati").stdout.strip().split(":")
    assert user[5] == "/var/lib/hati" and user[6] == "/usr/sbin/nologin" and user[2] != "0", user
    for group in ("hati", "input", "render", "docker"):
        dexec(container, "getent", "group", group)
    packaged = run("sh", "-c", f"dpkg-deb --fsys-tarfile {shlex.quote(str(deb))} | tar -xO .{CONFIG}").stdout
    assert dexec(container, "cat", CONFIG).stdout == packaged
    assert CONFIG in dexec(container, "dpkg-query", "-W", "-f", "${Conffiles}", "hati").stdout
    # The root-owned state of the source host was handed to hati (postinst), and kept private.
    assert dexec(container, "stat", "-c", "%U %a", "/var/lib/hati").stdout.split() == ["hati", "700"]
    assert dexec(container, "find", "/var/lib/hati", "!", "-user", "hati").stdout == ""


def unit_settings(container: str) -> dict[str, list[str]]:
    """The [Service] settings of the installed unit file: key -> values in order."""
    settings: dict[str, list[str]] = {}
    section = None
    for line in dexec(container, "cat", UNIT).stdout.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


class UnitProcess:
    """The unit's ExecStart run in the container as the unit's User/Group/SupplementaryGroups,
    with its Environment= and UMask=, its RuntimeDirectory made as systemd makes it: what
    systemd would run, minus the sandbox (systemd is not PID 1 in the container)."""

    PID_FILE = "/run/hati-package-test.pid"

    def __init__(self, container: str):
        self.container = container
        unit = unit_settings(container)
        self.user = unit["User"][-1]
        group = unit["Group"][-1]
        groups = [g for value in unit.get("SupplementaryGroups", []) for g in value.split()]
        environment = [pair for value in unit.get("Environment", []) for pair in shlex.split(value)]
        command = shlex.split(unit["ExecStart"][-1])
        umask = unit.get("UMask", ["0022"])[-1]
        for directory in unit.get("RuntimeDirectory", []):
            mode = unit.get("RuntimeDirectoryMode", ["0755"])[-1]
            dexec(container, "install", "-d", "-o", self.user, "-g", group, "-m", mode, f"/run/{directory}")
        self.command_line = shlex.join(command)
        # runuser (util-linux; setpriv is not in a minbase root) sets HOME, USER, LOGNAME and
        # SHELL from the user's passwd entry as systemd's User= does, and the groups the unit
        # names; it stays as the parent of the command, whose pid `main_pid` finds.
        supplementary = " ".join(f"-G {shlex.quote(g)}" for g in groups)
        script = (
            f"echo $$ > {self.PID_FILE}; umask {umask}; cd /; exec env -i "
            f"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin LANG=C.UTF-8 "
            f"NO_COLOR=1 RUST_LOG=info,tokio_enet=warn {shlex.join(environment)} "
            f"runuser -u {shlex.quote(self.user)} -g {shlex.quote(group)} {supplementary} -- {self.command_line}"
        )
        self.lines: list[str] = []
        self.process = subprocess.Popen(["docker", "exec", container, "sh", "-c", script],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            print("[hati in container]", line.rstrip())

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.process.poll() is not None:
                raise AssertionError(f"the unit's command exited ({self.process.returncode}):\n" + "\n".join(self.lines[-40:]))
            assert time.monotonic() < deadline, f"{text!r} not logged within {timeout} s:\n" + "\n".join(self.lines[-40:])
            time.sleep(0.05)

    def main_pid(self) -> str:
        """The pid of the unit's command (runuser's child), as the container sees it."""
        runuser = dexec(self.container, "cat", self.PID_FILE).stdout.strip()
        children = dexec(self.container, "cat", f"/proc/{runuser}/task/{runuser}/children").stdout.split()
        assert len(children) == 1, f"runuser ({runuser}) has children {children}"
        return children[0]

    def credentials(self) -> tuple[int, int, set[str]]:
        """(uid of the command, uid of the unit's user, names of the command's groups)."""
        status = dexec(self.container, "cat", f"/proc/{self.main_pid()}/status").stdout
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
        gids = re.search(r"^Groups:(.*)$", status, re.M).group(1).split()
        names = {dexec(self.container, "getent", "group", gid).stdout.split(":")[0] for gid in gids}
        return uid, int(dexec(self.container, "id", "-u", self.user).stdout), names

    def stop(self) -> None:
        """SIGTERM to the command, as systemd stops MainPID; runuser then exits with it."""
        if self.process.poll() is None:
            pid = self.main_pid()
            dexec(self.container, "kill", "-TERM", pid, check=False)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                dexec(self.container, "kill", "-KILL", pid, check=False)
                self.process.wait(timeout=10)


def move_ports(container: str, http_port: int) -> None:
    """Edits the installed conffile as an admin would: the pairing host's ports (off the
    defaults, which other tests may use), loopback only, no mDNS."""
    text = dexec(container, "cat", CONFIG).stdout
    for key, value in (("bind", '"127.0.0.1"'), ("http_port", str(http_port)), ("mdns", "false")):
        text, count = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
        assert count == 1, f"no {key} in {CONFIG}"
    run("docker", "exec", "-i", container, "sh", "-c", f"cat > {CONFIG}", input=text)


def serverinfo_http(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/serverinfo", timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def assert_still_paired(client: MoonlightClient, identity: dict) -> None:
    """The same client object (it pins the host certificate it paired with) over HTTPS."""
    info = client._http.parse_server_info(client._http.get_server_info(use_https=True))
    assert info.unique_id == identity["unique_id"], info
    assert info.paired, "the client is no longer paired with the package's host"
    assert [app.name for app in client.apps()] == ["Desktop", "Test pattern"]


def state_snapshot(state_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(state_dir)): p.read_bytes() for p in sorted(state_dir.rglob("*")) if p.is_file()}


def test_unit_command_line_as_its_user_serves_and_keeps_the_pairing(container, paired):
    source, client = paired
    identity = json.loads((source.state_dir / "identity.json").read_text())
    move_ports(container, source.http_port)
    unit = UnitProcess(container)
    try:
        unit.wait_for_log("hati is running")
        uid, user_uid, groups = unit.credentials()
        assert uid == user_uid and uid != 0, (uid, user_uid)
        assert {"input", "render", "docker"} <= groups, groups
        message = (f"the unit's ExecStart `{unit.command_line}` ran as its user {unit.user} (uid {uid}, groups "
                   f"{' '.join(sorted(groups))}) through runuser with its Environment=, not by systemd "
                   "(systemd is not PID 1 in the container)")
        print(message)
        report(message)
        assert identity["unique_id"] in serverinfo_http(source.http_port)
        assert_still_paired(client, identity)
        # The installed dependencies stream: x264enc (ugly), opusenc (base), Hati's own elements.
        client.start_stream(app="Test pattern", width=640, height=360, fps=30, ready_timeout=30)
        try:
            result = measure(client, 3)
        finally:
            client.stop_stream()
        client.quit_app()
        report(f"package's host in the container, Test pattern 640x360 at 30 fps: {result.frames} frames decoded "
               f"in {result.seconds:.1f} s, mean brightness {result.mean_brightness:.0f}, {result.audio_chunks} audio chunks")
        assert result.frames > 0 and result.audio_chunks > 0 and result.mean_brightness > 20, result.summary("stream")
    finally:
        unit.stop()


def test_reinstall_and_upgrade_keep_state_and_config(container, paired, deb, tmp_path):
    source, client = paired
    identity = json.loads((source.state_dir / "identity.json").read_text())
    before = state_snapshot(source.state_dir)
    assert "identity.json" in before and "clients.json" in before, sorted(before)
    config = dexec(container, "cat", CONFIG).stdout
    assert f"http_port = {source.http_port}" in config, "the config was not edited by the previous test"

    # The same .deb again (what an upgrade's maintainer scripts do, at the same version)...
    dexec(container, "sh", "-c", f"cd /deb && apt-get install -y -q --reinstall ./{deb.name}")
    assert state_snapshot(source.state_dir) == before, "reinstalling changed /var/lib/hati"
    # ...and a real upgrade: the same package at a higher version (postinst configure <old>).
    version = run("dpkg-deb", "-f", str(deb), "Version").stdout.strip()
    newer = f"{version}+pkgtest1"
    unpacked = tmp_path / "unpacked"
    run("dpkg-deb", "-R", str(deb), str(unpacked))
    control = unpacked / "DEBIAN/control"
    control.write_text(re.sub(r"^Version: .*$", f"Version: {newer}", control.read_text(), flags=re.M))
    upgrade = tmp_path / deb.name.replace(f"_{version}_", f"_{newer}_")
    run("dpkg-deb", "--root-owner-group", "-b", str(unpacked), str(upgrade))
    run("docker", "cp", str(upgrade), f"{container}:/tmp/{upgrade.name}")
    dexec(container, "apt-get", "install", "-y", "-q", f"/tmp/{upgrade.name}")
    assert dexec(container, "dpkg-query", "-W", "-f", "${Version}", "hati").stdout == newer
    assert state_snapshot(source.state_dir) == before, "upgrading changed /var/lib/hati"
    assert dexec(container, "stat", "-c", "%U %a", "/var/lib/hati").stdout.split() == ["hati", "700"]
    assert dexec(container, "cat", CONFIG).stdout == config, "the admin's edits of the conffile were lost"

    unit = UnitProcess(container)
    try:
        unit.wait_for_log("hati is running")
        assert_still_paired(client, identity)
    finally:
        unit.stop()


def test_remove_keeps_state_and_purge_deletes_it(container, paired):
    source, _ = paired
    dexec(container, "apt-get", "remove", "-y", "-q", "hati")
    assert (source.state_dir / "identity.json").is_file(), "remove deleted the state"
    assert dexec(container, "test", "-f", CONFIG, check=False).returncode == 0, "remove deleted the conffile"
    dexec(container, "dpkg", "--purge", "hati")
    assert list(source.state_dir.iterdir()) == [], "purge left state behind"
    assert dexec(container, "test", "-e", CONFIG, check=False).returncode != 0, "purge left the conffile"
    dexec(container, "getent", "passwd", "hati")  # system users stay (Debian's rule)
