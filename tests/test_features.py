"""The feature kernels (one implementation for training and the engine) against float64 references."""

import numpy as np

from realtime.dsp.features import EPS, apply_features_into, log_magnitude, log_magnitude_into


def random_spec(frames: int, bins: int = 257, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # magnitudes from far below the EPS floor up to a full-scale n_fft 512 frame
    mag = np.exp(rng.uniform(np.log(1e-9), np.log(8192.0), (frames, bins)))
    return (mag * np.exp(1j * rng.uniform(-np.pi, np.pi, (frames, bins)))).astype(np.complex64)


def test_log_magnitude_matches_float64_reference():
    spec = random_spec(400)
    ref = np.log(np.abs(spec.astype(np.complex128)) + EPS)
    got = log_magnitude(spec)
    assert got.dtype == np.float32 and got.shape == spec.shape
    assert np.abs(got - ref).max() < 2e-6  # a few float32 ulps at |log| ~ 10
    into = np.empty_like(got)
    log_magnitude_into(spec, into)
    assert np.array_equal(into, got)  # training and engine: bit-identical
    assert np.array_equal(log_magnitude(spec[3]), got[3])  # any leading shape


def test_apply_features_keeps_phase_and_sets_magnitude():
    spec = random_spec(64, seed=1)
    spec[0, :10] = 0.0  # no phase to keep: must stay exactly zero
    feat = log_magnitude(spec)
    target = (feat - 1.5).astype(np.float32)
    target[1, 5] = np.nan  # a non-finite model value falls back to the input bin
    target[2, 6] = np.inf
    target[3, 7] = 1e6  # huge: clamped, stays finite
    wet = np.ones(64, np.float32)
    wet[4] = 0.25
    out = np.empty_like(spec)
    apply_features_into(spec, feat, target, wet, out)
    assert np.isfinite(out.view(np.float32)).all()
    assert (out[0, :10] == 0).all()
    f64 = feat.astype(np.float64)
    blend = np.where(np.isfinite(target), target, f64)
    blend[4] = 0.75 * f64[4] + 0.25 * blend[4]
    want_mag = np.maximum(np.exp(np.minimum(blend, 30.0)) - EPS, 0.0)
    nz = np.abs(spec) > 0
    got_mag = np.abs(out.astype(np.complex128))
    rel = np.abs(got_mag - want_mag)[nz] / np.maximum(want_mag[nz], 1e-6)
    assert rel.max() < 1e-5, rel.max()
    assert np.abs(got_mag[1, 5] - np.abs(spec[1, 5])) < 1e-5 * np.abs(spec[1, 5]) + 1e-9
    keep = nz & (got_mag > 1e-3)
    phase_err = np.angle(out[keep].astype(np.complex128) / spec[keep].astype(np.complex128))
    assert np.abs(phase_err).max() < 1e-5
