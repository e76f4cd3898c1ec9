"""The test audio server lives in :mod:`realtime.tools.jackserver` (the soak run and benchmarks use it too)."""

from realtime.tools.jackserver import PERIOD, RATE, JackServer

__all__ = ["JackServer", "PERIOD", "RATE"]
