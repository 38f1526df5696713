"""The command line as a new user meets it: config errors, a host that refuses a broken
config, and commands that need a running host."""

from __future__ import annotations

import subprocess

from conftest import HATI_BIN, Host


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([HATI_BIN, *args], capture_output=True, text=True, timeout=60)


def test_config_check_names_key_and_line(tmp_path):
    bad = tmp_path / "config.toml"
    bad.write_text('hostname = "Den"\n\n[network]\nhttp_prot = 47989\n')
    result = run("config", "check", str(bad))
    assert result.returncode != 0
    assert f"{bad}:4" in result.stderr and "network.http_prot" in result.stderr, result.stderr

    wrong_type = tmp_path / "type.toml"
    wrong_type.write_text('[network]\nmdns = "yes"\n')
    result = run("config", "check", str(wrong_type))
    assert result.returncode != 0
    assert f"{wrong_type}:2" in result.stderr and "network.mdns" in result.stderr, result.stderr

    good = tmp_path / "good.toml"
    good.write_text('hostname = "Den"\n')
    result = run("config", "check", str(good))
    assert result.returncode == 0 and "OK" in result.stdout


def test_host_does_not_start_with_a_broken_config(tmp_path):
    bad = tmp_path / "config.toml"
    bad.write_text("[[apps]]\ntitel = \"x\"\n")
    result = run("--state-dir", str(tmp_path / "state"), "serve", "--config", str(bad))
    assert result.returncode != 0
    assert "apps[0].titel" in result.stderr and ":2" in result.stderr, result.stderr


def test_pair_without_running_host_says_so(tmp_path):
    result = run("--state-dir", str(tmp_path / "state"), "pair", "1234")
    assert result.returncode != 0 and "no running hati" in result.stderr


def test_second_host_on_same_state_dir_is_refused(tmp_path):
    first = Host(tmp_path / "a")
    first.start()
    try:
        second = Host(tmp_path / "b")
        result = run("--state-dir", str(first.state_dir), "serve", "--config", str(second.config_path))
        assert result.returncode != 0 and "already running" in result.stderr, result.stderr
    finally:
        first.stop()


def test_corrupt_state_file_is_reported_not_replaced(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "clients.json").write_text("[{broken")
    host = Host(tmp_path / "h")
    result = run("--state-dir", str(state), "serve", "--config", str(host.config_path))
    assert result.returncode != 0 and "clients.json" in result.stderr and "corrupt" in result.stderr
    assert (state / "clients.json").read_text() == "[{broken"
