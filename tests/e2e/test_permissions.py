"""Per-client permissions (docs/permissions.md): a paired client's role and app list, set through
the admin API (`PATCH /api/v1/clients/{id}`) and `hati clients set`, honoured by the real
Moonlight client library's `/applist`, `/launch` and `/resume`, and by the play page's API and
WebSocket for a browser."""

from __future__ import annotations

import json
import os
import socket
import threading
import urllib.parse
import urllib.request

import pytest

from moonlight_python import MoonlightClient
from moonlight_python.exceptions import HttpResponseError

from conftest import _dechunk, report
from test_pairing import pair


def admin_send(host, method: str, path: str, body: object) -> tuple[int, dict]:
    """`method path` with a JSON body on the host's admin socket; (HTTP status, JSON answer)."""
    payload = json.dumps(body).encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(host.state_dir / "admin.sock"))
    try:
        sock.sendall(f"{method} /api/v1{path} HTTP/1.1\r\nHost: hati\r\nConnection: close\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    head, _, answer = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        answer = _dechunk(answer)
    return int(head.split()[1]), json.loads(answer)


def launch(client: MoonlightClient, app_id: int) -> str | None:
    """`/launch` alone (no RTSP or stream): what Moonlight sends when a user picks an app."""
    return client._http.launch_app(app_id, 640, 360, 30, 5000, 0x0001, os.urandom(16), os.urandom(16), 0x30002)


def resume(client: MoonlightClient) -> str | None:
    return client._http.resume_app(os.urandom(16), os.urandom(16), 0x30002)


def refusal(call) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as error:
        call()
    return error.value


def titles(client: MoonlightClient) -> list[str]:
    return [app.name for app in client.apps()]


def test_roles_and_app_lists_limit_applist_launch_and_resume(host, tmp_path):
    events = host.bus()
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    (listed,) = host.admin("/clients")
    assert (listed["role"], listed["apps"]) == ("admin", None), listed
    apps = {app.name: app.id for app in client.apps()}
    assert sorted(apps) == ["Desktop", "Test pattern"], apps
    desktop, pattern = apps["Desktop"], apps["Test pattern"]
    name = listed["name"]

    # A player limited to the Test pattern, through the admin API.
    mark = events.position()
    status, body = admin_send(host, "PATCH", f"/clients/{urllib.parse.quote(name)}",
                              {"role": "player", "apps": [pattern]})
    assert status == 200, body
    assert (body["updated"]["role"], body["updated"]["apps"]) == ("player", [pattern]), body
    updated = events.wait_for("client_updated", start=mark, client_id=listed["id"])
    assert (updated["role"], updated["apps"]) == ("player", [pattern]), updated
    assert titles(client) == ["Test pattern"]
    denied = refusal(lambda: launch(client, desktop))
    report(f"player launching another app: HTTP {denied.status_code}: {denied.status_message}")
    assert denied.status_code == 403, denied
    assert "may not use app 'Desktop' (allowed: Test pattern)" in denied.status_message, denied
    assert name in denied.status_message, denied
    assert host.sessions() == [], "nothing was launched"
    # Its own app launches.
    assert launch(client, pattern)
    session = events.wait_for("session_launched", start=mark)["session"]

    # A spectator, through the CLI: it launches nothing and its running app may not be resumed.
    listing = host.cli("clients", "set", listed["id"][:12], "--role", "spectator")
    assert listing.returncode == 0, listing.stderr
    assert "spectator, apps: Test pattern" in listing.stdout, listing.stdout
    assert titles(client) == []
    denied = refusal(lambda: launch(client, pattern))
    assert denied.status_code == 403, denied
    assert f"client '{name}' is a spectator: it may watch lobbies but not launch apps" == denied.status_message, denied
    denied = refusal(lambda: resume(client))
    assert denied.status_code == 403 and "is a spectator" in denied.status_message, denied
    assert [s["state"] for s in host.sessions()] == ["waiting_for_client"], "the refusal left the session alone"
    client.quit_app()  # quitting stays allowed
    events.wait_for("session_ended", session=session)

    # Admin with every app again: everything is listed and launches.
    restored = host.cli("clients", "set", name, "--role", "admin", "--all-apps")
    assert restored.returncode == 0, restored.stderr
    assert "admin, all apps" in restored.stdout, restored.stdout
    assert sorted(titles(client)) == ["Desktop", "Test pattern"]
    assert launch(client, desktop)
    client.quit_app()
    listing = host.cli("clients")
    assert listing.returncode == 0 and "admin, all apps" in listing.stdout, listing
    assert listing.stdout.split()[1] == name, "the name stays the second column"
    report(f"hati clients: {listing.stdout.strip()}")


def test_bad_changes_are_refused_with_what_is_wrong(host, tmp_path):
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    (listed,) = host.admin("/clients")
    path = f"/clients/{listed['id']}"
    cases = [
        ({"role": "plyer"}, 400, "unknown variant `plyer`, expected one of `admin`, `player`, `spectator`"),
        ({}, 400, "nothing to change"),
        ({"role": "player", "colour": "red"}, 400, "unknown field `colour`"),
        ({"apps": [7]}, 400, "no app with ID 7; the apps are:"),
        ({"apps": "all"}, 400, "invalid type"),
    ]
    for body, expected_status, expected in cases:
        status, answer = admin_send(host, "PATCH", path, body)
        assert status == expected_status and expected in answer["error"], (body, status, answer)
    status, answer = admin_send(host, "PATCH", "/clients/nobody", {"role": "player"})
    assert status == 404 and "nobody" in answer["error"], answer
    # Nothing changed.
    (after,) = host.admin("/clients")
    assert (after["role"], after["apps"]) == ("admin", None), after
    cli = host.cli("clients", "set", listed["name"], "--apps", "Chess")
    assert cli.returncode != 0 and "no app `Chess`" in cli.stderr, cli
    cli = host.cli("clients", "set", listed["name"], "--role", "plyer")
    assert cli.returncode != 0 and "spectator" in cli.stderr, cli
    report(f"PATCH with a mistyped role: {admin_send(host, 'PATCH', path, {'role': 'plyer'})[1]['error']}")


def test_a_new_client_gets_the_configured_default_role_and_a_typo_stops_the_host(make_host, tmp_path):
    host = make_host('[pairing]\ndefault_role = "spectator"\n').start()
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    (listed,) = host.admin("/clients")
    assert listed["role"] == "spectator", listed
    assert titles(client) == []

    broken = tmp_path / "broken.toml"
    broken.write_text('[pairing]\ndefault_role = "plyer"\n')
    checked = host.cli("config", "check", str(broken))
    assert checked.returncode != 0, checked
    assert "pairing.default_role" in checked.stderr and "`admin`, `player`, `spectator`" in checked.stderr, checked.stderr
    report(f"default_role typo: {checked.stderr.strip()}")


def test_a_browser_is_held_to_its_permissions_on_the_play_page(host):
    import websocket

    pin, reply = "4321", {}

    def pair_api() -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{host.http_port}/play/api/pair", method="POST",
            data=json.dumps({"name": "Guest browser", "pin": pin}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            reply.update(json.load(answer))

    pairing = threading.Thread(target=pair_api)
    pairing.start()
    host.wait_for_log(r"a browser is waiting to pair")
    assert host.cli("pair", pin).returncode == 0
    pairing.join(timeout=60)
    token = reply["token"]

    def play_apps() -> list[str]:
        request = urllib.request.Request(f"http://127.0.0.1:{host.http_port}/play/api/apps",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return [app["title"] for app in json.load(answer)["apps"]]

    ids = {app["title"]: app["id"] for app in host.admin("/apps")}
    assert sorted(play_apps()) == ["Desktop", "Test pattern"]
    cli = host.cli("clients", "set", "Guest browser", "--role", "player", "--apps", "Test pattern")
    assert cli.returncode == 0, cli.stderr
    assert play_apps() == ["Test pattern"]

    ws = websocket.create_connection(f"ws://127.0.0.1:{host.http_port}/play/ws",
                                     origin=f"http://127.0.0.1:{host.http_port}", timeout=20)
    try:
        ws.send(json.dumps({"type": "hello", "token": token, "app_id": ids["Desktop"],
                            "width": 640, "height": 360, "fps": 30}))
        # The host answers `config`, then `error`, or `launched` had it let the browser in.
        messages = []
        while not any(m.get("type") in ("error", "launched", "offer") for m in messages) and len(messages) < 20:
            messages.append(json.loads(ws.recv()))
    finally:
        ws.close()
    assert [m["type"] for m in messages] == ["config", "error"], messages
    error = messages[-1]
    report(f"browser launching another app: {error['message']}")
    assert error["message"] == "client 'Guest browser' may not use app 'Desktop' (allowed: Test pattern)", error
    assert host.sessions() == []


def test_the_dashboard_shows_and_changes_a_clients_role(host, tmp_path):
    """The dashboard's client table (headless Chromium): the role in a select, the apps by title;
    choosing another role changes it on the host (a PATCH with the page's token)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from test_dashboard import shot, start_chromium

    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    (listed,) = host.admin("/clients")
    pattern = next(app["id"] for app in host.admin("/apps") if app["title"] == "Test pattern")
    status, _ = admin_send(host, "PATCH", f"/clients/{listed['id']}", {"apps": [pattern]})
    assert status == 200
    browser = start_chromium()
    try:
        wait = WebDriverWait(browser, 20)
        browser.get(f"http://127.0.0.1:{host.http_port}/dashboard")
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#clients select.role"))
        row = browser.find_element(By.CSS_SELECTOR, "#clients tr")
        wait.until(lambda b: "Test pattern" in row.text)
        role = Select(row.find_element(By.CSS_SELECTOR, "select.role"))
        assert role.first_selected_option.text == "admin"
        shot(browser, "permissions-1-admin")
        mark = host.bus().position()
        role.select_by_visible_text("spectator")
        host.bus().wait_for("client_updated", start=mark, role="spectator")
        wait.until(lambda b: "is now spectator" in b.find_element(By.ID, "message").text)
        shot(browser, "permissions-2-spectator")
        row_text = browser.find_element(By.CSS_SELECTOR, "#clients tr").text
    finally:
        browser.quit()
    (after,) = host.admin("/clients")
    assert (after["role"], after["apps"]) == ("spectator", [pattern]), after
    assert titles(client) == []
    report(f"dashboard client row after choosing spectator: {row_text!r}")
