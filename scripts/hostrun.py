"""A `hati serve` process and a paired moonlight-python client, for the scripts that measure
Hati outside `make test` (soak.py, latency_bench.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from moonlight_python import MoonlightClient
from moonlight_python.discovery import connect_to_server
from moonlight_python.exceptions import MoonlightError

ROOT = Path(__file__).resolve().parents[1]
# The e2e harness's free-port helper: one definition of which ports a host needs.
sys.path.insert(0, str(ROOT / "tests/e2e"))
from conftest import free_http_port  # noqa: E402


class RunningHost:
    """`hati serve` on loopback with `extra_config` before its [network] table; log in work/."""

    def __init__(self, hati: str, work: Path, extra_config: str = "", rust_log: str = "info,tokio_enet=warn"):
        work.mkdir(parents=True, exist_ok=True)
        self.hati = hati
        self.work = work
        self.port = free_http_port()
        self.state = work / "state"
        self.log_path = work / "hati.log"
        config = work / "config.toml"
        config.write_text(extra_config + f'\n[network]\nbind = "127.0.0.1"\nhttp_port = {self.port}\nmdns = false\n')
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [hati, "--state-dir", str(self.state), "serve", "--config", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, RUST_LOG=rust_log, NO_COLOR="1"),
        )
        deadline = time.monotonic() + 30
        while "hati is running" not in self.log_path.read_text():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()  # a host that never said it runs must not outlive the script
                raise RuntimeError(f"hati did not start; see {self.log_path}")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text()

    def pair(self, client: MoonlightClient, pin: str = "4711") -> None:
        """Pairs `client`, entering the PIN with `hati pair` as the host's owner would."""
        server = connect_to_server("127.0.0.1", client._identity, self.port)
        pairing = threading.Thread(target=client.pair, args=(server,), kwargs={"pin": pin}, daemon=True)
        pairing.start()
        for _ in range(100):
            result = subprocess.run(
                [self.hati, "--state-dir", str(self.state), "pair", pin], capture_output=True, text=True
            )
            if result.returncode == 0:
                break
            time.sleep(0.2)
        pairing.join(timeout=30)

    def select(self, client: MoonlightClient) -> None:
        """Makes this host the one `client` streams from (it was paired before)."""
        client.connect("127.0.0.1", port=self.port)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


class FrameCounter:
    """Counts, on a thread, the frames a streaming `client` decodes (read `frames`)."""

    def __init__(self, client: MoonlightClient):
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._count, args=(client,), daemon=True)
        self._thread.start()

    def _count(self, client: MoonlightClient) -> None:
        try:
            for _ in client.frames():
                self.frames += 1
                if self._stop.is_set():
                    break
        except MoonlightError as error:
            print("stream ended:", error, flush=True)
        except AttributeError:
            # moonlight-python's frame iterator fails this way once stop_stream() tore the
            # stream down under it; after stop() that is the expected end.
            if not self._stop.is_set():
                raise

    def stop(self) -> None:
        """Stops counting (call before the client stops its stream)."""
        self._stop.set()

    def join(self) -> None:
        self._thread.join(timeout=5)


def cpu_steal() -> tuple[int, int]:
    """(stolen, total) CPU ticks of the whole machine since boot (/proc/stat): on a virtual
    machine, time the hypervisor gave to other guests while this one wanted to run."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return fields[7] if len(fields) > 7 else 0, sum(fields[:8])


def stolen_since(start: tuple[int, int]) -> str:
    """The share of the machine's CPU time stolen since `start` (see `cpu_steal`), for a
    benchmark to print beside its figures: a noisy neighbour makes them worse."""
    stolen, total = cpu_steal()
    share = (stolen - start[0]) / max(1, total - start[1])
    return f"{share:.0%} of the CPU time stolen by the hypervisor"
