"""The restoration noise generators: deterministic from seeds, finite, unit RMS, families distinct."""

import numpy as np
import pytest

from models import noises as N

SR = 48_000
TALKERS = [np.sin(2 * np.pi * 180 * np.arange(SR) / SR) * np.hanning(SR)]  # stand-in talkers, no espeak needed


@pytest.mark.parametrize("family", N.FAMILIES)
def test_generator_is_deterministic_and_unit_rms(family):
    a = N.make_noise(family, SR, SR, np.random.default_rng(7), talkers=TALKERS)
    b = N.make_noise(family, SR, SR, np.random.default_rng(7), talkers=TALKERS)
    c = N.make_noise(family, SR, SR, np.random.default_rng(8), talkers=TALKERS)
    assert a.shape == (SR,) and np.isfinite(a).all()
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.sqrt(np.mean(a ** 2)) == pytest.approx(1.0, rel=1e-6)


def test_hum_is_at_mains_frequency():
    for seed in range(6):
        x = N.hum(4 * SR, SR, np.random.default_rng(seed))
        spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
        f = np.fft.rfftfreq(x.size, 1 / SR)
        e50 = spec[(f > 45) & (f < 55)].max() + spec[(f > 95) & (f < 105)].max()
        e60 = spec[(f > 55) & (f < 65)].max() + spec[(f > 115) & (f < 125)].max()
        assert max(e50, e60) > 5 * min(e50, e60)


def test_brown_traffic_is_low_heavy_and_hiss_is_high_heavy():
    f = np.fft.rfftfreq(2 * SR, 1 / SR)
    for fam, low_heavy in (("traffic", True), ("hiss", False)):
        p = np.abs(np.fft.rfft(N.make_noise(fam, 2 * SR, SR, np.random.default_rng(3)))) ** 2
        low, high = p[(f > 20) & (f < 500)].mean(), p[(f > 4000) & (f < 16000)].mean()
        assert (low > 10 * high) if low_heavy else (high > low)


def test_reverb_and_snr_mixing():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal(SR)
    wet = N.reverberate(clean, SR, np.random.default_rng(1))
    assert np.array_equal(wet, N.reverberate(clean, SR, np.random.default_rng(1)))
    assert np.sqrt(np.mean(wet ** 2)) == pytest.approx(np.sqrt(np.mean(clean ** 2)), rel=1e-6)
    nz = N.scale_to_snr(clean, N.white(SR, SR, rng), 5.0)
    assert 10 * np.log10(np.mean(clean ** 2) / np.mean(nz ** 2)) == pytest.approx(5.0, abs=1e-9)


def test_babble_talkers_differ_between_splits():
    train_voices = {v for v, _ in N.TRAIN_BABBLE}
    eval_voices = {v for v, _ in N.EVAL_BABBLE}
    assert not train_voices & eval_voices
    assert not {t for _, t in N.TRAIN_BABBLE} & {t for _, t in N.EVAL_BABBLE}
    with pytest.raises(ValueError):
        N.babble(SR, SR, np.random.default_rng(0))
