#!/usr/bin/env python3
"""Browser play against Moonlight on the same app and mode: one `hati serve`, a paired headless
Chromium (the /play page, WebRTC) and a paired moonlight-python client take turns streaming the
Test pattern, alternating, and the script prints per turn:

- frames delivered (the browser's `framesDecoded`, the frames moonlight-python decoded),
- the host's CPU while that one stream runs (and while idle, as the baseline), and the
  client's own CPU (Chromium's processes, or this Python process with moonlight-common-c),
- for the browser, `framesDropped` and the jitter buffer's delay per frame
  (`jitterBufferDelay / jitterBufferEmittedCount`).

    .venv/bin/python scripts/browser_bench.py [--seconds 15] [--rounds 2] [--width 1280 --height 720 --fps 60]

Not part of `make test` (a benchmark, not a check). It needs Debian's `chromium` and
`chromium-driver` (`make test` installs them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from moonlight_python import MoonlightClient

from hostrun import ROOT, FrameCounter, RunningHost
from test_dashboard import start_chromium  # the e2e tests' Chromium (tests/e2e is on the path)

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by `pids` (processes that vanished count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def set_mode(driver, host: RunningHost, width: int, height: int, fps: int, bitrate: int) -> None:
    """Stores the page's Settings (local storage) before it loads them; values the page does
    not offer are ignored by it."""
    driver.get(f"http://127.0.0.1:{host.port}/play")
    driver.execute_script(
        "localStorage.setItem('hati-play-mode', arguments[0]);"
        "localStorage.setItem('hati-play-fps', arguments[1]);"
        "localStorage.setItem('hati-play-bitrate', arguments[2]);",
        f"{width}x{height}", str(fps), str(bitrate))


def pair_browser(host: RunningHost, driver) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 30)
    driver.get(f"http://127.0.0.1:{host.port}/play")
    wait.until(lambda d: d.find_element(By.ID, "pair-button").is_displayed())
    driver.find_element(By.ID, "pair-button").click()
    wait.until(lambda d: d.find_element(By.ID, "pin").text.strip().isdigit())
    pin = driver.find_element(By.ID, "pin").text.strip()
    for _ in range(50):
        done = subprocess.run([host.hati, "--state-dir", str(host.state), "pair", pin], capture_output=True, text=True)
        if done.returncode == 0:
            break
        time.sleep(0.2)
    wait.until(lambda d: d.execute_script("return window.hati && window.hati.state") == "paired")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".app"))


def browser_play(driver, title: str) -> None:
    """Launches (or resumes) `title` from the app list and waits for the picture."""
    from selenium.webdriver.support.ui import WebDriverWait

    clicked = driver.execute_script(
        """
        for (const card of document.querySelectorAll('.app')) {
          if (!card.textContent.includes(arguments[0])) continue;
          const button = card.querySelector('[id^=resume-], [id^=launch-]');
          if (button) { button.click(); return true; }
        }
        return false;
        """, title)
    if not clicked:
        raise RuntimeError(f"no app {title!r} on the play page")
    WebDriverWait(driver, 40).until(
        lambda d: d.execute_script("return window.hati.state") == "playing"
        and (d.execute_script("return document.getElementById('video').videoWidth") or 0) > 0)


def browser_leave(driver) -> None:
    """Back to the app list: the host pauses the session (its stream stops)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("document.getElementById('back').click()")
    try:
        WebDriverWait(driver, 10).until(lambda d: d.find_elements("css selector", "[id^=resume-]"))
    except TimeoutException:
        # The list was read before the host saw the stream end; read it again.
        driver.refresh()
        WebDriverWait(driver, 20).until(lambda d: d.find_elements("css selector", "[id^=resume-]"))


def browser_stats(driver) -> dict:
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; window.hati.stats().then(done, e => done({error: String(e)}));")


def measure_browser(host: RunningHost, driver, args) -> dict:
    browser_play(driver, "Test pattern")
    time.sleep(2)  # past the first key frame and the jitter buffer's start
    chrome = descendants(driver.service.process.pid)
    before, host_cpu, client_cpu, started = browser_stats(driver), cpu_seconds([host.pid]), cpu_seconds(chrome), time.monotonic()
    time.sleep(args.seconds)
    after, host_used, client_used = browser_stats(driver), cpu_seconds([host.pid]) - host_cpu, cpu_seconds(chrome) - client_cpu
    wall = time.monotonic() - started
    browser_leave(driver)
    emitted = after["jitterBufferEmittedCount"] - before["jitterBufferEmittedCount"]
    return {
        "frames": after["framesDecoded"] - before["framesDecoded"],
        "expected": round(wall * args.fps),
        "host_cpu": host_used / wall,
        "client_cpu": client_used / wall,
        "dropped": after["framesDropped"] - before["framesDropped"],
        "jitter_ms": 1000 * (after["jitterBufferDelay"] - before["jitterBufferDelay"]) / max(1, emitted),
    }


def measure_moonlight(host: RunningHost, client: MoonlightClient, args) -> dict:
    client.start_stream(app="Test pattern", width=args.width, height=args.height, fps=args.fps,
                        bitrate_kbps=args.bitrate, ready_timeout=30)
    counter = FrameCounter(client)
    time.sleep(2)
    first, host_cpu, client_cpu, started = counter.frames, cpu_seconds([host.pid]), time.process_time(), time.monotonic()
    time.sleep(args.seconds)
    got, host_used, client_used = counter.frames - first, cpu_seconds([host.pid]) - host_cpu, time.process_time() - client_cpu
    wall = time.monotonic() - started
    counter.stop()
    client.stop_stream()
    counter.join()
    return {"frames": got, "expected": round(wall * args.fps), "host_cpu": host_used / wall,
            "client_cpu": client_used / wall, "dropped": None, "jitter_ms": None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=60)
    parser.add_argument("--bitrate", type=int, default=10000, help="kbps, for both")
    parser.add_argument("--hati", default=os.environ.get("HATI_BIN", str(ROOT / "target/debug/hati")))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hati-browser-bench-"))
    host = RunningHost(args.hati, work)
    driver = None
    try:
        try:
            driver = start_chromium()
        except RuntimeError as error:
            sys.exit(str(error))
        set_mode(driver, host, args.width, args.height, args.fps, args.bitrate)
        pair_browser(host, driver)
        client = MoonlightClient(config_dir=work / "client")
        host.pair(client)

        idle_start, idle_wall = cpu_seconds([host.pid]), time.monotonic()
        time.sleep(5)
        idle = (cpu_seconds([host.pid]) - idle_start) / (time.monotonic() - idle_wall)
        print(f"Test pattern {args.width}x{args.height}@{args.fps}, {args.bitrate} kbit/s, {args.seconds:.0f} s per turn; "
              f"host idle CPU {idle:.1%} of one core", flush=True)
        print(f"{'turn':<14} {'frames':>13} {'host CPU':>9} {'client CPU':>10} {'dropped':>7} {'jitter buf':>10}", flush=True)
        results: dict[str, list[dict]] = {"browser": [], "moonlight": []}
        for round_number in range(1, args.rounds + 1):
            for kind in ("browser", "moonlight"):
                row = (measure_browser(host, driver, args) if kind == "browser"
                       else measure_moonlight(host, client, args))
                results[kind].append(row)
                dropped = "-" if row["dropped"] is None else str(row["dropped"])
                jitter = "-" if row["jitter_ms"] is None else f"{row['jitter_ms']:.1f} ms"
                print(f"{kind + ' ' + str(round_number):<14} {row['frames']:>6}/{row['expected']:<6} "
                      f"{row['host_cpu']:>9.1%} {row['client_cpu']:>10.1%} {dropped:>7} {jitter:>10}", flush=True)
        print()
        for kind, rows in results.items():
            frames = sum(r["frames"] for r in rows) / max(1, sum(r["expected"] for r in rows))
            host_cpu = statistics.median(r["host_cpu"] for r in rows)
            print(f"{kind:<10} frames {frames:.1%} of expected; host CPU per stream (median, less idle) "
                  f"{host_cpu - idle:.1%} of one core", flush=True)
        return 0
    finally:
        if driver is not None:
            driver.quit()
        host.stop()


if __name__ == "__main__":
    sys.exit(main())
