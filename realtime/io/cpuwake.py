"""Keep the CPUs out of deep idle states while a live stream runs (Linux PM QoS).

Between two audio callbacks the audio thread sleeps for most of the block period; an idle CPU then drops
into a power-saving state, and the next callback pays for the wake-up and for cold caches and branch
predictors. On real machines with deep C-states the wake-up alone can cost 100 us or more, and holding the
CPUs awake is the standard pro-audio remedy (``cpu_dma_latency``, as JACK tuning guides advise). On this
project's 2-core VM (`audio-diffusion bench`, section 6, block 128) the same engine block costs 55 / 98 us
(p50 / p99) back to back but 204-348 / 448-1240 us when each block follows a sleep of one period; held
awake, 119-141 / 360-1154 us in the same runs, and the live callback p99 moved within its run-to-run noise
(10-17 % of the period either way). Measure on your own machine before relying on it.

The request lasts while the file descriptor is open and is dropped by the kernel when the process exits,
so a crash cannot leave the machine held awake. It costs power: use it for performances, not by default.
"""

from __future__ import annotations

import os
import struct

from realtime.errors import CpuWakeError  # noqa: F401 - raised here, re-exported

PM_QOS_PATH = "/dev/cpu_dma_latency"


class CpuAwake:
    """Hold a PM QoS request of ``max_latency_us`` (0: never enter an idle state that takes time to leave).

    Use as a context manager or call :meth:`close`. Raises :class:`CpuWakeError` when the request is not
    possible (no such device, or no permission: it needs root or write access to ``/dev/cpu_dma_latency``).
    """

    def __init__(self, max_latency_us: int = 0, path: str = PM_QOS_PATH) -> None:
        self.path = path
        try:
            self._fd: int | None = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            raise CpuWakeError(f"{path} does not exist (not Linux, or no PM QoS): cannot hold the CPUs awake") \
                from None
        except PermissionError:
            raise CpuWakeError(f"no permission to write {path}: run as root, or give your user write access "
                               "(e.g. a udev rule for the audio group), or leave out --keep-cpu-awake") from None
        os.write(self._fd, struct.pack("=i", max_latency_us))

    @property
    def active(self) -> bool:
        """Whether the request is still held."""
        return self._fd is not None

    def close(self) -> None:
        """Drop the request (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> CpuAwake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def current_request_us(path: str = PM_QOS_PATH) -> int | None:
    """The system's effective ``cpu_dma_latency`` limit in us (the smallest held request), or ``None``
    when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return struct.unpack("=i", f.read(4))[0]
    except OSError:
        return None


def available(path: str = PM_QOS_PATH) -> bool:
    """Whether this process may hold the request (it tries: permissions alone do not tell, e.g. in a
    container whose device policy refuses the file even to root)."""
    try:
        CpuAwake(path=path).close()
    except CpuWakeError:
        return False
    return True


def add_option(parser) -> None:
    """The ``--keep-cpu-awake`` option of the live commands."""
    parser.add_argument("--keep-cpu-awake", action="store_true",
                        help=f"hold the CPUs out of deep idle while running ({PM_QOS_PATH} = 0): steadier "
                             "callback times, more power; needs root or write access to that file")


def hold_if(wanted: bool) -> CpuAwake | None:
    """A held :class:`CpuAwake` when ``wanted`` (raises :class:`CpuWakeError`), else ``None``."""
    return CpuAwake() if wanted else None
