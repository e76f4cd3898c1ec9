"""Analysis/synthesis window pairs for the STFT defined in :mod:`realtime.config`.

Both modes are perfect-reconstruction pairs: ``sum_k analysis[n + k*hop] * synthesis[n + k*hop] == 1``
for every ``n`` (overlap-add of the product at ``hop`` is exactly one), so an identity processor
returns its input delayed by the latency documented in :class:`realtime.dsp.stft.StreamingStft`.
"""

from __future__ import annotations

import numpy as np

from realtime.config import StftConfig


def periodic_hann(length: int) -> np.ndarray:
    """Periodic Hann window ``0.5 - 0.5 cos(2 pi n / length)``, float64.

    Periodic (not symmetric) because it is exactly COLA: shifted copies at ``length / 2`` sum to 1.
    """
    n = np.arange(length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)


def _sqrt_hann(cfg: StftConfig) -> tuple[np.ndarray, np.ndarray]:
    # Hann at hop overlaps n_fft / (2 hop) times, so the product must be scaled by 2 hop / n_fft;
    # split that evenly so analysis and synthesis are the same window.
    w = np.sqrt(periodic_hann(cfg.n_fft) * (2.0 * cfg.hop / cfg.n_fft))
    return w, w.copy()


def _low_latency(cfg: StftConfig) -> tuple[np.ndarray, np.ndarray]:
    # Mauler & Martin (2007): a long analysis window (slow sqrt-Hann rise over n_fft - hop samples,
    # fast sqrt-Hann fall over the last hop) and a synthesis window living only in the last 2 hop
    # samples, chosen so that analysis * synthesis there is a periodic Hann of length 2 hop (COLA at hop).
    n, m = cfg.n_fft, cfg.hop
    long_rise = np.sqrt(periodic_hann(2 * (n - m))[: n - m])
    short = periodic_hann(2 * m)  # product target over the last 2 hop samples
    analysis = np.empty(n)
    analysis[: n - m] = long_rise
    analysis[n - m :] = np.sqrt(short[m:])
    synthesis = np.zeros(n)
    # rising half: divide the target by the (non-zero, since n_fft >= 4 hop) analysis window there
    synthesis[n - 2 * m : n - m] = short[:m] / analysis[n - 2 * m : n - m]
    synthesis[n - m :] = np.sqrt(short[m:])
    return analysis, synthesis


def make_windows(cfg: StftConfig) -> tuple[np.ndarray, np.ndarray]:
    """Analysis and synthesis windows for ``cfg``.

    Parameters
    ----------
    cfg : StftConfig

    Returns
    -------
    analysis, synthesis : ndarray, float32, shape (n_fft,)
        Time order (index 0 multiplies the oldest sample of a frame). The synthesis window is zero
        outside its last ``cfg.synthesis_len`` samples.
    """
    if cfg.window == "sqrt_hann":
        a, s = _sqrt_hann(cfg)
    elif cfg.window == "low_latency":
        a, s = _low_latency(cfg)
    else:  # StftConfig validates, but keep the failure explicit
        raise ValueError(f"unknown window mode {cfg.window!r}")
    return a.astype(np.float32), s.astype(np.float32)
