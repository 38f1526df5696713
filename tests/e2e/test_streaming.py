"""Streaming with the real client library (moonlight-common-c through moonlight-python):
launch, RTSP, the encrypted control stream, video with FEC and encrypted audio
(PROTOCOL.md §1.6-§5)."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from moonlight_python import MoonlightClient
from moonlight_python.exceptions import MoonlightError

from conftest import report
from test_pairing import pair

WIDTH, HEIGHT, FPS = 1280, 720, 60


@dataclass
class StreamResult:
    frames: int
    first_frame: int
    last_frame: int
    mean_brightness: float
    audio_chunks: int
    audio_rms: float

    @property
    def expected(self) -> int:
        return int(self.seconds * FPS)

    seconds: float = 0.0

    def summary(self, label: str) -> str:
        return (
            f"{label}: {self.frames} frames decoded in {self.seconds:.1f} s "
            f"({self.frames / max(self.expected, 1):.0%} of {self.expected} expected at {FPS} fps; "
            f"frame numbers {self.first_frame}..{self.last_frame}), mean brightness {self.mean_brightness:.1f}, "
            f"{self.audio_chunks} audio chunks, audio RMS {self.audio_rms:.3f}"
        )


def measure(client: MoonlightClient, seconds: float) -> StreamResult:
    """Counts decoded frames and audio for `seconds` of an already started stream. Collectors run
    in threads so a stream that stops delivering cannot hang the test."""
    chunks, numbers, brightness = [], [], []
    stop = threading.Event()

    def collect_audio() -> None:
        try:
            for chunk in client.audio():
                chunks.append(chunk.data)
                if stop.is_set():
                    break
        except MoonlightError:
            pass  # the stream ended; what was collected is measured
        except AttributeError:
            # moonlight-python's iterator fails this way when the test stopped the stream under
            # it after measuring; before that it is a real error.
            if not stop.is_set():
                raise

    def collect_video() -> None:
        try:
            for frame in client.frames():
                numbers.append(frame.frame_number)
                if len(numbers) % 30 == 1:
                    brightness.append(float(frame.data.mean()))
                if stop.is_set():
                    break
        except MoonlightError:
            pass  # the stream ended (e.g. terminated for lack of frames); counted as is
        except AttributeError:
            if not stop.is_set():  # as in collect_audio
                raise

    collectors = [threading.Thread(target=f, daemon=True) for f in (collect_video, collect_audio)]
    start = time.monotonic()
    for collector in collectors:
        collector.start()
    time.sleep(seconds)
    stop.set()
    elapsed = time.monotonic() - start
    for collector in collectors:
        collector.join(timeout=2)
    samples = np.concatenate(chunks) if chunks else np.zeros(1)
    return StreamResult(
        frames=len(numbers),
        first_frame=min(numbers, default=0),
        last_frame=max(numbers, default=0),
        mean_brightness=float(np.mean(brightness)) if brightness else 0.0,
        audio_chunks=len(chunks),
        audio_rms=float(np.sqrt(np.mean(np.square(samples)))),
        seconds=elapsed,
    )


def stream(client: MoonlightClient, seconds: float, codec: str = "h264") -> StreamResult:
    client.start_stream(app="Test pattern", width=WIDTH, height=HEIGHT, fps=FPS, codec=codec, ready_timeout=20)
    try:
        return measure(client, seconds)
    finally:
        client.stop_stream()


def assert_good_stream(result: StreamResult, min_share: float = 0.9) -> None:
    assert result.frames >= min_share * result.expected, result.summary("too few frames")
    assert result.mean_brightness > 20, result.summary("picture is black")
    assert result.audio_chunks > 0.5 * result.seconds * 200, result.summary("too little audio")
    assert result.audio_rms > 0.05, result.summary("audio is silent")


@pytest.fixture
def paired(host, tmp_path):
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    return host, client


def test_h264_720p60_video_and_audio(paired):
    host, client = paired
    result = stream(client, 10)
    report(result.summary("H.264 720p60"))
    assert_good_stream(result)


def test_hevc_720p60_video_and_audio(paired):
    host, client = paired
    result = stream(client, 10, codec="hevc")
    report(result.summary("HEVC 720p60"))
    # x265 shares the 2 cores with the client's decoder; on a quiet machine it keeps 60 fps.
    assert_good_stream(result)


def test_resume_after_disconnect_and_relaunch_after_cancel(paired):
    host, client = paired
    events = host.event_reader()
    first = stream(client, 3)
    assert_good_stream(first)
    session = events.wait_for("session_launched")["session"]
    events.wait_for("session_paused", session=session)
    # stop_stream() disconnected the client; the app still runs, so this resumes it.
    assert client._http.parse_server_info(client._http.get_server_info(use_https=True)).current_game != 0
    resumed = stream(client, 3)
    events.wait_for("session_resumed", session=session)
    assert_good_stream(resumed)

    client.quit_app()
    assert events.wait_for("session_ended", session=session)["reason"] == "cancelled"
    info = client._http.parse_server_info(client._http.get_server_info(use_https=True))
    assert info.current_game == 0 and info.state.endswith("_SERVER_FREE")
    mark = events.position()
    relaunched = stream(client, 3)
    assert events.wait_for("session_launched", start=mark)["session"] != session
    assert_good_stream(relaunched)
    events.close()


@pytest.mark.parametrize("fec_percentage", [20, 0])
def test_fec_under_5_percent_packet_loss(make_host, tmp_path, fec_percentage):
    # A picture in full motion, so frames span many packets and a lost packet hits most frames.
    host = make_host(
        f"[streaming]\nfec_percentage = {fec_percentage}\n[debug]\ndrop_video_packets_percent = 5\n"
        '[[apps]]\ntitle = "Test pattern"\ncompositor = false\n[apps.video]\n'
        'source = "videotestsrc is-live=true pattern=smpte horizontal-speed=8"\n'
    ).start()
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    try:
        result = stream(client, 6)
    except MoonlightError as error:
        # Without FEC the client may not even see a first intact picture.
        assert fec_percentage == 0, error
        report(f"FEC off, 5% loss: the stream did not start ({error})")
        return
    report(result.summary(f"FEC {fec_percentage}%, 5% loss"))
    reported = host.sessions()[0]
    report(
        f"FEC {fec_percentage}%: the client reported {reported['client_frames_recovered']} frames recovered, "
        f"{reported['client_frames_lost']} lost, {reported['client_packets_missing']} data packets missing, "
        f"{reported['idr_requests']} key-frame requests"
    )
    if fec_percentage:
        assert result.frames >= 0.9 * result.expected, result.summary("FEC did not recover")
        assert reported["client_frames_recovered"] > 0, reported
    else:
        assert result.frames < 0.75 * result.expected, result.summary("loss had no effect without FEC")
        assert reported["client_frames_lost"] > 0, reported


def test_broken_pipeline_ends_the_stream_cleanly(make_host, tmp_path):
    config = (
        '[[apps]]\ntitle = "Broken"\ncompositor = false\n[apps.video]\nsource = "nosuchelement is-live=true"\n'
    )
    host = make_host(config).start()
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    events = host.event_reader()
    started = time.monotonic()
    with pytest.raises(MoonlightError):
        client.start_stream(app="Broken", width=WIDTH, height=HEIGHT, fps=FPS, ready_timeout=20)
    assert time.monotonic() - started < 15, "the client hung instead of failing"
    failed = events.wait_for("stream_failed")
    assert re.search(r'no element "nosuchelement".*app "Broken"', failed["message"]), failed
    events.close()


def test_encrypted_video(make_host, tmp_path):
    """With video encryption offered, the client (which opts into everything) gets AES-GCM video."""
    host = make_host("[streaming]\nvideo_encryption = true\n").start()
    client = MoonlightClient(config_dir=tmp_path / "client")
    pair(host, client)
    events = host.event_reader()
    result = stream(client, 4)
    report(result.summary("H.264 720p60, encrypted video"))
    streaming = events.wait_for("session_streaming")
    assert streaming["video_encrypted"] and streaming["audio_encrypted"], streaming
    events.close()
    assert_good_stream(result)
