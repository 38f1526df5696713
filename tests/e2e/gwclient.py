"""A Moonlight client (the real moonlight-common-c through moonlight-python) in its own process,
for the gateway tests: it runs inside a client network namespace (`ip netns exec NS python
gwclient.py ...`) and talks only to the gateway's address.

  pair    pairs with the gateway (the test enters the PIN with `hati pair`); prints `paired`
  stream  launches (or resumes) the app, streams it for --seconds while sending a mouse move and
          a key press every half second (--input) and, with --pad, plugs in controller 0 (an
          Xbox pad) and presses and releases its A button every half second, then stops the
          stream (the session stays, as when a Moonlight user closes the stream window); prints
          one JSON line
  quit    quits the running app (/cancel); prints one JSON line

The JSON line: {"frames_per_second": [...], "audio_chunks": n, "audio_rms": x, "inputs": n,
"first_frame_ms": launch to first decoded frame, "key_frames": IDR frames decoded,
"frame_shape": [height, width] of the last frame, "spots": {quadrant: BGR} of the last frame,
"error": null | "..."}.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import cffi
import numpy as np

import moonlight_python
from moonlight_python import MoonlightClient
from moonlight_python.discovery import connect_to_server
from moonlight_python.exceptions import MoonlightError

LIMELIGHT = """
int LiSendMouseMoveEvent(short deltaX, short deltaY);
int LiSendKeyboardEvent(short keyCode, signed char keyAction, signed char modifiers);
int LiSendControllerArrivalEvent(uint8_t controllerNumber, uint16_t activeGamepadMask, uint8_t type,
                                 uint32_t supportedButtonFlags, uint16_t capabilities);
int LiSendMultiControllerEvent(short controllerNumber, short activeGamepadMask, int buttonFlags,
                               unsigned char leftTrigger, unsigned char rightTrigger, short leftStickX,
                               short leftStickY, short rightStickX, short rightStickY);
"""
KEY_DOWN, KEY_UP = 0x03, 0x04
# --pad: controller 0 alone (active mask bit 0), an Xbox pad (LI_CTYPE_XBOX) with every button and
# rumble (LI_CCAP_RUMBLE); its A button (A_FLAG).
PAD_MASK, PAD_XBOX, PAD_RUMBLE, PAD_A = 0x1, 0x01, 0x02, 0x1000


def limelight():
    ffi = cffi.FFI()
    ffi.cdef(LIMELIGHT)
    return ffi.dlopen(str(Path(moonlight_python.__file__).with_name("libmoonlight-common-c.so")))


def quadrant_spots(frame: np.ndarray) -> dict:
    """The BGR pixel at the middle of each quadrant of a decoded frame."""
    height, width = frame.shape[:2]
    return {name: [int(v) for v in frame[y * height // 4, x * width // 4]]
            for name, (x, y) in {"top_left": (1, 1), "top_right": (3, 1),
                                 "bottom_left": (1, 3), "bottom_right": (3, 3)}.items()}


def stream(client: MoonlightClient, args) -> dict:
    arrivals: list[float] = []
    key_frames = 0
    last_frame: list = [None]
    chunks: list[np.ndarray] = []
    inputs = 0
    error = None
    stop = threading.Event()
    started = time.monotonic()
    launched = time.monotonic()
    try:
        client.start_stream(app=args.app, width=args.width, height=args.height, fps=args.fps,
                            bitrate_kbps=args.bitrate, ready_timeout=20)
        started = time.monotonic()
        print("streaming", flush=True)

        def frames() -> None:
            nonlocal key_frames
            try:
                for frame in client.frames():
                    arrivals.append(time.monotonic())
                    key_frames += frame.frame_type == 1
                    last_frame[0] = frame
                    if stop.is_set():
                        break
            except (MoonlightError, AttributeError):
                pass

        def audio() -> None:
            try:
                for chunk in client.audio():
                    chunks.append(chunk.data)
                    if stop.is_set():
                        break
            except (MoonlightError, AttributeError):
                pass

        collectors = [threading.Thread(target=f, daemon=True) for f in (frames, audio)]
        for collector in collectors:
            collector.start()
        lib = limelight()
        if args.pad:
            lib.LiSendControllerArrivalEvent(0, PAD_MASK, PAD_XBOX, 0xFFFFFFFF, PAD_RUMBLE)
            inputs += 1
        while time.monotonic() < started + args.seconds:
            if args.input:
                lib.LiSendMouseMoveEvent(3, 2)
                lib.LiSendKeyboardEvent(args.key, KEY_DOWN, 0)
                lib.LiSendKeyboardEvent(args.key, KEY_UP, 0)
                inputs += 3
            if args.pad:
                lib.LiSendMultiControllerEvent(0, PAD_MASK, PAD_A, 0, 0, 0, 0, 0, 0)
                lib.LiSendMultiControllerEvent(0, PAD_MASK, 0, 0, 0, 0, 0, 0, 0)
                inputs += 2
            time.sleep(0.5)
        stop.set()
        for collector in collectors:
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
    samples = np.concatenate(chunks) if chunks else np.zeros(1)
    # From asking to launch to the first decoded frame (start_stream returns once the stream runs).
    first_frame_ms = (arrivals[0] - launched) * 1000 if arrivals else None
    last = last_frame[0]
    shape = list(last.data.shape[:2]) if last is not None else None
    spots = quadrant_spots(last.data) if last is not None else None
    return {"frames_per_second": per_second, "audio_chunks": len(chunks), "first_frame_ms": first_frame_ms,
            "key_frames": key_frames, "frame_shape": shape, "spots": spots,
            "audio_rms": float(np.sqrt(np.mean(np.square(samples.astype(np.float64))))),
            "inputs": inputs, "error": error}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=("pair", "stream", "quit"))
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config-dir", required=True)
    parser.add_argument("--pin", default="4711")
    parser.add_argument("--app", default="Test pattern")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--bitrate", type=int, default=8000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--input", action="store_true")
    parser.add_argument("--key", type=lambda text: int(text, 0), default=0x41,
                        help="the Windows virtual key --input presses (default 0x41, A)")
    parser.add_argument("--pad", action="store_true",
                        help="stream: plug in controller 0 and press its A button every half second")
    parser.add_argument("--quit", action="store_true", help="stream: quit the app afterwards")
    args = parser.parse_args()

    client = MoonlightClient(config_dir=args.config_dir)
    if args.action == "pair":
        server = connect_to_server(args.host, client._identity, args.port)
        client.pair(server, pin=args.pin)
        print("paired", flush=True)
        return 0
    client.connect(args.host, args.port)
    if args.action == "quit":
        error = None
        try:
            client.quit_app()
        except MoonlightError as failure:
            error = str(failure)
        print(json.dumps({"error": error}), flush=True)
        return 0
    result = stream(client, args)
    if args.quit:
        try:
            client.quit_app()
        except MoonlightError as failure:
            result["error"] = result["error"] or f"quit: {failure}"
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
