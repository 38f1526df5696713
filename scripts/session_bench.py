"""Session-core benchmarks with real clients, each moonlight-common-c client in its own process
(the library holds one connection per process).

  stall  Two sessions on one host. Client B streams a Wayland app at 640x360@30 and sends an
         absolute mouse position at 250 Hz; the app (hati-test-client) stamps each motion it
         receives on CLOCK_MONOTONIC, the same clock B stamps its sends with, so each event's
         delay from the client library to the app is measured. First B alone, then while client
         A pauses and resumes its own session 20 times (start_stream, stop_stream). Prints
         p50/p99/max of both windows: A's churn must not stall B's input.
  many   N concurrent 640x360@30 Test-pattern sessions, all from 127.0.0.1, started right after
         a first round of the same N ended; prints each client's frame share, the host's CPU
         and RSS, and how many sessions fit at >= 95% of their frames.

  .venv/bin/python scripts/session_bench.py stall [--hati target/debug/hati]
  .venv/bin/python scripts/session_bench.py many --sessions 10 [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostrun import ROOT, FrameCounter, RunningHost  # noqa: E402

WIDTH, HEIGHT, FPS = 640, 360, 30
MOTION = re.compile(r"^t=(\d+) pointer (?:motion|enter) x=([\d.]+) y=([\d.]+)")


def position(k: int) -> tuple[int, int]:
    """The k-th position B sends: unique for 120 000 events, away from the edges."""
    return 20 + k % 600, 20 + (k // 600) % 200


def client_for(config_dir: Path, port: int):
    from moonlight_python import MoonlightClient

    client = MoonlightClient(config_dir=config_dir)
    client.connect("127.0.0.1", port=port)
    return client


def worker_mouse(args) -> int:
    """Client B: streams the mouse app and sends positions until the stop file appears."""
    sys.path.insert(0, str(ROOT / "tests/e2e"))
    from test_desktop import limelight

    client = client_for(Path(args.config_dir), args.port)
    client.start_stream(app="Mouse app", width=WIDTH, height=HEIGHT, fps=FPS, ready_timeout=30)
    counter = FrameCounter(client)
    _, lib = limelight()
    sent: list[tuple[int, float]] = []
    interval = 1 / 250
    print("sending", flush=True)
    start = time.monotonic()
    stop_file = Path(args.stop_file)
    k = 0
    while not stop_file.exists() and time.monotonic() - start < args.max_seconds:
        due = start + k * interval
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        x, y = position(k)
        sent.append((k, time.monotonic()))
        lib.LiSendMousePositionEvent(x, y, WIDTH, HEIGHT)
        k += 1
    counter.stop()
    client.stop_stream()
    Path(args.out).write_text(json.dumps({"sent": sent, "frames": counter.frames,
                                          "seconds": time.monotonic() - start}))
    return 0


def worker_churn(args) -> int:
    """Client A: starts and stops (pauses) its stream `--cycles` times."""
    client = client_for(Path(args.config_dir), args.port)
    for cycle in range(args.cycles):
        client.start_stream(app="Churn app", width=WIDTH, height=HEIGHT, fps=FPS, ready_timeout=30)
        time.sleep(0.3)
        client.stop_stream()
        print(f"cycle {cycle + 1}", flush=True)
    return 0


def worker_stream(args) -> int:
    """One of the concurrent clients: streams the Test pattern for --seconds, counts frames."""
    client = client_for(Path(args.config_dir), args.port)
    try:
        client.start_stream(app="Test pattern", width=WIDTH, height=HEIGHT, fps=FPS, ready_timeout=60)
    except Exception as error:  # noqa: BLE001 - reported as a failed start, the figure we want
        print(json.dumps({"error": str(error)}), flush=True)
        return 0
    print("streaming", flush=True)
    # Every client measures the same window: the parent creates the go file once all started.
    go = Path(args.go_file)
    deadline = time.monotonic() + 120
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    counter = FrameCounter(client)
    start = time.monotonic()
    time.sleep(args.seconds)
    counter.stop()
    elapsed = time.monotonic() - start
    client.stop_stream()
    client.quit_app()
    print(json.dumps({"frames": counter.frames, "seconds": elapsed}), flush=True)
    return 0


def spawn(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *argv], stdout=subprocess.PIPE, text=True)


def wait_line(process: subprocess.Popen, text: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited before printing {text!r}")
        if text in line:
            return
    raise RuntimeError(f"worker did not print {text!r} within {timeout} s")


def percentiles(values: list[float]) -> str:
    if not values:
        return "no events"
    ordered = sorted(values)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return (f"{len(values)} events: p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, "
            f"max {ordered[-1]:.2f} ms")


def stall(args) -> int:
    work = Path(tempfile.mkdtemp(prefix="hati-stall-"))
    client_bin = Path(args.test_client)
    apps = ""
    for title, log in (("Mouse app", work / "mouse.log"), ("Churn app", work / "churn.log")):
        apps += (f'[[apps]]\ntitle = "{title}"\ncompositor = true\n[apps.runner]\ntype = "process"\n'
                 f'cmd = "{client_bin}"\nenv = ["HATI_TEST_CLIENT_LOG={log}", "HATI_TEST_CLIENT_CLOCK=1"]\n')
    host = RunningHost(args.hati, work / "host", apps)
    try:
        from moonlight_python import MoonlightClient

        for name in ("a", "b"):
            host.pair(MoonlightClient(config_dir=work / name))
        stop_file = work / "stop"
        mouse = spawn("worker-mouse", "--config-dir", str(work / "b"), "--port", str(host.port),
                      "--stop-file", str(stop_file), "--out", str(work / "mouse.json"),
                      "--max-seconds", "600")
        wait_line(mouse, "sending")
        baseline_start = time.monotonic()
        time.sleep(args.baseline_s)
        baseline_end = churn_start = time.monotonic()
        churn = spawn("worker-churn", "--config-dir", str(work / "a"), "--port", str(host.port),
                      "--cycles", str(args.cycles))
        churn.wait(timeout=600)
        churn_end = time.monotonic()
        stop_file.touch()
        mouse.wait(timeout=60)
        result = json.loads((work / "mouse.json").read_text())
        received: dict[tuple[int, int], float] = {}
        for line in (work / "mouse.log").read_text().splitlines():
            if match := MOTION.match(line):
                key = (round(float(match.group(2))), round(float(match.group(3))))
                received.setdefault(key, int(match.group(1)) / 1e6)
        windows = {"B alone": (baseline_start, baseline_end), "B during A's churn": (churn_start, churn_end)}
        delays: dict[str, list[float]] = {name: [] for name in windows}
        lost = dict.fromkeys(windows, 0)
        for k, sent_at in result["sent"]:
            for name, (begin, end) in windows.items():
                if begin <= sent_at < end:
                    arrived = received.get(position(k))
                    if arrived is None or arrived < sent_at:
                        lost[name] += 1
                    else:
                        delays[name].append((arrived - sent_at) * 1000)
        print(f"host {args.hati}; A paused and resumed {args.cycles} times in {churn_end - churn_start:.1f} s; "
              f"B decoded {result['frames']} frames in {result['seconds']:.1f} s")
        for name in windows:
            print(f"  {name:20s} client->app input delay: {percentiles(delays[name])}; "
                  f"{lost[name]} not matched")
        return 0
    finally:
        host.stop()


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def round_of(host: RunningHost, work: Path, sessions: int, seconds: float, label: str) -> list[dict]:
    go = work / f"go-{label}"
    workers = [spawn("worker-stream", "--config-dir", str(work / f"c{k}"), "--port", str(host.port),
                     "--go-file", str(go), "--seconds", str(seconds)) for k in range(sessions)]
    started = []
    for worker in workers:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        started.append(line)
    cpu_before, wall_before = proc_cpu_seconds(host.pid), time.monotonic()
    go.touch()
    results = []
    for worker, first in zip(workers, started):
        if first.startswith("{"):
            results.append(json.loads(first))
        else:
            assert worker.stdout is not None
            tail = worker.stdout.read().strip().splitlines()
            results.append(json.loads(tail[-1]) if tail else {"error": "worker printed nothing"})
        worker.wait(timeout=60)
    cpu = (proc_cpu_seconds(host.pid) - cpu_before) / (time.monotonic() - wall_before)
    for r in results:
        r["host_cpu_cores"] = cpu
    return results


def many(args) -> int:
    work = Path(tempfile.mkdtemp(prefix="hati-many-"))
    host = RunningHost(args.hati, work / "host")
    try:
        from moonlight_python import MoonlightClient

        idle_rss = proc_rss_mb(host.pid)
        for k in range(args.sessions):
            host.pair(MoonlightClient(config_dir=work / f"c{k}"))
        for label in ("first", "second"):
            results = round_of(host, work, args.sessions, args.seconds, label)
            good = 0
            for k, r in enumerate(results):
                if "error" in r:
                    print(f"  {label} round, client {k}: start failed: {r['error']}")
                    continue
                share = r["frames"] / (r["seconds"] * FPS)
                good += share >= 0.95
                print(f"  {label} round, client {k}: {r['frames']} frames in {r['seconds']:.1f} s = {share:.0%}")
            print(f"{label} round: {good}/{args.sessions} sessions at >= 95% of {FPS} fps; host CPU "
                  f"{results[0].get('host_cpu_cores', 0):.2f} cores; host RSS {proc_rss_mb(host.pid):.0f} MB "
                  f"(idle {idle_rss:.0f} MB)")
        return 0
    finally:
        host.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["stall", "many", "worker-mouse", "worker-churn", "worker-stream"])
    parser.add_argument("--hati", default=str(ROOT / "target/debug/hati"))
    parser.add_argument("--test-client", default=str(ROOT / "target/debug/hati-test-client"))
    parser.add_argument("--baseline-s", type=float, default=15)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--config-dir")
    parser.add_argument("--port", type=int)
    parser.add_argument("--stop-file")
    parser.add_argument("--go-file")
    parser.add_argument("--out")
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()
    return {"stall": stall, "many": many, "worker-mouse": worker_mouse, "worker-churn": worker_churn,
            "worker-stream": worker_stream}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
