#!/usr/bin/env python3
"""Soak test: streams the Test pattern from a real `hati serve` to the real client library (or,
with --browser, to the /play page in headless Chromium over WebRTC) for a long time and prints,
every minute, the frames decoded, the host's RSS, open fds and threads.

    .venv/bin/python scripts/soak.py [--minutes 60] [--width 1280 --height 720 --fps 60] [--browser]

Not part of `make test` (it takes an hour by default). Exits non-zero when frames fall below
99% of expected, RSS drifts more than 5% after the first minute, or fds/threads grow.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from moonlight_python import MoonlightClient

from hostrun import ROOT, FrameCounter, RunningHost


def proc_figures(pid: int) -> tuple[int, int, int]:
    """(RSS in KiB, open fds, threads) of process `pid`."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads


class BrowserFrames:
    """The frames the play page's video decoded (`framesDecoded` from its getStats)."""

    def __init__(self, driver, stats):
        self._driver, self._stats = driver, stats
        self._start = stats(driver)["framesDecoded"]

    @property
    def frames(self) -> int:
        return self._stats(self._driver)["framesDecoded"] - self._start

    def stop(self) -> None:
        self._driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=60)
    parser.add_argument("--bitrate", type=int, default=10000, help="kbps")
    parser.add_argument("--browser", action="store_true", help="stream to Chromium's /play page instead")
    parser.add_argument("--hati", default=os.environ.get("HATI_BIN", str(ROOT / "target/debug/hati")))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hati-soak-"))
    try:
        host = RunningHost(args.hati, work)
    except RuntimeError as error:
        print(error)
        return 2
    try:
        if args.browser:
            from browser_bench import browser_play, browser_stats, pair_browser, set_mode
            from test_dashboard import start_chromium

            driver = start_chromium()
            set_mode(driver, host, args.width, args.height, args.fps, args.bitrate)
            pair_browser(host, driver)
            browser_play(driver, "Test pattern")
            stream = BrowserFrames(driver, browser_stats)
        else:
            client = MoonlightClient(config_dir=work / "client")
            host.pair(client)
            client.start_stream(app="Test pattern", width=args.width, height=args.height, fps=args.fps,
                                bitrate_kbps=args.bitrate, ready_timeout=30)
            stream = FrameCounter(client)
        minutes = int(args.minutes) if args.minutes >= 1 else 1
        period = 60.0 if args.minutes >= 1 else args.minutes * 60
        rows = []
        print(f"{'min':>4} {'frames':>7} {'expected':>8} {'share':>6} {'RSS MiB':>8} {'fds':>5} {'threads':>7}", flush=True)
        started = time.monotonic()
        last_frames = 0
        for minute in range(1, minutes + 1):
            time.sleep(max(0.0, started + minute * period - time.monotonic()))
            now_frames = stream.frames
            rss, fds, threads = proc_figures(host.pid)
            got = now_frames - last_frames
            last_frames = now_frames
            expected = int(period * args.fps)
            rows.append((minute, got, expected, rss, fds, threads))
            print(f"{minute:>4} {got:>7} {expected:>8} {got / expected:>6.1%} {rss / 1024:>8.1f} {fds:>5} {threads:>7}", flush=True)
        stream.stop()
        if not args.browser:
            client.stop_stream()

        total = sum(r[1] for r in rows)
        expected_total = sum(r[2] for r in rows)
        base_rss = rows[0][3]
        later = rows[1:] or rows
        rss_drift = max(abs(r[3] - base_rss) / base_rss for r in later)
        fds = [r[4] for r in later]
        threads = [r[5] for r in later]
        print(f"\nframes {total} of {expected_total} ({total / expected_total:.2%}); RSS after minute 1 "
              f"{min(r[3] for r in later) / 1024:.1f}..{max(r[3] for r in later) / 1024:.1f} MiB "
              f"(max drift {rss_drift:.1%} from {base_rss / 1024:.1f}); fds {min(fds)}..{max(fds)}; "
              f"threads {min(threads)}..{max(threads)}", flush=True)
        ok = total >= 0.99 * expected_total and rss_drift <= 0.05 and max(fds) - min(fds) <= 2 and max(threads) - min(threads) <= 2
        print("PASS" if ok else "FAIL", flush=True)
        return 0 if ok else 1
    finally:
        host.stop()


if __name__ == "__main__":
    sys.exit(main())
