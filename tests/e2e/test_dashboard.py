"""The web dashboard in a real Chromium (Debian's `chromium` and `chromium-driver`, driven by
Selenium): pair a waiting moonlight-python client by typing its PIN, see it listed, watch its
session's frame count rise, stop the session, unpair the client. A screenshot of each step is
saved under target/e2e-output/dashboard/."""

from __future__ import annotations

import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from moonlight_python import MoonlightClient

from conftest import report
from test_pairing import PairingAttempt
from test_streaming import FPS, HEIGHT, WIDTH, measure

OUTPUT = Path(os.environ.get("HATI_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "target/e2e-output")) / "dashboard"


def start_chromium():
    """Debian's headless Chromium under Selenium (the e2e tests' and scripts/browser_bench.py's)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        raise RuntimeError("chromium and chromium-driver are not installed (make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.fixture
def browser():
    try:
        session = start_chromium()
    except RuntimeError as error:
        pytest.fail(str(error))
    yield session
    session.quit()


def shot(browser, name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}.png"
    browser.save_screenshot(str(path))
    return path


def test_dashboard_pairs_lists_watches_stops_and_unpairs(host, tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    events = host.event_reader()
    browser.get(f"http://127.0.0.1:{host.http_port}/dashboard")
    wait.until(lambda b: b.find_element(By.ID, "hostname").text != "")
    shot(browser, "1-empty")

    client = MoonlightClient(config_dir=tmp_path / "client")
    attempt = PairingAttempt(client, host, "4321")
    wait.until(seen.visibility_of_element_located((By.ID, "pin")))
    shot(browser, "2-client-waiting")
    browser.find_element(By.ID, "pin").send_keys("4321")
    browser.find_element(By.ID, "pair-button").click()
    try:
        wait.until(lambda b: "Paired" in b.find_element(By.ID, "message").text)
    finally:
        shot(browser, "3-after-pin")
    attempt.join()
    assert attempt.error is None, attempt.error
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#clients tr")) == 1)
    shot(browser, "3-paired")

    client.start_stream(app="Test pattern", width=WIDTH, height=HEIGHT, fps=FPS, ready_timeout=20)
    try:
        session = events.wait_for("session_streaming")["session"]
        row = f"#session-{session} .frames"
        wait.until(lambda b: int(b.find_element(By.CSS_SELECTOR, row).text or 0) > 0)
        first = int(browser.find_element(By.CSS_SELECTOR, row).text)
        time.sleep(2.5)
        second = int(browser.find_element(By.CSS_SELECTOR, row).text)
        report(f"dashboard frame count for session {session}: {first} -> {second} in 2.5 s")
        assert second > first + 60, (first, second)
        state = browser.find_element(By.CSS_SELECTOR, f"#session-{session} .state").text
        assert state == "streaming", state
        shot(browser, "4-streaming")
        browser.find_element(By.CSS_SELECTOR, f"#session-{session} button").click()
        assert events.wait_for("session_ended", session=session)["reason"] == "stopped"
        after = measure(client, 2)
        report(f"after Stop on the page the client decoded {after.frames} frames in 2 s")
        assert after.frames < 0.1 * after.expected, after.summary("the client's stream did not end")
        wait.until(lambda b: not b.find_elements(By.ID, f"session-{session}"))
        shot(browser, "5-stopped")
    finally:
        client.stop_stream()

    # A cross-site request cannot change anything (no token header).
    forged = urllib.request.Request(
        f"http://127.0.0.1:{host.http_port}/api/v1/unpair?client=a", method="POST",
        headers={"Origin": "http://evil.example"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=10)
    assert refused.value.code == 403

    browser.find_element(By.CSS_SELECTOR, "#clients button").click()
    events.wait_for("client_unpaired")
    wait.until(lambda b: not b.find_elements(By.CSS_SELECTOR, "#clients tr"))
    shot(browser, "6-unpaired")
    with pytest.raises(Exception) as error:
        client._http.get_app_list()
    report(f"after Unpair on the page, /applist: {str(error.value)[:80]}")
    events.close()


def own_address() -> str:
    """This machine's non-loopback IPv4 address (a UDP connect sends nothing)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 1))
        address = probe.getsockname()[0]
    if address.startswith("127."):
        pytest.skip("remote access not tested: this machine has no non-loopback IPv4 address")
    return address


def test_dashboard_from_another_machine_needs_the_api_token(make_host, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    host = make_host(bind="0.0.0.0").start()
    base = f"http://{own_address()}:{host.http_port}"
    token = (host.state_dir / "api-token").read_text().strip()
    assert oct((host.state_dir / "api-token").stat().st_mode & 0o777) == "0o600"

    def call(method: str, path: str, bearer: str | None = None) -> int:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
        request = urllib.request.Request(base + path, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=10).status
        except urllib.error.HTTPError as error:
            return error.code

    statuses = {
        "no token": call("GET", "/api/v1/sessions"),
        "wrong token": call("GET", "/api/v1/sessions", "0" * 48),
        "token": call("GET", "/api/v1/sessions", token),
        "POST no token": call("POST", "/api/v1/reload"),
        "POST token": call("POST", "/api/v1/sessions/stop?id=1", token),
    }
    report(f"dashboard API from another address: {statuses}")
    assert statuses == {"no token": 403, "wrong token": 403, "token": 200, "POST no token": 403, "POST token": 404}

    wait = WebDriverWait(browser, 20)
    browser.get(base + "/dashboard")
    wait.until(seen.visibility_of_element_located((By.ID, "api-token")))
    browser.find_element(By.ID, "api-token").send_keys("wrong")
    browser.find_element(By.ID, "login-button").click()
    wait.until(lambda b: "refused" in b.find_element(By.ID, "login-message").text)
    assert not browser.find_element(By.ID, "main").is_displayed()
    shot(browser, "7-remote-sign-in")
    field = browser.find_element(By.ID, "api-token")
    field.clear()
    field.send_keys(token)
    browser.find_element(By.ID, "login-button").click()
    wait.until(lambda b: b.find_element(By.ID, "hostname").text != "")
    assert not browser.find_element(By.ID, "login").is_displayed()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#apps .app")) == 2)
    # The box art loaded through the token too.
    wait.until(lambda b: all(i.get_property("naturalWidth") > 0 for i in b.find_elements(By.CSS_SELECTOR, "#apps img")))
    shot(browser, "8-remote-signed-in")
