"""THE feature definition: the natural log of the STFT magnitude, per frame.

Training computes its inputs with :func:`log_magnitude`, the engine with :func:`log_magnitude_into`
(the same formula, allocation-free, for the audio callback). Normalisation (frame gain and per-bin
statistics) lives inside each exported model, so the host only ever deals in raw log-magnitudes.
"""

from __future__ import annotations

import numba
import numpy as np

#: Floor added to the magnitude before the log. exp(feature) - EPS recovers the magnitude.
EPS = 1e-5
#: Name written into model metadata; a model declaring any other feature type is rejected.
FEATURE_TYPE = "log_magnitude_eps1e-05"


def log_magnitude(spec: np.ndarray) -> np.ndarray:
    """Log-magnitude features of complex STFT frames.

    Parameters
    ----------
    spec : ndarray, complex, shape (..., n_bins)

    Returns
    -------
    ndarray, float32, same shape: ``log(|spec| + EPS)``.
    """
    return np.log(np.abs(spec) + EPS).astype(np.float32)


_EPS32 = np.float32(EPS)


@numba.njit(cache=True, nogil=True, fastmath=True)
def log_magnitude_into(spec: np.ndarray, out: np.ndarray) -> None:
    """Write ``log(|spec| + EPS)`` of ``spec[f, k]`` into ``out[f, k]`` (float32 math, as numpy does for
    complex64 input), allocation-free."""
    for f in range(spec.shape[0]):
        for k in range(spec.shape[1]):
            c = spec[f, k]
            out[f, k] = np.log(np.sqrt(c.real * c.real + c.imag * c.imag) + _EPS32)


def magnitude_from_features(features: np.ndarray) -> np.ndarray:
    """Inverse of :func:`log_magnitude` on the magnitude: ``max(exp(f) - EPS, 0)``."""
    return np.maximum(np.exp(features.astype(np.float64)) - EPS, 0.0).astype(np.float32)


@numba.njit(cache=True, nogil=True, fastmath=True)
def apply_features_into(spec: np.ndarray, in_feat: np.ndarray, out_feat: np.ndarray, wet: np.ndarray,
                        out: np.ndarray) -> None:
    """Give ``spec`` the magnitudes encoded by ``out_feat`` while keeping its phase.

    ``wet[f]`` in [0, 1] blends per frame between the input magnitude (0) and the model's (1), in the
    log domain, which is how the noise gate and per-frame fallbacks act without a discontinuity.
    A bin whose input magnitude is zero stays zero (it has no phase to keep). Non-finite model values
    fall back to the input bin (``fastmath`` is safe: the check is on the integer exponent bits).
    """
    for f in range(spec.shape[0]):
        w = np.float32(wet[f])
        for k in range(spec.shape[1]):
            c = spec[f, k]
            mag_in = np.sqrt(c.real * c.real + c.imag * c.imag)
            if mag_in <= np.float32(1e-20):
                out[f, k] = 0.0
                continue
            o = out_feat[f, k]
            if not _finite32(o):
                o = in_feat[f, k]
            target = (np.float32(1.0) - w) * in_feat[f, k] + w * o
            mag = np.exp(min(target, np.float32(30.0))) - _EPS32
            if mag < 0.0:
                mag = np.float32(0.0)
            out[f, k] = c * (mag / mag_in)


@numba.njit(cache=True, nogil=True)
def _finite32(x: np.float32) -> bool:
    # Exponent bits all ones means Inf or NaN; done on the bits so fastmath cannot optimise it away.
    return (np.int32(np.float32(x).view(np.int32)) & np.int32(0x7F800000)) != np.int32(0x7F800000)
