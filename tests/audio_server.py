"""The test audio server lives in :mod:`realtime.jackserver` (the soak run and benchmarks use it too)."""

from realtime.jackserver import PERIOD, RATE, JackServer

__all__ = ["JackServer", "PERIOD", "RATE"]
