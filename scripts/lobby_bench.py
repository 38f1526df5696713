"""What a lobby guest costs the host: host CPU (the hati process and everything it started: apps,
Xwayland, PulseAudio) while an owner streams the Wayland test app at 640x360@30 with 1, 2 and 3
guests, against the same number of separate sessions, all in one run on one machine. Each client
is the real moonlight-common-c (tests/e2e/gwclient.py) in its own process; client CPU (decoding)
is not the host's and is not counted.

  separate   N+1 sessions, each its own desktop, app and encoder
  same mode  owner + N guests at 640x360@30: the guests share the owner's encoder
  mixed      owner + N guests at 480x270@30, 320x180@30, 800x450@30: one encoder each, one desktop

Per guest = (CPU with N guests - CPU of the owner alone) / N; against a separate session's
(CPU of N+1 separate sessions - CPU of one session) / N. Target: a guest in the owner's mode costs
at most 10% of a separate session.

  .venv/bin/python scripts/lobby_bench.py [--guests 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostrun import ROOT, RunningHost  # noqa: E402

GWCLIENT = ROOT / "tests/e2e/gwclient.py"
APP = "Wayland test"
OWNER_MODE = (640, 360, 30)
MIXED_MODES = [(480, 270, 30), (320, 180, 30), (800, 450, 30)]


def tree_cpu_seconds(root: int) -> dict[int, float]:
    """CPU seconds (user + system) of `root` and every process under it, by pid."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    seen: dict[int, float] = {}
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in times:
            seen[pid] = times[pid]
        stack.extend(children.get(pid, []))
    return seen


def spawn_stream(host: RunningHost, directory: Path, app: str, mode: tuple[int, int, int], seconds: float):
    width, height, fps = mode
    return subprocess.Popen(
        [sys.executable, str(GWCLIENT), "stream", "--host", "127.0.0.1", "--port", str(host.port),
         "--config-dir", str(directory), "--app", app, "--width", str(width), "--height", str(height),
         "--fps", str(fps), "--seconds", str(seconds), "--bitrate", "3000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_streaming(process: subprocess.Popen) -> None:
    while True:
        line = process.stdout.readline()
        if line.strip() == "streaming":
            return
        if not line:
            raise RuntimeError(f"a client never streamed: {process.stderr.read()[-1500:]}")


def finish(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=120)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": err[-500:]}


def hati(host: RunningHost, *args: str) -> str:
    result = subprocess.run([host.hati, "--state-dir", str(host.state), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"hati {' '.join(args)}: {result.stderr}")
    return result.stdout


def measure(host: RunningHost, seconds: float) -> float:
    """Host cores used over `seconds` (processes alive at both ends)."""
    before, start = tree_cpu_seconds(host.pid), time.monotonic()
    time.sleep(seconds)
    after, wall = tree_cpu_seconds(host.pid), time.monotonic() - start
    return sum(after[pid] - before[pid] for pid in after if pid in before) / wall


def scenario(host: RunningHost, work: Path, clients: list[Path], modes: list[tuple[int, int, int]],
             lobby: bool, seconds: float, label: str) -> tuple[float, list[dict]]:
    """Streams with `clients[0]` (owner) and, as guests (`lobby`) or separate sessions, the
    others in `modes`; the host's cores over the window once all stream, and each client's
    result."""
    stream_seconds = seconds + 12
    owner = spawn_stream(host, clients[0], APP, modes[0], stream_seconds + 4 * len(clients))
    wait_streaming(owner)
    processes = [owner]
    if lobby and len(clients) > 1:
        sessions = json.loads(json.dumps(admin(host, "/sessions")))
        session = sessions[0]["id"]
        hati(host, "lobby", "open", str(session), "--max", str(len(clients)))
        title = admin(host, "/lobbies")[0]["join_title"]
    for directory, mode in zip(clients[1:], modes[1:]):
        process = spawn_stream(host, directory, title if lobby else APP, mode, stream_seconds)
        wait_streaming(process)
        processes.append(process)
    time.sleep(2)  # every stream past its start
    cores = measure(host, seconds)
    results = [finish(p) for p in reversed(processes)][::-1]
    for directory in clients:
        subprocess.run([sys.executable, str(GWCLIENT), "quit", "--host", "127.0.0.1", "--port", str(host.port),
                        "--config-dir", str(directory)], capture_output=True, text=True, timeout=60)
    deadline = time.monotonic() + 30
    while admin(host, "/sessions") and time.monotonic() < deadline:
        time.sleep(0.2)
    shares = [sum(r.get("frames_per_second", [])[1:11]) / (10 * m[2]) for r, m in zip(results, modes)]
    print(f"  {label:34s} host {cores:5.2f} cores; frames received {', '.join(f'{s:.0%}' for s in shares)}",
          flush=True)
    return cores, results


def admin(host: RunningHost, path: str):
    sys.path.insert(0, str(ROOT / "tests/e2e"))
    from conftest import admin_request

    return admin_request(host.state, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hati", default=str(ROOT / "target/debug/hati"))
    parser.add_argument("--test-client", default=str(ROOT / "target/debug/hati-test-client"))
    parser.add_argument("--guests", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()

    from moonlight_python import MoonlightClient

    work = Path(tempfile.mkdtemp(prefix="hati-lobby-bench-"))
    app = (f'[[apps]]\ntitle = "{APP}"\ncompositor = true\n[apps.runner]\ntype = "process"\n'
           f'cmd = "{args.test_client}"\n')
    host = RunningHost(args.hati, work / "host", app)
    try:
        clients = [work / f"client{k}" for k in range(args.guests + 1)]
        for k, directory in enumerate(clients):
            before = {c["id"] for c in admin(host, "/clients")}
            host.pair(MoonlightClient(config_dir=directory))
            (new,) = [c for c in admin(host, "/clients") if c["id"] not in before]
            if k:
                hati(host, "clients", "set", new["id"][:16], "--role", "player")
        print(f"host {args.hati}; {os.cpu_count()} cores; window {args.seconds:.0f} s per scenario")
        alone, _ = scenario(host, work, clients[:1], [OWNER_MODE], False, args.seconds, "owner alone (1 session)")
        rows = []
        for n in range(1, args.guests + 1):
            separate, _ = scenario(host, work, clients[: n + 1], [OWNER_MODE] * (n + 1), False, args.seconds,
                                   f"{n + 1} separate sessions")
            same, _ = scenario(host, work, clients[: n + 1], [OWNER_MODE] * (n + 1), True, args.seconds,
                               f"owner + {n} guests, same mode")
            mixed, _ = scenario(host, work, clients[: n + 1], [OWNER_MODE] + MIXED_MODES[:n], True, args.seconds,
                                f"owner + {n} guests, mixed modes")
            rows.append((n, separate, same, mixed))
        print("\nper guest, cores (and against a separate session):")
        for n, separate, same, mixed in rows:
            per_separate = (separate - alone) / n
            per_same = (same - alone) / n
            per_mixed = (mixed - alone) / n
            print(f"  {n} guest(s): separate session {per_separate:.3f}; same-mode guest {per_same:.3f} "
                  f"({per_same / per_separate:.0%}); mixed-mode guest {per_mixed:.3f} "
                  f"({per_mixed / per_separate:.0%})")
        return 0
    finally:
        host.stop()


if __name__ == "__main__":
    sys.exit(main())
