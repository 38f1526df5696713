"""Counters that wrap during a long session (issue: every stream froze after 65 536 video
packets). The debug settings start the video packet counter and the audio RTP sequence just
below 65 536, and a high-entropy source at a high bitrate with 100% FEC sends over 10 000 video
packets a second, so the stream crosses the 16-bit wrap three times in seconds. The real client
(moonlight-common-c) must keep decoding after each wrap."""

from __future__ import annotations

import threading
import time

import numpy as np

from moonlight_python import MoonlightClient
from moonlight_python.exceptions import MoonlightError

from conftest import report
from test_pairing import pair

# A small picture keeps x264 fast on 2 cores; the bitrate, not the size, sets the packet rate.
WIDTH, HEIGHT, FPS, BITRATE_KBPS = 640, 360, 60, 60000
# About 5 s below the wrap, so the client decodes for a while before the first one.
VIDEO_START = 65536 - 60000
AUDIO_START = 65536 - 400
WINDOW_S = 2.0


def test_stream_keeps_going_across_three_sequence_wraps(make_host, tmp_path):
    host = make_host(
        "[streaming]\nfec_percentage = 100\n"
        f"[debug]\nvideo_first_packet_index = {VIDEO_START}\naudio_first_sequence = {AUDIO_START}\n"
        '[[apps]]\ntitle = "Snow"\ncompositor = false\n[apps.video]\n'
        'source = "videotestsrc is-live=true pattern=snow"\n'
    ).start()
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    client.start_stream(
        app="Snow", width=WIDTH, height=HEIGHT, fps=FPS, bitrate_kbps=BITRATE_KBPS, codec="h264", ready_timeout=20
    )
    frame_times: list[float] = []
    audio: list[tuple[float, float]] = []  # (time, rms)
    samples: list[tuple[float, int]] = []  # (time, video packets made)
    stop = threading.Event()

    def collect_video() -> None:
        try:
            for _ in client.frames():
                frame_times.append(time.monotonic())
                if stop.is_set():
                    break
        except MoonlightError:
            pass

    def collect_audio() -> None:
        try:
            for chunk in client.audio():
                audio.append((time.monotonic(), float(np.sqrt(np.mean(np.square(chunk.data))))))
                if stop.is_set():
                    break
        except MoonlightError:
            pass

    threads = [threading.Thread(target=f, daemon=True) for f in (collect_video, collect_audio)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    wraps_needed = 3
    deadline = start + 60
    while time.monotonic() < deadline:
        time.sleep(0.5)
        packets = host.sessions()[0]["packets"] or {}
        # Every packet advances the counter, sent or dropped (before the client's first ping).
        sent = packets.get("video_sent", 0) + packets.get("video_dropped", 0)
        samples.append((time.monotonic(), sent))
        # Two more windows after the third wrap, so "after each wrap" is measured.
        if VIDEO_START + sent >= wraps_needed * 65536 and len(samples) > 2 and _wrap_time(samples, wraps_needed) < time.monotonic() - 2 * WINDOW_S:
            break
    stop.set()
    end = time.monotonic()
    for thread in threads:
        thread.join(timeout=3)
    client.stop_stream()

    sent = samples[-1][1]
    crossed = (VIDEO_START + sent) // 65536
    rate = sent / (samples[-1][0] - start)
    report(f"wrap test: {sent} video packets in {end - start:.1f} s ({rate:.0f}/s), crossed the 16-bit wrap {crossed} times")
    assert crossed >= wraps_needed, f"only {crossed} wraps in {end - start:.0f} s ({rate:.0f} packets/s)"

    # Frames delivered in each window after each wrap (and before the first, for comparison).
    first_frame = frame_times[0] if frame_times else end
    first_wrap = _wrap_time(samples, 1)
    before = sum(t < first_wrap for t in frame_times)
    report(f"before the first wrap (+{first_wrap - start:.1f} s): {before} frames")
    assert before >= FPS, "the client was not decoding for a second before the first wrap"
    for wrap in range(1, crossed + 1):
        at = max(_wrap_time(samples, wrap), first_frame)
        window_end = min(at + WINDOW_S, end)
        got = sum(at <= t < window_end for t in frame_times)
        expected = (window_end - at) * FPS
        report(f"wrap {wrap} at +{at - start:.1f} s: {got} frames in the next {window_end - at:.1f} s ({got / expected:.0%})")
        assert got >= 0.9 * expected, f"after wrap {wrap}: {got} of {expected:.0f} frames"
    total = len(frame_times)
    expected_total = (end - first_frame) * FPS
    report(f"wrap test: {total} frames decoded of {expected_total:.0f} expected ({total / expected_total:.0%})")
    assert total >= 0.9 * expected_total

    # Audio: the sequence started 400 packets (2 s at 5 ms) below its wrap; it must stay audible
    # after it.
    audio_wrap = start + (65536 - AUDIO_START) * 0.005
    after = [rms for t, rms in audio if t > audio_wrap + 0.5]
    report(f"audio after its wrap: {len(after)} chunks, mean RMS {np.mean(after) if after else 0:.3f}")
    assert len(after) > 0.5 * (end - audio_wrap - 0.5) * 200, "audio stopped after its sequence wrapped"
    assert np.mean(after) > 0.05, "audio is silent after its sequence wrapped"


def _wrap_time(samples: list[tuple[float, int]], wrap: int) -> float:
    """When the video packet counter crossed `wrap` × 65 536, interpolated between samples."""
    target = wrap * 65536 - VIDEO_START
    previous = None
    for t, sent in samples:
        if sent >= target:
            if previous is None or previous[1] == sent:
                return t
            t0, s0 = previous
            return t0 + (t - t0) * (target - s0) / (sent - s0)
        previous = (t, sent)
    return float("inf")
