"""A real, hardware-free audio server: JACK's dummy backend, real-time paced (tests, soak, benchmarks).

PortAudio reaches it through its JACK host API. Each server gets its own name (``JACK_DEFAULT_SERVER``),
so tests never touch a user's JACK, and PortAudio is re-initialised after start and stop so it sees
(or forgets) the server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

RATE = 48_000
PERIOD = 128
#: Whether this process has started a server (its libjack then holds JACK's registry mapped).
_started_here = False


class JackServer:
    """``jackd -d dummy`` started and stopped by tests."""

    def __init__(self, name: str, rate: int = RATE, period: int = PERIOD, log_dir: Path | None = None) -> None:
        self.name, self.rate, self.period = name, rate, period
        self.log = (log_dir or Path("/tmp")) / f"jackd-{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> JackServer:
        if shutil.which("jackd") is None:
            raise RuntimeError("jackd is not installed; run 'make setup' (installs jackd2)")
        global _started_here
        os.environ["JACK_DEFAULT_SERVER"] = self.name
        os.environ["JACK_NO_AUDIO_RESERVATION"] = "1"
        os.environ.setdefault("JACK_NO_START_SERVER", "1")
        if not _started_here:
            # Slots of servers killed earlier (by other processes) would pile up until jackd refuses to
            # start. Safe only before this process's libjack has attached the registry, i.e. before its
            # first server: wiping it later hides every new server from PortAudio here.
            clean_stale_registry()
        if not self._launch():
            # jackd refuses (its registry is full): the last resort, even though it is no longer safe here.
            if "Too many servers" in self.log.read_text() and clean_stale_registry():
                self._launch()
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited: {self.log.read_text()[-500:]}")
        # jack_wait can report "running" a moment before the server accepts PortAudio's client; re-scan
        # until PortAudio sees the JACK host API.
        import sounddevice as sd

        from realtime.io.audio import rescan

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            rescan()
            if any(api["name"].startswith("JACK") and api["devices"] for api in sd.query_hostapis()):
                _started_here = True
                return self
            time.sleep(0.2)
        raise RuntimeError("PortAudio does not see the JACK server")

    def _launch(self) -> bool:
        """Start jackd and wait until it runs; False when it exited (see the log)."""
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(["jackd", "-n", self.name, "-d", "dummy",
                                          "-r", str(self.rate), "-p", str(self.period)],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            r = subprocess.run(["jack_wait", "-c", "-s", self.name], capture_output=True, text=True)
            if "running" in r.stdout:
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.1)
        stop_process(self.proc)
        raise RuntimeError("jackd did not come up within 15 s")

    def stop(self) -> None:
        """Stop the server. PortAudio is shut down first: its JACK host API aborts the process when it
        is terminated after the server has gone, so it must let go of the server while it is alive."""
        import sounddevice as sd

        sd._terminate()
        stop_process(self.proc)
        self.proc = None
        sd._initialize()


def stop_process(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """Terminate a child process, killing it if it does not exit within ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def clean_stale_registry() -> bool:
    """Remove JACK's shared-memory registry when no jackd runs at all; returns whether it did.

    A server that was killed (as the fault tests kill one on purpose) never unregisters; its slot stays
    taken while its PID lives on in another process, and after eight such slots jackd refuses to start
    ("Too many servers already active"). With no server running, the registry holds nothing of value.
    """
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "jackd":
                return False
        except OSError:  # the process ended while we looked
            continue
    shm = Path("/dev/shm")
    for entry in list(shm.glob("jack-*")) + list(shm.glob("jack_sem.*")) + list(shm.glob("jack_*_0_0")):
        try:
            entry.unlink()
        except OSError:
            pass
    return True
