"""Engine-side diffusion noise: seeded, first-order autoregressive, unit variance.

The engine, not the model, draws the noise ``eps`` that enters ``z = sqrt(1 - a) * mu + sqrt(a) * eps``,
so that (1) output is reproducible from a seed, bit for bit, offline and live, and (2) the noise can be
smoothed over time: ``eps[t] = rho * eps[t-1] + sqrt(1 - rho^2) * w[t]`` keeps unit variance for any
``rho``, so the amount knob means the same thing at every noise rate. ``rho = exp(-2 pi rate / frame_rate)``:
a low rate makes the effect drift slowly, a high one makes it shimmer.

The generator is xoshiro256** + Box-Muller in numba over a state array owned by the caller, so it is
allocation-free, thread-agnostic and identical in every process.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from realtime import jitcache  # noqa: F401 - stamps this module's cached kernels (before they are decorated)


@numba.njit(cache=True, nogil=True)
def _rotl(x: np.uint64, k: int) -> np.uint64:
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@numba.njit(cache=True, nogil=True)
def _next_u64(s: np.ndarray) -> np.uint64:
    result = _rotl(s[1] * np.uint64(5), 7) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@numba.njit(cache=True, nogil=True)
def _uniform(s: np.ndarray) -> float:
    # 53 random bits -> (0, 1]; never 0 so log() below is finite.
    return ((_next_u64(s) >> np.uint64(11)) + 1) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True, nogil=True)
def fill_normal(s: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` (1-D float) with standard normal draws from generator state ``s``."""
    n = out.shape[0]
    i = 0
    while i < n:
        r = math.sqrt(-2.0 * math.log(_uniform(s)))
        th = 2.0 * math.pi * _uniform(s)
        out[i] = r * math.cos(th)
        if i + 1 < n:
            out[i + 1] = r * math.sin(th)
        i += 2


@numba.njit(cache=True, nogil=True)
def ar1_frames(s: np.ndarray, eps: np.ndarray, rho: float, white: np.ndarray, out: np.ndarray) -> None:
    """Advance the AR(1) noise ``eps`` (latent,) by one step per row of ``out`` (frames, latent)."""
    g = math.sqrt(max(1.0 - rho * rho, 0.0))
    for f in range(out.shape[0]):
        fill_normal(s, white)
        for j in range(eps.shape[0]):
            eps[j] = rho * eps[j] + g * white[j]
            out[f, j] = eps[j]


def seed_state(seed: int) -> np.ndarray:
    """xoshiro256** state from an integer seed (splitmix64 expansion, as its authors recommend)."""
    x = seed & 0xFFFFFFFFFFFFFFFF
    state = np.empty(4, np.uint64)
    for i in range(4):
        x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        state[i] = z ^ (z >> 31)
    return state


def rho_for_rate(rate_hz: float, frame_rate: float) -> float:
    """AR(1) coefficient for a noise rate in Hz at ``frame_rate`` frames per second."""
    return math.exp(-2.0 * math.pi * max(rate_hz, 0.0) / frame_rate)


class NoiseSource:
    """Per-slot AR(1) latent noise with its own seeded generator (allocation-free ``draw``)."""

    def __init__(self, latent_dim: int, seed: int, max_frames: int) -> None:
        self.latent_dim = latent_dim
        self.seed = seed
        self.out = np.zeros((max_frames, latent_dim), np.float32)
        # Generator state, public for the engine's fused kernel (blockdsp.prepare_slot).
        self.white = np.zeros(latent_dim, np.float64)
        self.eps = np.zeros(latent_dim, np.float64)
        self.state = np.zeros(4, np.uint64)
        self.reset()

    def reset(self) -> None:
        """Back to the seeded start; the first eps is a fresh unit-variance draw."""
        self.state[:] = seed_state(self.seed)
        fill_normal(self.state, self.eps)

    def draw(self, n: int, rho: float) -> np.ndarray:
        """Advance ``n`` frames; returns a view ``(n, latent_dim)`` of a preallocated array."""
        view = self.out[:n]
        ar1_frames(self.state, self.eps, rho, self.white, view)
        return view
