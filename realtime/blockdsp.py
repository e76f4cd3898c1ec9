"""Allocation-free per-block kernels of the engine: input sanitising, gate levels, mix, limiter.

Each runs in the audio callback, so each is ``njit(cache=True, nogil=True)`` over preallocated arrays
and keeps its smoothing state in a small float64 array owned by the engine.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: Input samples are clamped to this magnitude (+24 dBFS): a sane ceiling for "huge" garbage input.
INPUT_CLAMP = 16.0
DENORMAL = 1e-30


@numba.njit(cache=True, nogil=True)
def smoothing_coef(seconds: float, rate: float) -> float:
    """One-pole coefficient reaching ~63 % of a step after ``seconds`` at ``rate`` updates per second."""
    return 1.0 - math.exp(-1.0 / max(seconds * rate, 1e-9))


@numba.njit(cache=True, nogil=True)
def _approach(cur: float, target: float, k: float) -> float:
    cur += k * (target - cur)
    # Snap once within rounding of the target, so e.g. mix 1 ends up exactly 1 (bit-exact paths).
    if abs(target - cur) < 1e-9:
        cur = target
    return cur


@numba.njit(cache=True, nogil=True)
def sanitize_input(x: np.ndarray, out: np.ndarray, state: np.ndarray, gain_target: float,
                   k: float) -> tuple:
    """NaN/Inf -> 0, denormals -> 0, clamp to +-INPUT_CLAMP, smoothed input gain ``state[0]``.

    Returns ``(n_bad, peak, sum_of_squares)`` of the sanitised, gained block.
    """
    g = state[0]
    bad = 0
    peak = 0.0
    ss = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        if not math.isfinite(v):
            v = 0.0
            bad += 1
        elif abs(v) < DENORMAL:
            v = 0.0
        elif v > INPUT_CLAMP:
            v = INPUT_CLAMP
        elif v < -INPUT_CLAMP:
            v = -INPUT_CLAMP
        g = _approach(g, gain_target, k)
        v *= g
        out[i] = v
        a = abs(v)
        if a > peak:
            peak = a
        ss += v * v
    state[0] = g
    return bad, peak, ss


@numba.njit(cache=True, nogil=True)
def frame_mean_square(spec: np.ndarray, norm: float, out: np.ndarray) -> None:
    """Time-domain mean square of each analysed frame, from its spectrum (Parseval), into ``out``."""
    nb = spec.shape[1]
    for f in range(spec.shape[0]):
        e = 0.0
        for k in range(nb):
            c = spec[f, k]
            p = c.real * c.real + c.imag * c.imag
            e += p if (k == 0 or k == nb - 1) else 2.0 * p
        out[f] = e * norm


@numba.njit(cache=True, nogil=True)
def all_finite(a: np.ndarray) -> bool:
    """True when every element of a 2-D array is finite (no temporary arrays, unlike np.isfinite)."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            if not math.isfinite(a[i, j]):
                return False
    return True


@numba.njit(cache=True, nogil=True)
def mix_limit(dry: np.ndarray, wet: np.ndarray, out: np.ndarray, state: np.ndarray, mix_target: float,
              gain_target: float, k: float, ceiling: float, release: float) -> tuple:
    """Dry/wet mix, output gain (both smoothed per sample), then an instant-attack peak limiter.

    ``state`` = [mix, gain, limiter envelope]. The limiter's gain is computed from the very sample it
    scales, so ``|out| <= ceiling`` holds for every sample; non-finite values become 0.
    Returns ``(peak, sum_of_squares, min_limiter_gain)``.
    """
    m = state[0]
    g = state[1]
    env = state[2]
    peak = 0.0
    ss = 0.0
    min_gain = 1.0
    for i in range(out.shape[0]):
        m = _approach(m, mix_target, k)
        g = _approach(g, gain_target, k)
        w = wet[i]
        if not math.isfinite(w):
            w = 0.0
        y = ((1.0 - m) * dry[i] + m * w) * g
        if not math.isfinite(y):
            y = 0.0
        a = abs(y)
        env = a if a > env else env * release
        lg = 1.0
        if env > ceiling:
            lg = ceiling / env
            if lg < min_gain:
                min_gain = lg
        y *= lg
        if y > ceiling:  # float32 rounding guard
            y = ceiling
        elif y < -ceiling:
            y = -ceiling
        out[i] = y
        a = abs(y)
        if a > peak:
            peak = a
        ss += y * y
    state[0] = m
    state[1] = g
    state[2] = env if env > 1e-30 else 0.0
    return peak, ss, min_gain


@numba.njit(cache=True, nogil=True)
def gate_weights(mean_square: np.ndarray, threshold: float, state: np.ndarray, out: np.ndarray) -> float:
    """Per-frame wet weight of the noise gate: opens within one frame, closes over ~6 frames (~16 ms at
    hop 128) so decays are not chopped. ``state[0]`` carries the weight between blocks; returns the last."""
    g = state[0]
    for f in range(out.shape[0]):
        target = 1.0 if mean_square[f] >= threshold else 0.0
        g = target if target > g else g + 0.15 * (target - g)
        out[f] = g
    state[0] = g
    return g


@numba.njit(cache=True, nogil=True)
def ramp_column(out: np.ndarray, start: float, target: float, k: float) -> float:
    """Fill ``out[:, 0]`` with a one-pole approach from ``start`` to ``target``; returns the last value."""
    a = start
    for f in range(out.shape[0]):
        a = _approach(a, target, k)
        out[f, 0] = a
    return a
