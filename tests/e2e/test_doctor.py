"""`hati doctor`: each test arranges a state of the machine (a port taken, the Docker engine
out of reach, a Docker app configured or not) and checks the JSON report and the exit status."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

from conftest import HATI_BIN, free_http_port, report

DOCKER_APP = (
    '[[apps]]\ntitle = "Docker game"\nxwayland = false\n'
    '[apps.runner]\ntype = "docker"\nimage = "hati-doctor-test:1"\n'
)
IN_CONTAINER = os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv")


def doctor(tmp_path, config: str | None = None, *, json_output: bool = True, env: dict | None = None,
           unset: tuple[str, ...] = ()):
    """Runs `hati doctor` on a config made of `config` (default: only a free HTTP port set)."""
    if config is None:
        config = f"[network]\nhttp_port = {free_http_port()}\n"
    path = tmp_path / "config.toml"
    path.write_text(config)
    args = [HATI_BIN, "--state-dir", str(tmp_path / "state"), "doctor", "--config", str(path)]
    if json_output:
        args.append("--json")
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    environment.update(env or {})
    started = time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, env=environment)
    elapsed = time.monotonic() - started
    if not json_output:
        return result, elapsed
    assert result.stdout.strip(), result.stderr
    body = json.loads(result.stdout)
    return result, body, {check["id"]: check for check in body["checks"]}, elapsed


def failing(checks: dict) -> list[str]:
    return [id for id, check in checks.items() if check["status"] == "fail"]


def test_everything_available_here_is_ok_and_missing_options_warn(tmp_path):
    # The embedded default config; only the HTTP port (and the ports derived from it) is moved to
    # a free range, so a Hati already running on this machine does not make the run fail.
    result, body, checks, elapsed = doctor(tmp_path)
    report(f"doctor --json: {len(checks)} checks in {elapsed:.1f} s, "
           + ", ".join(f"{id}={c['status']}" for id, c in checks.items()))
    assert result.returncode == 0, (failing(checks), result.stdout)
    assert body["ok"] is True
    assert set(body.keys()) == {"ok", "checks"}
    for check in body["checks"]:
        assert set(check) == {"id", "status", "summary", "fix"}, check
        assert check["status"] in ("ok", "warn"), check
        if check["status"] == "warn":
            assert check["fix"], check  # every warning says what to do

    h264 = checks["encoder.h264"]
    assert h264["status"] == "ok"
    if not os.path.exists("/dev/dri"):
        assert "x264" in h264["summary"] and "software" in h264["summary"], h264
        gpu = checks["gpu"]
        assert gpu["status"] == "warn" and "no GPU" in gpu["summary"], gpu
        assert "software encoding only" in gpu["summary"] and "driver" in gpu["fix"], gpu
    if not os.path.exists("/dev/uinput"):
        uinput = checks["uinput"]
        assert uinput["status"] == "warn" and "gamepads are unavailable" in uinput["summary"], uinput
        assert "modprobe uinput" in uinput["fix"] and "60-hati.rules" in uinput["fix"], uinput
        assert "input group" in uinput["fix"], uinput
    assert checks["ports"]["status"] == "ok"
    assert checks["pulseaudio"]["status"] == "ok"
    assert "(loopback)" in checks["interfaces"]["summary"]
    if os.environ.get("HATI_REQUIRE_DOCKER") == "1":
        assert checks["docker"]["status"] == "ok", checks["docker"]
    assert checks["firewall"]["status"] == "ok"

    text, _ = doctor(tmp_path, json_output=False)
    assert text.returncode == 0, text.stdout
    lines = text.stdout.splitlines()
    for id, check in checks.items():
        line = next((l for l in lines if l.split()[1:2] == [id]), None)
        assert line is not None and line.startswith("ok" if check["status"] == "ok" else "warn"), (id, text.stdout)
    if not os.path.exists("/dev/uinput"):
        after = lines[lines.index(next(l for l in lines if l.split()[1:2] == ["uinput"])) + 1]
        assert after.strip().startswith("fix") and "modprobe uinput" in after, after


def test_taken_port_fails_naming_port_and_protocol(tmp_path):
    http = free_http_port()
    config = f"[network]\nhttp_port = {http}\n"
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("0.0.0.0", http))
        holder.listen()
        result, body, checks, _ = doctor(tmp_path, config)
    assert result.returncode == 1, result.stdout
    assert body["ok"] is False
    assert failing(checks) == ["ports"], result.stdout
    ports = checks["ports"]
    assert f"port {http}/tcp (HTTP) is in use" in ports["summary"], ports
    assert "http_port" in ports["fix"], ports

    audio = http + 11  # the derived audio port (UDP)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("0.0.0.0", audio))
        result, body, checks, _ = doctor(tmp_path, config)
    assert result.returncode == 1 and failing(checks) == ["ports"], result.stdout
    assert f"port {audio}/udp (audio) is in use" in checks["ports"]["summary"], checks["ports"]

    # Released again: the same config passes.
    result, body, checks, _ = doctor(tmp_path, config)
    assert checks["ports"]["status"] == "ok" and str(http) in checks["ports"]["summary"]


def test_unreachable_docker_fails_only_with_a_docker_app(tmp_path):
    socket_path = tmp_path / "no-such" / "docker.sock"
    env = {"DOCKER_HOST": f"unix://{socket_path}", "HATI_RUNTIME_DIR": str(tmp_path / "runtime")}
    config = f"[network]\nhttp_port = {free_http_port()}\n" + DOCKER_APP
    result, body, checks, elapsed = doctor(tmp_path, config, env=env)
    report(f"doctor with an unreachable Docker engine: {elapsed:.1f} s")
    assert result.returncode == 1, result.stdout
    # In a container (this machine's case) the made-up runtime directory is not mounted from
    # the host, which the runtime-dir check reports too; that check has its own test.
    assert [id for id in failing(checks) if id != "runtime-dir"] == ["docker"], result.stdout
    docker = checks["docker"]
    assert str(socket_path) in docker["summary"] and '"Docker game"' in docker["summary"], docker
    assert "DOCKER_HOST" in docker["fix"] and "start the engine" in docker["fix"], docker

    # No app uses Docker: the same engine state is only a warning.
    result, body, checks, _ = doctor(tmp_path, f"[network]\nhttp_port = {free_http_port()}\n", env=env)
    assert result.returncode == 0 and body["ok"] is True, result.stdout
    assert checks["docker"]["status"] == "warn", checks["docker"]
    assert "no configured app uses Docker" in checks["docker"]["summary"]


def test_runtime_dir_of_a_containerised_hati(tmp_path):
    config = f"[network]\nhttp_port = {free_http_port()}\n" + DOCKER_APP
    _, _, checks, _ = doctor(tmp_path, config, unset=("HATI_RUNTIME_DIR",))
    runtime = checks["runtime-dir"]
    if IN_CONTAINER:
        assert runtime["status"] == "fail", runtime
        assert "HATI_RUNTIME_DIR=/run/hati" in runtime["fix"] and "-v /run/hati:/run/hati" in runtime["fix"]
        # Without a Docker app it is only a warning.
        _, _, checks, _ = doctor(tmp_path, unset=("HATI_RUNTIME_DIR",))
        assert checks["runtime-dir"]["status"] == "warn", checks["runtime-dir"]
    else:
        assert runtime["status"] == "ok", runtime

    # Set, but not a mount from the host (nothing is mounted at /run/hati-test here): app
    # containers would get an empty directory. The same path mounted from the host is ok, as
    # test_container.py checks inside the image.
    _, _, checks, _ = doctor(tmp_path, config, env={"HATI_RUNTIME_DIR": "/run/hati-test"})
    runtime = checks["runtime-dir"]
    if IN_CONTAINER:
        assert runtime["status"] == "fail" and "not mounted from the host" in runtime["summary"], runtime
        assert "-v /run/hati-test:/run/hati-test" in runtime["fix"], runtime
    else:
        assert runtime["status"] == "ok" and "/run/hati-test" in runtime["summary"], runtime


def test_no_pulseaudio_fails_with_the_package_to_install(tmp_path):
    empty = tmp_path / "empty-path"
    empty.mkdir()
    _, body, checks, _ = doctor(
        tmp_path,
        env={"PATH": str(empty), "XDG_RUNTIME_DIR": str(tmp_path / "no-runtime")},
        unset=("PULSE_SERVER",),
    )
    pulse = checks["pulseaudio"]
    assert pulse["status"] == "fail" and "no sound" in pulse["summary"], pulse
    assert "apt install pulseaudio" in pulse["fix"], pulse
    assert body["ok"] is False


def test_config_error_exits_2_with_the_config_message(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[network]\nhttp_prot = 47989\n")
    result = subprocess.run([HATI_BIN, "doctor", "--json", "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result
    assert f"{path}:2" in result.stderr and "network.http_prot" in result.stderr, result.stderr
    assert result.stdout == ""
