"""A moonlight-python client in its own process, so it can run inside another network namespace
(`ip netns exec NS python netclient.py ...`): pairs with the host at --host (the test enters the
PIN), streams an app, and prints the frames it decoded in each second as one JSON line.

Output, one line each: `paired`, then `{"frames_per_second": [...], "error": null | "..."}`.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from moonlight_python import MoonlightClient
from moonlight_python.discovery import connect_to_server
from moonlight_python.exceptions import MoonlightError


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config-dir", required=True)
    parser.add_argument("--pin", default="4711")
    parser.add_argument("--app", default="Test pattern")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=60)
    parser.add_argument("--bitrate", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()

    client = MoonlightClient(config_dir=args.config_dir)
    server = connect_to_server(args.host, client._identity, args.port)
    client.pair(server, pin=args.pin)
    print("paired", flush=True)

    arrivals: list[float] = []
    error = None
    started = time.monotonic()
    stop = threading.Event()
    try:
        client.start_stream(app=args.app, width=args.width, height=args.height, fps=args.fps,
                            bitrate_kbps=args.bitrate, ready_timeout=min(20.0, args.seconds))

        def collect() -> None:
            try:
                for _ in client.frames():
                    arrivals.append(time.monotonic())
                    if stop.is_set():
                        break
            except MoonlightError:
                pass

        collector = threading.Thread(target=collect, daemon=True)
        collector.start()
        time.sleep(max(0.0, started + args.seconds - time.monotonic()))
        stop.set()
        collector.join(timeout=3)
    except MoonlightError as failure:
        error = str(failure)
    finally:
        try:
            client.stop_stream()
        except Exception:  # noqa: BLE001 - the stream may never have started
            pass
    seconds = int(args.seconds)
    per_second = [0] * seconds
    for arrival in arrivals:
        index = int(arrival - started)
        if 0 <= index < seconds:
            per_second[index] += 1
    print(json.dumps({"frames_per_second": per_second, "error": error}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
