#!/usr/bin/env python3
"""Latency and frame-rate benchmark: Hati against the bare encoder, in one run, alternating.

    cargo build --release --bin hati && cargo build --release -p hati-compositor --bin hati-test-client
    .venv/bin/python scripts/latency_bench.py [--rounds 3] [--seconds 8] [--modes 1280x720x60,1920x1080x60]

For each mode and source (the Test pattern, and a Wayland app in its session desktop), each round
runs, back to back:

* **hati**: a real `hati serve` with the default config streams to the real client library
  (moonlight-python); the figures are the client-reported host processing time of every frame
  after a 2 s warm-up (the frame header's field, in 0.1 ms) and the frames the client decoded
  per second.
* **hati+videorate**: the same with the previous default `video_params` (with `videorate`), to
  show what the change bought.
* **bare**: `scripts/bare_encoder.py` runs the very source ... encoder chain that Hati logged
  for the hati run (its payloader and sender replaced by `fakesink`) and times each frame from
  the capture point to the sink with pad probes. The desktop source (`waylanddisplaysrc`) exists only inside Hati,
  so for the Wayland app the bare run uses the Test pattern's source in the desktop's format
  (BGRx at the same mode): the same conversion and encoder, without the compositor.

Prints one line per run and a summary per mode and source: p50/p99 of each, Hati minus bare,
and fps. Not part of `make test`: it takes minutes and its figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from moonlight_python import MoonlightClient
from moonlight_python.exceptions import MoonlightError

from hostrun import ROOT, RunningHost

OLD_VIDEO_PARAMS = (
    "videoconvert ! videoscale ! videorate ! "
    "video/x-raw,width={width},height={height},framerate={fps}/1,format=I420"
)
WARM_UP_S = 2.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def hati_run(host: RunningHost, client: MoonlightClient, app: str, mode: tuple[int, int, int],
             seconds: float, bitrate: int) -> tuple[list[float], float, str]:
    """Streams `app`; returns (host processing ms per frame after warm-up, fps decoded, the
    video pipeline Hati logged)."""
    width, height, fps = mode
    host.select(client)
    mark = len(host.log())
    client.start_stream(app=app, width=width, height=height, fps=fps, bitrate_kbps=bitrate, ready_timeout=30)
    latencies: list[float] = []
    counted = [0]
    stop = threading.Event()
    started = time.monotonic()

    def collect() -> None:
        try:
            for frame in client.frames():
                if time.monotonic() - started >= WARM_UP_S:
                    counted[0] += 1
                    if frame.host_processing_latency_us:
                        # moonlight-common-c reports the frame header field as is: 0.1 ms units
                        # (moonlight-python names it _us).
                        latencies.append(frame.host_processing_latency_us / 10)
                if stop.is_set():
                    break
        except MoonlightError:
            pass

    collector = threading.Thread(target=collect, daemon=True)
    collector.start()
    time.sleep(WARM_UP_S + seconds)
    stop.set()
    collector.join(timeout=2)
    client.stop_stream()
    client.quit_app()
    logged = re.findall(r'pipelines video=(.*?) audio=', host.log()[mark:])
    return latencies, counted[0] / seconds, logged[-1] if logged else ""


def bare_pipeline(hati_pipeline: str, test_source: str, mode: tuple[int, int, int]) -> str:
    """Hati's video pipeline up to the encoder's output. The desktop source becomes the test
    source in the desktop's format (BGRx at the mode), so the same conversion is timed."""
    chain = hati_pipeline.split(" ! moonlightvideopay")[0]
    if "waylanddisplaysrc" in chain:
        width, height, fps = mode
        desktop_like = f"{test_source} ! video/x-raw,format=BGRx,width={width},height={height},framerate={fps}/1 "
        chain = re.sub(r"^waylanddisplaysrc[^!]*", desktop_like, chain)
    return chain


def bare_run(pipeline: str, seconds: float) -> tuple[list[float], float]:
    """Runs `pipeline` (through bare_encoder.py, which times each frame from the capture point
    to the end of the chain) for warm-up + `seconds`; returns (ms per frame after warm-up,
    frames per second after warm-up)."""
    result = subprocess.run(
        ["/usr/bin/python3", str(ROOT / "scripts/bare_encoder.py"), str(WARM_UP_S + seconds), pipeline],
        capture_output=True, text=True, timeout=WARM_UP_S + seconds + 30,
    )
    if result.returncode != 0:
        raise RuntimeError(f"bare run failed: {result.stderr[-2000:]}\n{pipeline}")
    latencies = json.loads(result.stdout)["latencies_ms"]
    warm_frames = int(WARM_UP_S * 60)
    kept = latencies[warm_frames:]
    return kept, len(kept) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--modes", default="1280x720x60,1920x1080x60")
    parser.add_argument("--bitrate", type=int, default=20000, help="kbps the client asks for")
    parser.add_argument("--sources", default="test,desktop", help="test, desktop or both")
    parser.add_argument("--no-old", action="store_true", help="skip the hati+videorate runs")
    default_bin = ROOT / "target/release/hati"
    if not default_bin.exists():
        default_bin = ROOT / "target/debug/hati"
    parser.add_argument("--hati", default=os.environ.get("HATI_BIN", str(default_bin)))
    args = parser.parse_args()

    test_client = Path(args.hati).with_name("hati-test-client")
    apps = (
        '[[apps]]\ntitle = "Test pattern"\ncompositor = false\n[apps.video]\n'
        'source = "videotestsrc is-live=true pattern=ball background-color=0xff2060a0 '
        'foreground-color=0xffffd040 motion=wavy"\n'
        '[apps.audio]\nsource = "audiotestsrc is-live=true wave=sine freq=440 volume=0.4"\n'
        f'[[apps]]\ntitle = "Wayland app"\nxwayland = false\n[apps.runner]\ntype = "process"\ncmd = "{test_client}"\n'
    )
    test_source = "videotestsrc is-live=true pattern=ball background-color=0xff2060a0 foreground-color=0xffffd040 motion=wavy"
    work = Path(tempfile.mkdtemp(prefix="hati-latency-"))
    rust_log = "info,hati::session=debug,tokio_enet=warn"
    hosts = {"hati": RunningHost(args.hati, work / "new", apps, rust_log)}
    if not args.no_old:
        old = f'[gstreamer.video]\nvideo_params = "{OLD_VIDEO_PARAMS}"\n'
        hosts["hati+videorate"] = RunningHost(args.hati, work / "old", old + apps, rust_log)
    client = MoonlightClient(config_dir=work / "client")
    for host in hosts.values():
        host.pair(client)
    sources = {"test": "Test pattern", "desktop": "Wayland app"}
    wanted = [s for s in args.sources.split(",") if s in sources]
    results: dict[tuple[str, str, str], list[tuple[list[float], float]]] = {}
    try:
        print(f"{'mode':>12} {'source':>12} {'run':>15} {'frames':>7} {'p50 ms':>7} {'p99 ms':>7} {'fps':>6}", flush=True)
        for round_ in range(args.rounds):
            for mode_text in args.modes.split(","):
                mode = tuple(int(v) for v in mode_text.split("x"))
                for source in wanted:
                    pipeline = ""
                    for name, host in hosts.items():
                        latencies, fps, logged = hati_run(host, client, sources[source], mode, args.seconds, args.bitrate)
                        pipeline = pipeline or logged
                        results.setdefault((mode_text, source, name), []).append((latencies, fps))
                        print(f"{mode_text:>12} {source:>12} {name:>15} {len(latencies):>7} "
                              f"{percentile(latencies, 0.5):>7.2f} {percentile(latencies, 0.99):>7.2f} {fps:>6.1f}", flush=True)
                    if not pipeline:
                        print("no pipeline in the host's log; the bare run is skipped", flush=True)
                        continue
                    latencies, fps = bare_run(bare_pipeline(pipeline, test_source, mode), args.seconds)
                    results.setdefault((mode_text, source, "bare"), []).append((latencies, fps))
                    print(f"{mode_text:>12} {source:>12} {'bare':>15} {len(latencies):>7} "
                          f"{percentile(latencies, 0.5):>7.2f} {percentile(latencies, 0.99):>7.2f} {fps:>6.1f}", flush=True)
    finally:
        for host in hosts.values():
            host.stop()

    print("\nsummary (all rounds pooled; fps is the median round)")
    print(f"{'mode':>12} {'source':>12} {'run':>15} {'p50 ms':>7} {'p99 ms':>7} {'fps':>6} {'p50-bare':>9} {'p99-bare':>9}")
    for mode_text in args.modes.split(","):
        for source in wanted:
            bare = results.get((mode_text, source, "bare"), [])
            bare_all = [v for run, _ in bare for v in run]
            for name in [*hosts, "bare"]:
                runs = results.get((mode_text, source, name), [])
                pooled = [v for run, _ in runs for v in run]
                if not pooled:
                    continue
                fps = statistics.median(f for _, f in runs)
                p50, p99 = percentile(pooled, 0.5), percentile(pooled, 0.99)
                extra = ""
                if bare_all and name != "bare":
                    extra = f" {p50 - percentile(bare_all, 0.5):>+9.2f} {p99 - percentile(bare_all, 0.99):>+9.2f}"
                print(f"{mode_text:>12} {source:>12} {name:>15} {p50:>7.2f} {p99:>7.2f} {fps:>6.1f}{extra}")
    if "desktop" in wanted:
        print("(the desktop's bare run converts and encodes the Test pattern's source as BGRx at the same "
              "mode: waylanddisplaysrc lives only inside Hati)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
