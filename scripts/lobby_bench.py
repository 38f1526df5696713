"""What a lobby guest costs the host: host CPU (the hati process and everything it started: apps,
Xwayland, PulseAudio) while an owner streams the Wayland test app at 640x360@30 with 1, 2 and 3
guests, against the same number of separate sessions, all in one run on one machine. Each client
is the real moonlight-common-c (tests/e2e/gwclient.py) in its own process; client CPU (decoding)
is not the host's and is not counted.

  separate   the owner's session and N more, each its own desktop, app and encoder
  same mode  owner + N guests at 640x360@30: the guests share the owner's encoders
  mixed      owner + N guests at 480x270@30, 320x180@30, 800x450@30: one encoder each, one desktop

Every scenario keeps one owner session streaming throughout and, three times (--rounds), adds
the others and ends them again, measuring the host alone before and after each round: per
guest = (CPU with N guests - the mean of the two alone windows around it) / N, averaged over the
rounds, and per separate session the same with N separate sessions. (This VM's speed drifts:
every thread's CPU for the same work moves by up to 30% from one 20 s window to the next, and
a session's own cost by 0.01-0.05 cores from start to start, as much as a guest costs; one
owner measured once for all scenarios gave per-guest figures from -0.007 to 0.015 cores.)
Target: a guest in the owner's mode costs at most 10% of a separate session.

  .venv/bin/python scripts/lobby_bench.py [--guests 3] [--seconds 10] [--rounds 3] [--threads]
      [--hati target/release/hati] (the release build, what users run; the default)

--threads prints each window's CPU by process and thread name (digits folded): where it goes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostrun import ROOT, RunningHost, cpu_steal, stolen_since  # noqa: E402

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


def thread_cpu_seconds(root: int) -> dict[tuple[int, int], tuple[str, float]]:
    """CPU seconds of every thread of `root` and the processes under it, by (pid, tid), with a
    "process/thread" name whose digits are folded (`hati-send-#`)."""
    tick = os.sysconf("SC_CLK_TCK")
    threads = {}
    for pid in tree_cpu_seconds(root):
        try:
            process = Path(f"/proc/{pid}/comm").read_text().strip()
            for task in Path(f"/proc/{pid}/task").iterdir():
                stat = (task / "stat").read_text()
                name = re.sub(r"[0-9]+", "#", stat[stat.index("(") + 1 : stat.rindex(")")])
                fields = stat.rsplit(")", 1)[1].split()
                threads[(pid, int(task.name))] = (f"{process}/{name}", (int(fields[11]) + int(fields[12])) / tick)
        except (OSError, ValueError):
            continue
    return threads


SHOW_THREADS = False


def measure(host: RunningHost, seconds: float) -> float:
    """Host cores used over `seconds` (threads alive at both ends); with --threads, prints
    where they went."""
    before, start = thread_cpu_seconds(host.pid), time.monotonic()
    time.sleep(seconds)
    after, wall = thread_cpu_seconds(host.pid), time.monotonic() - start
    by_name: dict[str, float] = {}
    for key, (name, cpu) in after.items():
        if key in before:
            by_name[name] = by_name.get(name, 0.0) + (cpu - before[key][1]) / wall
    if SHOW_THREADS:
        busiest = sorted(by_name.items(), key=lambda item: -item[1])
        print("      " + ", ".join(f"{name} {cores:.3f}" for name, cores in busiest if cores >= 0.002), flush=True)
    return sum(by_name.values())


def quit_and_wait(host: RunningHost, clients: list[Path], remaining: int) -> None:
    """Ends `clients`' sessions (Moonlight's quit) and waits until `remaining` are left."""
    for directory in clients:
        subprocess.run([sys.executable, str(GWCLIENT), "quit", "--host", "127.0.0.1", "--port", str(host.port),
                        "--config-dir", str(directory)], capture_output=True, text=True, timeout=60)
    deadline = time.monotonic() + 30
    while len(admin(host, "/sessions")) > remaining and time.monotonic() < deadline:
        time.sleep(0.2)


def scenario(host: RunningHost, clients: list[Path], modes: list[tuple[int, int, int]],
             lobby: bool, seconds: float, rounds: int, label: str) -> tuple[float, float]:
    """One owner session (`clients[0]`) throughout; `rounds` times: the owner alone, then the
    others in `modes` added as its guests (`lobby`) or as separate sessions, then ended. A
    window of `seconds` alone before and after each round with them: the host's cores with them
    minus the mean of the two alone windows around it, averaged over the rounds (this cancels
    the drift of the machine's speed and of the owner's own cost); and that mean alone."""
    others = clients[1:]
    steal = cpu_steal()
    transition = 5 * len(clients) + 10
    owner = spawn_stream(host, clients[0], APP, modes[0],
                         (2 * rounds + 1) * seconds + rounds * transition + 30)
    wait_streaming(owner)
    if lobby:
        session = admin(host, "/sessions")[0]["id"]
        hati(host, "lobby", "open", str(session), "--max", str(len(clients)))
        title = admin(host, "/lobbies")[0]["join_title"]
    time.sleep(2)  # past its start
    alone = [measure(host, seconds)]
    added, shares = [], []
    for _ in range(rounds):
        processes = []
        for directory, mode in zip(others, modes[1:]):
            process = spawn_stream(host, directory, title if lobby else APP, mode, seconds + 6)
            wait_streaming(process)
            processes.append(process)
        time.sleep(2)  # every stream past its start
        added.append(measure(host, seconds))
        for process, mode in zip(processes, modes[1:]):
            frames = finish(process).get("frames_per_second", [])[1:-1]
            shares.append(sum(frames) / (len(frames) * mode[2]) if frames else 0.0)
        quit_and_wait(host, others, 1)
        time.sleep(2)
        alone.append(measure(host, seconds))
    owner_frames = finish(owner).get("frames_per_second", [])[1:-1]
    quit_and_wait(host, clients[:1], 0)
    differences = [cores - (before + after) / 2 for cores, before, after in zip(added, alone, alone[1:])]
    owner_share = sum(owner_frames) / (len(owner_frames) * modes[0][2]) if owner_frames else 0.0
    print(f"  {label:34s} alone {' '.join(f'{c:.3f}' for c in alone)}; with them "
          f"{' '.join(f'{c:.3f}' for c in added)} cores; frames received: owner {owner_share:.0%}, "
          f"the others {min(shares, default=0):.0%} at least; {stolen_since(steal)}", flush=True)
    return sum(differences) / len(differences), sum(alone) / len(alone)


def admin(host: RunningHost, path: str):
    sys.path.insert(0, str(ROOT / "tests/e2e"))
    from conftest import admin_request

    return admin_request(host.state, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hati", default=str(ROOT / "target/release/hati"))
    parser.add_argument("--test-client", default=str(ROOT / "target/release/hati-test-client"))
    parser.add_argument("--guests", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10, help="each window")
    parser.add_argument("--rounds", type=int, default=3, help="windows with the others, per scenario")
    parser.add_argument("--threads", action="store_true", help="print each window's CPU by thread")
    args = parser.parse_args()
    global SHOW_THREADS
    SHOW_THREADS = args.threads
    for binary in (args.hati, args.test_client):
        if not Path(binary).exists():
            print(f"{binary} is missing: cargo build --release --bin hati -p hati -p hati-compositor "
                  "--bin hati-test-client", file=sys.stderr)
            return 2

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
        print(f"host {args.hati}; {os.cpu_count()} cores; {args.rounds} rounds of {args.seconds:.0f} s windows "
              "per scenario (host cores: the owner alone before, between and after)")
        rows = []
        for n in range(1, args.guests + 1):
            group, owner_mode = clients[: n + 1], [OWNER_MODE] * (n + 1)
            per = []
            for label, modes, lobby in ((f"owner + {n} separate", owner_mode, False),
                                        (f"owner + {n} guests, same mode", owner_mode, True),
                                        (f"owner + {n} guests, mixed modes", [OWNER_MODE] + MIXED_MODES[:n], True)):
                added, _ = scenario(host, group, modes, lobby, args.seconds, args.rounds, label)
                per.append(added / n)
            rows.append((n, *per))
        print("\nper guest, cores (and against a separate session):")
        for n, separate, same, mixed in rows:
            print(f"  {n} guest(s): separate session {separate:.3f}; same-mode guest {same:.3f} "
                  f"({same / separate:.0%}); mixed-mode guest {mixed:.3f} ({mixed / separate:.0%})")
        same_mode = [same / separate for _, separate, same, _ in rows]
        print(f"same-mode guest against a separate session, mean over 1..{args.guests} guests: "
              f"{sum(same_mode) / len(same_mode):.0%} (target at most 10%)")
        return 0
    finally:
        host.stop()


if __name__ == "__main__":
    sys.exit(main())
