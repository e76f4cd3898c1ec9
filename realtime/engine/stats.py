"""Lock-free engine statistics: written only by the audio callback, read by anyone.

Everything lives in float64 arrays (optionally in shared memory, for an engine in another process).
The callback is the single writer; readers take copies and may see a value one block old, never a
torn one. Readers compute percentiles from the ring of recent block times.
"""

from __future__ import annotations

import numpy as np

# Scalar slots.
CALLBACKS = 0          # blocks processed
XRUNS = 1              # PortAudio status flags seen (under/overflows reported by the driver)
MISSES = 2             # blocks that fell back to dry: deadline exceeded or model failure
MODEL_ERRORS = 3       # model raised or returned non-finite values
BAD_INPUT = 4          # blocks whose input held NaN/Inf (sanitised to 0)
LAST_BLOCK_US = 5
IN_PEAK = 6
IN_RMS = 7
OUT_PEAK = 8
OUT_RMS = 9
LIMITER_GR_DB = 10     # current limiter gain reduction (dB, >= 0)
ALGO_LATENCY = 11      # samples
DEVICE_LATENCY_IN = 12  # seconds, from the stream
DEVICE_LATENCY_OUT = 13
BLOCK_PERIOD_US = 14
FRAMES = 15            # STFT frames processed
SWAPS = 16             # model hot swaps completed
TIME_RING_POS = 17     # write position in the timing ring
SAMPLE_RATE = 18
GATE_OPEN = 19         # 1 when the last frame passed the gate
STALLS = 20            # misses from a lone late block (thread off the CPU, or on time again next block)
LIMITER_HITS = 21      # times the output reached the limiter's ceiling (an event: from below it to at it)
PEAK_GUARD_HITS = 22   # times the level stage's peak guard engaged (the wet peaked 6 dB over the input's peaks)
N_SCALARS = 23

TIME_RING = 1024       # recent per-block processing times (us)
MAX_LATENT = 64
MAX_BINS = 1025


class Stats:
    """Statistics arrays: ``scalars``, ``times`` (ring), ``latent``, ``spec_in``/``spec_out`` (dB)."""

    def __init__(self, buffer=None) -> None:
        n = self.nbytes() // 8
        flat = np.zeros(n, np.float64) if buffer is None else np.ndarray((n,), np.float64, buffer=buffer)
        o = 0
        self.scalars = flat[o:o + N_SCALARS]
        o += N_SCALARS
        self.times = flat[o:o + TIME_RING]
        o += TIME_RING
        self.latent = flat[o:o + MAX_LATENT]
        o += MAX_LATENT
        self.spec_in = flat[o:o + MAX_BINS]
        o += MAX_BINS
        self.spec_out = flat[o:o + MAX_BINS]
        self._flat = flat

    @staticmethod
    def nbytes() -> int:
        return 8 * (N_SCALARS + TIME_RING + MAX_LATENT + 2 * MAX_BINS)

    def reset(self) -> None:
        self._flat[:] = 0.0

    def record_time(self, us: float) -> None:
        """Append one block's processing time (callback side; no allocation)."""
        s = self.scalars
        pos = int(s[TIME_RING_POS])
        self.times[pos % TIME_RING] = us
        s[TIME_RING_POS] = pos + 1
        s[LAST_BLOCK_US] = us

    def recent_times(self) -> np.ndarray:
        """Copy of the recorded block times (us), oldest first, at most ``TIME_RING``."""
        pos = int(self.scalars[TIME_RING_POS])
        t = self.times.copy()
        if pos <= TIME_RING:
            return t[:pos]
        k = pos % TIME_RING
        return np.concatenate([t[k:], t[:k]])

    def summary(self) -> dict:
        """A reader's snapshot: counters, levels (dBFS), latencies (ms), timing percentiles (us, %)."""
        s = self.scalars.copy()
        t = self.recent_times()
        period = s[BLOCK_PERIOD_US] or float("nan")
        sr = s[SAMPLE_RATE] or float("nan")
        p50, p99, pmax = (np.percentile(t, [50, 99, 100]) if t.size else (np.nan, np.nan, np.nan))

        def db(x: float) -> float:
            return float(20 * np.log10(max(x, 1e-10)))

        algo_ms = 1e3 * s[ALGO_LATENCY] / sr
        return {
            "callbacks": int(s[CALLBACKS]), "xruns": int(s[XRUNS]), "misses": int(s[MISSES]),
            "stalls": int(s[STALLS]), "engine_misses": int(s[MISSES] - s[STALLS]),
            "model_errors": int(s[MODEL_ERRORS]), "bad_input_blocks": int(s[BAD_INPUT]),
            "frames": int(s[FRAMES]), "swaps": int(s[SWAPS]),
            "block_us_p50": float(p50), "block_us_p99": float(p99), "block_us_max": float(pmax),
            "cpu_share_p50": float(p50 / period), "cpu_share_p99": float(p99 / period),
            "in_peak_db": db(s[IN_PEAK]), "in_rms_db": db(s[IN_RMS]),
            "out_peak_db": db(s[OUT_PEAK]), "out_rms_db": db(s[OUT_RMS]),
            "limiter_gr_db": float(s[LIMITER_GR_DB]), "limiter_hits": int(s[LIMITER_HITS]),
            "peak_guard_hits": int(s[PEAK_GUARD_HITS]),
            "gate_open": bool(s[GATE_OPEN]),
            "algo_latency_samples": int(s[ALGO_LATENCY]), "algo_latency_ms": float(algo_ms),
            "device_latency_ms": float(1e3 * (s[DEVICE_LATENCY_IN] + s[DEVICE_LATENCY_OUT])),
            "total_latency_ms": float(algo_ms + 1e3 * (s[DEVICE_LATENCY_IN] + s[DEVICE_LATENCY_OUT])),
            "block_period_us": float(period),
        }
