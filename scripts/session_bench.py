"""Session-core benchmarks with real clients, each moonlight-common-c client in its own process
(the library holds one connection per process).

  stall  Two sessions on one host. Client B streams a Wayland app at 640x360@30 and sends an
         absolute mouse position at 250 Hz; the app (hati-test-client) stamps each motion it
         receives on CLOCK_MONOTONIC, the same clock B stamps its sends with, so each event's
         delay from the client library to the app is measured. First B alone, then while client
         A pauses and resumes its own session 20 times (start_stream, stop_stream). Prints
         p50/p99/max of both windows: A's churn must not stall B's input. One run per
         --input-nice value (default 0 then -10: the input threads at the encoders' priority,
         then raised), each on a fresh host.
  many   N concurrent 640x360@30 Test-pattern sessions, all from 127.0.0.1, started right after
         a first round of the same N ended; prints each client's frame share, the host's CPU
         and RSS, how many sessions fit at >= 95% of their frames, and the host's RSS per
         session against what x264 itself takes at that size (gst-launch with and without it).
  serial N sessions one after another (3 s each); prints the host's RSS after each, to choose
         the allocator policy (run it with and without MALLOC_ARENA_MAX in the environment).

  .venv/bin/python scripts/session_bench.py stall [--hati target/release/hati] [--input-nice 0,-10]
  .venv/bin/python scripts/session_bench.py many --sessions 10 [--seconds 10]
  .venv/bin/python scripts/session_bench.py serial --sessions 12
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostrun import ROOT, FrameCounter, RunningHost, cpu_steal, stolen_since  # noqa: E402

WIDTH, HEIGHT, FPS = 640, 360, 30
MOTION = re.compile(r"^t=(\d+) pointer (?:motion|enter) x=([\d.]+) y=([\d.]+)")


MARGIN = 10


def grid(width: int, height: int) -> tuple[int, int]:
    """Columns and rows of the positions B sends, MARGIN pixels away from the edges."""
    return width - 2 * MARGIN, height - 2 * MARGIN


def position(k: int, width: int, height: int) -> tuple[int, int]:
    """The k-th position B sends: unique for columns x rows events (48 000 at 320x180)."""
    columns, rows = grid(width, height)
    return MARGIN + k % columns, MARGIN + (k // columns) % rows


def client_for(config_dir: Path, port: int):
    """A client paired earlier (by the parent) in this process. moonlight-python pins the
    host's certificate only in the object that paired, and without the pin it asks
    /serverinfo over plain HTTP, where no session is shown, so it would launch instead of
    resume: the pin is read from the host's identity, which the parent copied beside it."""
    from moonlight_python import MoonlightClient

    client = MoonlightClient(config_dir=config_dir)
    client.connect("127.0.0.1", port=port)
    client._http.server_cert_pem = (config_dir.parent / "server.pem").read_text()
    return client


def worker_mouse(args) -> int:
    """Client B: streams the mouse app and sends positions until the stop file appears."""
    sys.path.insert(0, str(ROOT / "tests/e2e"))
    from test_desktop import limelight

    client = client_for(Path(args.config_dir), args.port)
    client.start_stream(app="Mouse app", width=args.width, height=args.height, fps=FPS, ready_timeout=30)
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
        x, y = position(k, args.width, args.height)
        sent.append((k, time.monotonic()))
        lib.LiSendMousePositionEvent(x, y, args.width, args.height)
        k += 1
    counter.stop()
    client.stop_stream()
    Path(args.out).write_text(json.dumps({"sent": sent, "frames": counter.frames,
                                          "seconds": time.monotonic() - start}))
    return 0


def worker_churn(args) -> int:
    """Client A: starts and stops (pauses) its stream `--cycles` times; a start that fails is
    counted, and tried again a second later (at most 3 x --cycles tries)."""
    from moonlight_python.exceptions import MoonlightError

    client = client_for(Path(args.config_dir), args.port)
    done = failed = 0
    while done < args.cycles and done + failed < 3 * args.cycles:
        try:
            client.start_stream(app="Churn app", width=args.width, height=args.height, fps=FPS, ready_timeout=30)
        except MoonlightError as error:
            failed += 1
            print(f"start failed: {error}", flush=True)
            time.sleep(1)
            continue
        time.sleep(0.3)
        client.stop_stream()
        done += 1
    print(json.dumps({"cycles": done, "failed_starts": failed}), flush=True)
    return 0


def worker_stream(args) -> int:
    """One of the concurrent clients: streams the Test pattern for --seconds, counts frames."""
    client = client_for(Path(args.config_dir), args.port)
    try:
        client.start_stream(app="Test pattern", width=args.width, height=args.height, fps=FPS, ready_timeout=60)
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


def spawn(*argv: str, nice: int = 0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *argv], stdout=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: os.nice(nice)) if nice else None)


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


def write_server_pem(host: RunningHost, work: Path) -> None:
    """The host's certificate, for the workers to pin (see `client_for`)."""
    identity = json.loads((host.state / "identity.json").read_text())
    (work / "server.pem").write_text(identity["cert_pem"])


def admin_get(host: RunningHost, path: str):
    """GET `path` on the host's admin socket; the decoded JSON."""
    from conftest import admin_request

    return admin_request(host.state, path)


def busiest_ms(host: RunningHost) -> float | None:
    """The host's `control_loop_busiest_ms` (GET /status), if it has one."""
    return admin_get(host, "/status").get("control_loop_busiest_ms")


def input_delay_counts(host: RunningHost, app: str) -> tuple[list, list] | None:
    """(bucket upper bounds µs, cumulative counts) of `app`'s session's compositor input
    delays, if the host reports them."""
    for session in admin_get(host, "/sessions"):
        if session.get("app") == app and session.get("input_delay"):
            delay = session["input_delay"]
            return delay["bucket_upper_us"], delay["counts"]
    return None


def delay_window(before, after) -> str:
    """p50, p99 and the largest bucket reached between two `input_delay_counts` reads."""
    if not before or not after:
        return "not reported by this host"
    bounds, counts = after[0], [b - a for a, b in zip(before[1], after[1])]
    total = sum(counts)
    if not total:
        return "no events"

    def quantile(q: float) -> str:
        seen = 0
        for bound, count in zip(bounds, counts):
            seen += count
            if seen >= q * total:
                return f"<= {bound / 1000:.3f} ms" if bound is not None else "> 4 s"
        return "?"

    top = max(i for i, count in enumerate(counts) if count)
    largest = f"<= {bounds[top] / 1000:.3f} ms" if bounds[top] is not None else "> 4 s"
    return f"{total} events: p50 {quantile(0.5)}, p99 {quantile(0.99)}, max {largest}"


def percentiles(values: list[float]) -> str:
    if not values:
        return "no events"
    ordered = sorted(values)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return (f"{len(values)} events: p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, "
            f"max {ordered[-1]:.2f} ms")


def stall(args) -> int:
    """One stall run per `--input-nice` value, each on a fresh host, printed one after another:
    the first value is the baseline of the comparison."""
    for nice in (int(value) for value in args.input_nice.split(",")):
        print(f"== streaming.input_thread_nice = {nice}", flush=True)
        stall_run(args, nice)
    return 0


def stall_run(args, input_nice: int) -> None:
    steal = cpu_steal()
    work = Path(tempfile.mkdtemp(prefix="hati-stall-"))
    client_bin = Path(args.test_client)
    apps = f"[streaming]\ninput_thread_nice = {input_nice}\n"
    for title, log in (("Mouse app", work / "mouse.log"), ("Churn app", work / "churn.log")):
        apps += (f'[[apps]]\ntitle = "{title}"\ncompositor = true\n[apps.runner]\ntype = "process"\n'
                 f'cmd = "{client_bin}"\nenv = ["HATI_TEST_CLIENT_LOG={log}", "HATI_TEST_CLIENT_CLOCK=1"]\n')
    host = RunningHost(args.hati, work / "host", apps)
    try:
        from moonlight_python import MoonlightClient

        for name in ("a", "b"):
            host.pair(MoonlightClient(config_dir=work / name))
        write_server_pem(host, work)
        stop_file = work / "stop"
        mouse = spawn("worker-mouse", "--config-dir", str(work / "b"), "--port", str(host.port),
                      "--stop-file", str(stop_file), "--out", str(work / "mouse.json"),
                      "--max-seconds", "600", "--width", str(args.width), "--height", str(args.height))
        wait_line(mouse, "sending")
        delays_start = input_delay_counts(host, "Mouse app")
        baseline_start = time.monotonic()
        time.sleep(args.baseline_s)
        baseline_end = churn_start = time.monotonic()
        busiest_before_churn = busiest_ms(host)
        delays_before_churn = input_delay_counts(host, "Mouse app")
        # --churn-nice lowers client A's priority, so that what stalls B's input is the host,
        # not A's decoder competing for the same two cores.
        churn = spawn("worker-churn", "--config-dir", str(work / "a"), "--port", str(host.port),
                      "--cycles", str(args.cycles), "--width", str(args.width), "--height", str(args.height),
                      nice=args.churn_nice)
        churn_output, _ = churn.communicate(timeout=600)
        churn_end = time.monotonic()
        churned = json.loads(churn_output.strip().splitlines()[-1])
        busiest_after_churn = busiest_ms(host)
        delays_after_churn = input_delay_counts(host, "Mouse app")
        stop_file.touch()
        mouse.wait(timeout=60)
        result = json.loads((work / "mouse.json").read_text())
        # The app may see fewer motions than were sent (a compositor or client may merge
        # motions queued together), so each sent event counts as delivered when the app saw it
        # or any later one: its delay is the first such sighting minus its send time. A stall
        # shows in full on every event sent during it.
        seen: list[tuple[int, float]] = []
        for line in (work / "mouse.log").read_text().splitlines():
            if match := MOTION.match(line):
                # The host maps a position in the client's reference size onto the desktop's
                # pixels with (size - 1) as the last one, so 600 arrives as 600.94: scale back.
                x = round(float(match.group(2)) * (args.width - 1) / args.width)
                y = round(float(match.group(3)) * (args.height - 1) / args.height)
                columns, rows = grid(args.width, args.height)
                if MARGIN <= x < MARGIN + columns and MARGIN <= y < MARGIN + rows:
                    seen.append(((y - MARGIN) * columns + (x - MARGIN), int(match.group(1)) / 1e6))
        # Motions that are not B's (the pointer's first placement) would look like sightings
        # of positions sent later: keep only positions sent before they were seen.
        sent_at_of = dict(result["sent"])
        seen = [(k, at) for k, at in seen if k in sent_at_of and at >= sent_at_of[k]]
        first_seen_from: dict[int, float] = {}
        earliest = float("inf")
        for k, at in sorted(seen, key=lambda item: -item[0]):
            earliest = min(earliest, at)
            first_seen_from[k] = earliest
        windows = {"B alone": (baseline_start, baseline_end), "B during A's churn": (churn_start, churn_end)}
        delays: dict[str, list[float]] = {name: [] for name in windows}
        lost = dict.fromkeys(windows, 0)
        seen_ks = sorted(first_seen_from)
        for k, sent_at in result["sent"]:
            for name, (begin, end) in windows.items():
                if begin <= sent_at < end:
                    i = bisect.bisect_left(seen_ks, k)
                    if i == len(seen_ks):
                        lost[name] += 1
                    else:
                        delays[name].append((first_seen_from[seen_ks[i]] - sent_at) * 1000)
        merged = len(result["sent"]) - len(seen)
        print(f"host {args.hati}; A paused and resumed {churned['cycles']} times in {churn_end - churn_start:.1f} s "
              f"({churned['failed_starts']} of its starts failed); "
              f"B decoded {result['frames']} frames in {result['seconds']:.1f} s")
        for name in windows:
            print(f"  {name:20s} client->app input delay: {percentiles(delays[name])}; "
                  f"{lost[name]} never seen")
        print(f"  the app saw {len(seen)} motions for {len(result['sent'])} sent ({merged} merged)")
        print(f"  control loop's longest stretch between receives: {busiest_before_churn} ms up to "
              f"A's churn, {busiest_after_churn} ms after it")
        status = admin_get(host, "/status")
        print(f"  B's input in the host, from the control loop's receipt until its compositor "
              f"applied it: alone {delay_window(delays_start, delays_before_churn)}; during A's "
              f"churn {delay_window(delays_before_churn, delays_after_churn)}; "
              f"{status.get('input_threads_raised')} threads raised; this run: {stolen_since(steal)}",
              flush=True)
    finally:
        host.stop()


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time every process on the machine has used (user + nice + system + irq + softirq)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields[i] for i in (0, 1, 2, 5, 6)) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def round_of(host: RunningHost, work: Path, sessions: int, seconds: float, label: str,
             width: int, height: int) -> list[dict]:
    go = work / f"go-{label}"
    workers = [spawn("worker-stream", "--config-dir", str(work / f"c{k}"), "--port", str(host.port),
                     "--go-file", str(go), "--seconds", str(seconds), "--width", str(width),
                     "--height", str(height)) for k in range(sessions)]
    started = []
    for worker in workers:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        started.append(line)
    cpu_before, wall_before = proc_cpu_seconds(host.pid), time.monotonic()
    machine_before = machine_busy_seconds()
    go.touch()
    time.sleep(seconds / 2)
    rss = proc_rss_mb(host.pid)  # every session streaming
    results = []
    for worker, first in zip(workers, started):
        if first.startswith("{"):
            results.append(json.loads(first))
        else:
            assert worker.stdout is not None
            tail = worker.stdout.read().strip().splitlines()
            results.append(json.loads(tail[-1]) if tail else {"error": "worker printed nothing"})
        worker.wait(timeout=60)
    wall = time.monotonic() - wall_before
    cpu = (proc_cpu_seconds(host.pid) - cpu_before) / wall
    machine = (machine_busy_seconds() - machine_before) / wall
    for r in results:
        r["host_cpu_cores"] = cpu
        r["machine_cpu_cores"] = machine
        r["host_rss_mb"] = rss
    return results


def peak_rss_mb(command: list[str], seconds: float) -> float:
    """Runs `command` for `seconds` and returns the largest RSS seen (sampled every 50 ms)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0.0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and process.poll() is None:
            peak = max(peak, proc_rss_mb(process.pid))
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    return peak


def x264_reference_mb(width: int, height: int) -> tuple[float, float]:
    """RSS of gst-launch encoding width x height @30 with the host's x264 settings, and of the
    same pipeline without the encoder: their difference is what x264 itself takes."""
    source = (f"videotestsrc is-live=true ! videoconvert ! video/x-raw,width={width},height={height},"
              f"framerate={FPS}/1,format=I420")
    x264 = ("x264enc pass=cbr tune=zerolatency speed-preset=ultrafast bitrate=5000 key-int-max=1024 "
            "bframes=0 b-adapt=false ref=1 sliced-threads=true byte-stream=true aud=false")
    with_encoder = peak_rss_mb(["gst-launch-1.0", "-q", *f"{source} ! {x264} ! fakesink".split()], 4)
    without = peak_rss_mb(["gst-launch-1.0", "-q", *f"{source} ! fakesink".split()], 4)
    return with_encoder, without


def many(args) -> int:
    work = Path(tempfile.mkdtemp(prefix="hati-many-"))
    host = RunningHost(args.hati, work / "host")
    try:
        from moonlight_python import MoonlightClient

        idle_rss = proc_rss_mb(host.pid)
        for k in range(args.sessions):
            host.pair(MoonlightClient(config_dir=work / f"c{k}"))
        write_server_pem(host, work)
        for label in ("first", "second"):
            results = round_of(host, work, args.sessions, args.seconds, label, args.width, args.height)
            good = 0
            for k, r in enumerate(results):
                if "error" in r:
                    print(f"  {label} round, client {k}: start failed: {r['error']}")
                    continue
                share = r["frames"] / (r["seconds"] * FPS)
                good += share >= 0.95
                print(f"  {label} round, client {k}: {r['frames']} frames in {r['seconds']:.1f} s = {share:.0%}")
            print(f"{label} round: {good}/{args.sessions} sessions at >= 95% of {FPS} fps; host CPU "
                  f"{results[0].get('host_cpu_cores', 0):.2f} cores of the machine's "
                  f"{results[0].get('machine_cpu_cores', 0):.2f} busy (the rest: the clients); host RSS while streaming "
                  f"{results[0].get('host_rss_mb', 0):.0f} MB, after {proc_rss_mb(host.pid):.0f} MB "
                  f"(idle {idle_rss:.0f} MB)")
        streaming_rss = results[0].get("host_rss_mb", 0)
        per_session = (streaming_rss - idle_rss) / args.sessions
        with_encoder, without = x264_reference_mb(args.width, args.height)
        print(f"host RSS per session {per_session:.1f} MB; x264 alone at {args.width}x{args.height}: "
              f"{with_encoder - without:.1f} MB (gst-launch {with_encoder:.0f} MB with it, {without:.0f} MB "
              f"without); per session above x264: {per_session - (with_encoder - without):.1f} MB")
        return 0
    finally:
        host.stop()


def serial(args) -> int:
    work = Path(tempfile.mkdtemp(prefix="hati-serial-"))
    host = RunningHost(args.hati, work / "host")
    try:
        from moonlight_python import MoonlightClient

        client = MoonlightClient(config_dir=work / "c")
        host.pair(client)
        host.select(client)
        figures = [f"idle {proc_rss_mb(host.pid):.0f}"]
        for _ in range(args.sessions):
            client.start_stream(app="Test pattern", width=WIDTH, height=HEIGHT, fps=FPS, ready_timeout=30)
            time.sleep(3)
            client.stop_stream()
            client.quit_app()
            time.sleep(0.5)
            figures.append(f"{proc_rss_mb(host.pid):.0f}")
        arena = os.environ.get("MALLOC_ARENA_MAX", "unset (hati serve then limits glibc to 2 arenas)")
        print(f"MALLOC_ARENA_MAX={arena}: host RSS (MB) after each of {args.sessions} serial sessions: "
              + ", ".join(figures))
        return 0
    finally:
        host.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["stall", "many", "serial", "worker-mouse", "worker-churn", "worker-stream"])
    parser.add_argument("--hati", default=str(ROOT / "target/release/hati"))
    parser.add_argument("--test-client", default=str(ROOT / "target/release/hati-test-client"))
    parser.add_argument("--baseline-s", type=float, default=15)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--churn-nice", type=int, default=0)
    parser.add_argument("--input-nice", default="0,-10",
                        help="stall: streaming.input_thread_nice of each run, comma-separated")
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--width", type=int, default=WIDTH)
    parser.add_argument("--height", type=int, default=HEIGHT)
    parser.add_argument("--config-dir")
    parser.add_argument("--port", type=int)
    parser.add_argument("--stop-file")
    parser.add_argument("--go-file")
    parser.add_argument("--out")
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()
    return {"stall": stall, "many": many, "serial": serial, "worker-mouse": worker_mouse, "worker-churn": worker_churn,
            "worker-stream": worker_stream}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
