#!/usr/bin/python3
"""Times a bare GStreamer chain, frame by frame, the way Hati times its own: from the buffer
leaving `identity name=hati_capture` (right after the source, where Hati stamps the capture
time) to the end of the chain. Holding elements (a `videorate` that waits for the next frame)
are counted, unlike GStreamer's latency tracer, whose probe events overtake held buffers.

    /usr/bin/python3 scripts/bare_encoder.py SECONDS "videotestsrc is-live=true ! identity name=hati_capture ! ... ! x264enc ..."

Prints one JSON object: {"latencies_ms": [...], "frames": N, "seconds": S}. Needs Debian's
python3-gi and gir1.2-gstreamer-1.0 (system Python, not the venv). latency_bench.py runs it.
"""

import json
import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def main() -> int:
    seconds = float(sys.argv[1])
    description = sys.argv[2] + " ! fakesink name=bare_sink sync=false"
    Gst.init(None)
    pipeline = Gst.parse_launch(description)
    capture = pipeline.get_by_name("hati_capture")
    sink = pipeline.get_by_name("bare_sink")
    if capture is None:
        print("the chain has no `identity name=hati_capture` after its source", file=sys.stderr)
        return 2
    entered: dict[int, int] = {}
    latencies: list[float] = []
    # Encoders may shift timestamps (x264enc adds 1000 hours); the first frame out is the first
    # frame in, which gives the shift.
    shift: list[int] = []

    def on_capture(_pad, info):
        buffer = info.get_buffer()
        if buffer is not None and buffer.pts != Gst.CLOCK_TIME_NONE:
            entered[buffer.pts] = time.monotonic_ns()
        return Gst.PadProbeReturn.OK

    def on_sink(_pad, info):
        buffer = info.get_buffer()
        if buffer is not None and entered:
            if not shift:
                shift.append(buffer.pts - min(entered))
            started = entered.pop(buffer.pts - shift[0], None)
            if started is not None:
                latencies.append((time.monotonic_ns() - started) / 1e6)
        return Gst.PadProbeReturn.OK

    capture.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, on_capture)
    sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_sink)
    loop = GLib.MainLoop()
    bus = pipeline.get_bus()
    bus.add_signal_watch()
    failure = []

    def on_error(_bus, message):
        failure.append(message.parse_error()[0].message)
        loop.quit()

    bus.connect("message::error", on_error)
    pipeline.set_state(Gst.State.PLAYING)
    GLib.timeout_add(int(seconds * 1000), loop.quit)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    if failure:
        print(f"pipeline error: {failure[0]}", file=sys.stderr)
        return 1
    print(json.dumps({"latencies_ms": latencies, "frames": len(latencies), "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
