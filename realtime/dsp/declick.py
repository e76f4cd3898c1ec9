"""Causal de-click: detect short impulses (vinyl clicks, crackle) by linear prediction and replace them.

Each sample is predicted from the previous :data:`ORDER` output samples with an LPC model refitted every block
(autocorrelation of the last :data:`WINDOW` output samples, Levinson-Durbin). A sample whose prediction error
exceeds :data:`THRESHOLD` times the running mean error is a click: it is replaced by the prediction, for at
most :data:`MAX_RUN` samples in a row (longer "clicks" are real onsets: the detector then rests for
:data:`REST` samples). Replacing with the prediction interpolates the waveform across the click without any
look-ahead, so the stage adds no latency. One allocation-free numba kernel per block.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from realtime import jitcache  # noqa: F401 - stamps this module's cached kernels (before they are decorated)

ORDER = 24
WINDOW = 512
THRESHOLD = 20.0
MAX_RUN = 48
REST = 480
#: Running mean of |prediction error| (time constant, s).
ERR_TAU = 0.01
# state layout (float64): [0] unused, [1] running error, [2] current run, [3] rest counter,
# [4] clicks repaired (count of runs), [5] samples seen
_POS, _ERR, _RUN, _REST, _CLICKS, _SEEN = range(6)


@numba.njit(cache=True, nogil=True)
def _fit_lpc(hist: np.ndarray, n: int, r: np.ndarray, a: np.ndarray, tmp: np.ndarray) -> None:
    """LPC coefficients ``a[1:]`` (prediction ``sum a[k] y[n-k]``) of ``hist[:n]``."""
    p = a.shape[0] - 1
    for lag in range(p + 1):
        s = 0.0
        for i in range(lag, n):
            s += hist[i] * hist[i - lag]
        r[lag] = s
    for k in range(p + 1):
        a[k] = 0.0
    if r[0] <= 1e-12:
        return
    r[0] *= 1.0 + 1e-4  # white-noise correction: keeps the recursion stable
    err = r[0]
    for i in range(1, p + 1):
        acc = r[i]
        for j in range(1, i):
            acc -= a[j] * r[i - j]
        k = acc / err
        for j in range(1, i):
            tmp[j] = a[j] - k * a[i - j]
        for j in range(1, i):
            a[j] = tmp[j]
        a[i] = k
        err *= 1.0 - k * k
        if err <= 1e-12:
            break


@numba.njit(cache=True, nogil=True)
def declick_kernel(x: np.ndarray, out: np.ndarray, n: int, st: np.ndarray, hist: np.ndarray, a: np.ndarray,
                   r: np.ndarray, tmp: np.ndarray, sr: float, enabled: bool) -> None:
    """Process ``x[:n]`` into ``out[:n]`` (may alias). ``hist[:WINDOW]`` holds the last output samples in
    time order; ``hist`` has room for WINDOW + the largest block."""
    size = WINDOW
    p = a.shape[0] - 1
    _fit_lpc(hist, size, r, a, tmp)
    beta = math.exp(-1.0 / (ERR_TAU * sr))
    err_avg = st[_ERR]
    run = int(st[_RUN])
    rest = int(st[_REST])
    for i in range(n):
        xi = float(x[i])
        pred = 0.0
        j = size + i
        for k in range(1, p + 1):
            pred += a[k] * hist[j - k]
        e = abs(xi - pred)
        y = xi
        warm = st[_SEEN] > size
        if enabled and warm and rest == 0 and e > THRESHOLD * err_avg + 1e-7:
            if run < MAX_RUN:
                if run == 0:
                    st[_CLICKS] += 1
                y = pred
                run += 1
            else:  # too long for a click: an onset; accept it and rest
                run = 0
                rest = REST
        else:
            run = 0
            if rest > 0:
                rest -= 1
        if y == xi:
            err_avg = beta * err_avg + (1.0 - beta) * e
        hist[j] = y
        st[_SEEN] += 1.0
        out[i] = y
    for i in range(size):  # keep the newest WINDOW samples at the front
        hist[i] = hist[i + n]
    st[_ERR] = err_avg
    st[_RUN] = run
    st[_REST] = rest


class Declick:
    """Streaming de-click with preallocated state (see the module docstring)."""

    def __init__(self, sample_rate: int, max_block: int = 8192) -> None:
        self.sr = float(sample_rate)
        self.state = np.zeros(6, np.float64)
        self.hist = np.zeros(WINDOW + max_block, np.float64)
        self.a = np.zeros(ORDER + 1, np.float64)
        self.r = np.zeros(ORDER + 1, np.float64)
        self.tmp = np.zeros(ORDER + 1, np.float64)

    def reset(self) -> None:
        self.state[:] = 0.0
        self.hist[:] = 0.0

    def process(self, x: np.ndarray, out: np.ndarray, enabled: bool = True) -> None:
        """Write the de-clicked ``x`` (float32 1-D) into ``out`` (same length; may be ``x`` itself)."""
        declick_kernel(x, out, x.shape[0], self.state, self.hist, self.a, self.r, self.tmp, self.sr, enabled)

    @property
    def clicks(self) -> int:
        """Clicks repaired since the last reset."""
        return int(self.state[_CLICKS])

    def warm_up(self) -> None:
        buf = np.zeros(128, np.float32)
        self.process(buf, buf)
        self.reset()
