"""Pairing, app list, box art and unpairing with the real client library (PROTOCOL.md §1)."""

from __future__ import annotations

import http.client
import io
import re
import ssl
import threading
import time
import urllib.parse
import urllib.request

import pytest
from PIL import Image

from moonlight_python import MoonlightClient
from moonlight_python.discovery import connect_to_server
from moonlight_python.exceptions import HttpResponseError, PairingError, WrongPinError
from moonlight_python.http_client import NvHTTP
from moonlight_python.identity import Identity


class PairingAttempt:
    """Runs the client side of pairing in a thread (it blocks until the PIN is entered)."""

    def __init__(self, client: MoonlightClient, host, pin: str):
        self.client = client
        self.server = connect_to_server("127.0.0.1", client._identity, host.http_port)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(pin,), daemon=True)
        self.thread.start()

    def _run(self, pin: str) -> None:
        try:
            self.client.pair(self.server, pin=pin)
        except BaseException as error:  # noqa: BLE001 - reported to the test
            self.error = error

    def join(self) -> None:
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "pairing did not finish"


def start_pairing(host, client: MoonlightClient, pin: str) -> PairingAttempt:
    bus = host.bus()
    mark = bus.position()
    attempt = PairingAttempt(client, host, pin)
    bus.wait_for("pairing_waiting", start=mark)
    return attempt


def pair(host, client: MoonlightClient, pin: str = "4711") -> None:
    attempt = start_pairing(host, client, pin)
    result = host.cli("pair", pin)
    attempt.join()
    assert attempt.error is None, attempt.error
    assert result.returncode == 0, result.stderr
    assert "paired:" in result.stdout


def https_get(host, client: MoonlightClient, path: str) -> tuple[str, bytes]:
    """A raw HTTPS GET with the client's certificate; returns (content type, body)."""
    http = client._http
    connection = http_client_connection(host, http._make_ssl_context())
    connection.request("GET", path)
    response = connection.getresponse()
    return response.getheader("Content-Type", ""), response.read()


def http_client_connection(host, context: ssl.SSLContext) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("127.0.0.1", host.https_port, context=context, timeout=10)


def test_pair_list_apps_icon_and_unpair(host, tmp_path):
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)

    apps = client.apps()
    assert [app.name for app in apps] == ["Desktop", "Test pattern"]
    assert apps[0].id != 0

    content_type, body = https_get(host, client, f"/appasset?uniqueid=0123456789ABCDEF&appid={apps[0].id}&AssetType=2&AssetIdx=0")
    assert content_type == "image/png"
    image = Image.open(io.BytesIO(body))
    image.verify()
    assert image.format == "PNG" and image.size == (300, 400)

    listed = host.cli("clients")
    assert listed.returncode == 0 and "client-" in listed.stdout, listed
    name = listed.stdout.split()[1]
    unpaired = host.cli("unpair", name)
    assert unpaired.returncode == 0 and "unpaired:" in unpaired.stdout, unpaired
    with pytest.raises(HttpResponseError) as error:
        client.apps()
    assert error.value.status_code == 401
    assert "no paired clients" in host.cli("clients").stdout


def test_wrong_pin_fails_on_both_sides_and_stores_nothing(host, tmp_path):
    client = MoonlightClient(config_dir=tmp_path / "client")
    attempt = start_pairing(host, client, "1111")
    result = host.cli("pair", "2222")
    attempt.join()
    assert isinstance(attempt.error, WrongPinError), attempt.error
    assert result.returncode != 0
    assert "pairing failed" in result.stderr and "wrong" in result.stderr, result.stderr
    assert "no paired clients" in host.cli("clients").stdout
    failed = host.bus().wait_for("pairing_failed")
    assert "abandoned pairing after the PIN was entered" in failed["reason"], failed

    # The host's owner can still pair it with the right PIN afterwards.
    pair(host, client, "3333")
    assert client.apps()


def test_never_paired_client_gets_xml_401(host, tmp_path):
    paired = MoonlightClient(config_dir=tmp_path / "paired")
    pair(host, paired)

    stranger = Identity(tmp_path / "stranger")
    http = NvHTTP("127.0.0.1", stranger, http_port=host.http_port, https_port=host.https_port)
    xml = http.open_https("applist")
    assert 'status_code="401"' in xml
    with pytest.raises(HttpResponseError) as error:
        http.verify_response_status(xml)
    assert error.value.status_code == 401
    assert "not authorized" in error.value.args[0] or "not authorized" in str(error.value)
    # Over plain HTTP it sees an unpaired host.
    info = http.parse_server_info(http.get_server_info())
    assert info.paired is False


def test_pairing_and_host_certificate_survive_restart(host, tmp_path):
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    pinned = client._server.server_cert_pem
    before = ssl.get_server_certificate(("127.0.0.1", host.https_port))
    host.stop()
    host.start()
    after = ssl.get_server_certificate(("127.0.0.1", host.https_port))
    assert before == after
    assert pinned.decode().strip() == before.strip()
    assert [app.name for app in client.apps()] == ["Desktop", "Test pattern"]
    info = client._http.parse_server_info(client._http.get_server_info(use_https=True))
    assert info.paired is True
    assert info.app_version == "7.1.431.-1"
    assert info.server_codec_mode_support & 0x1, "H.264 (x264enc) must be offered"


def test_pin_page_with_secret_link(host, tmp_path):
    client = MoonlightClient(config_dir=tmp_path / "client")
    position = host.log_position()
    attempt = PairingAttempt(client, host, "8080")
    match = host.wait_for_log(r"open (http://\S+/pin)#([0-9a-f]+)", start=position)
    page, secret = match.group(1), match.group(2)
    form_page = urllib.request.urlopen(page, timeout=10).read().decode()
    assert "<form" in form_page
    token = re.search(r'name="form_token" value="([0-9a-fA-F]+)"', form_page).group(1)

    def post(form: dict) -> str:
        data = urllib.parse.urlencode({**form, "form_token": token}).encode()
        try:
            return urllib.request.urlopen(page, data=data, timeout=60).read().decode()
        except urllib.error.HTTPError as error:
            return error.read().decode()

    assert "stale" in post({"pin": "8080", "secret": "0" * 32})
    assert "Paired" in post({"pin": "8080", "secret": secret})
    attempt.join()
    assert attempt.error is None, attempt.error
    assert client.apps()


def test_repeated_wrong_pins_are_rate_limited(make_host, tmp_path):
    host = make_host("[pairing]\nmax_failed_attempts = 2\nlockout_seconds = 30\n").start()
    client = MoonlightClient(config_dir=tmp_path / "client")
    for _ in range(2):
        attempt = start_pairing(host, client, "1111")
        host.cli("pair", "9999")
        attempt.join()
        assert isinstance(attempt.error, WrongPinError)
    attempt = PairingAttempt(client, host, "1111")
    attempt.join()
    assert isinstance(attempt.error, (HttpResponseError, PairingError)), attempt.error
    assert "too many failed pairing attempts" in str(attempt.error)


def test_pair_without_waiting_client_and_bad_pin_format(host):
    result = host.cli("pair", "1234")
    assert result.returncode != 0 and "no client is waiting" in result.stderr
    result = host.cli("pair", "12a4")
    assert result.returncode != 0 and "4 digits" in result.stderr


def test_admin_socket_is_private(host):
    mode = (host.state_dir / "admin.sock").stat().st_mode & 0o777
    assert mode == 0o600
    assert (host.state_dir / "identity.json").stat().st_mode & 0o777 == 0o600


def test_dual_stack_bind_treats_local_ipv4_as_local(make_host, tmp_path):
    """With `bind = "::"` an IPv4 request arrives as ::ffff:127.0.0.1; the host must still see
    the owner's own machine (the PIN page needs no secret) and log an IPv4 link."""
    host = make_host(bind="::").start()
    client = MoonlightClient(config_dir=tmp_path / "client")
    position = host.log_position()
    attempt = PairingAttempt(client, host, "2468")
    match = host.wait_for_log(r"open (http://\S+/pin)#", start=position)
    assert match.group(1) == f"http://127.0.0.1:{host.http_port}/pin", match.group(1)
    page = urllib.request.urlopen(match.group(1), timeout=10).read().decode()
    token = re.search(r'name="form_token" value="([0-9a-fA-F]+)"', page).group(1)
    data = urllib.parse.urlencode({"pin": "2468", "form_token": token}).encode()
    assert "Paired" in urllib.request.urlopen(match.group(1), data=data, timeout=60).read().decode()
    attempt.join()
    assert attempt.error is None, attempt.error
