"""The public Python API, used only through ``realtime``'s public names (as a user's script would)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import realtime
from realtime import Chain, Effect

ROOT = Path(__file__).resolve().parents[1]
SR = 48_000


def signal(seconds: float = 1.5, sr: int = SR, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.2 * np.sin(2 * np.pi * 220 * t) + 0.02 * noise).astype(np.float32)


def test_public_names_are_exported():
    assert {"Effect", "Chain", "live"} <= set(realtime.__all__)
    assert realtime.Effect is Effect


def test_one_shot_equals_process_cli_bit_for_bit(tmp_path):
    x = signal()
    y = Effect("default", amount=0.4, seed=1)(x, SR)
    assert y.shape == x.shape and y.dtype == np.float32
    sf.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    r = subprocess.run([sys.executable, "-m", "realtime.cli", "process", str(tmp_path / "in.wav"),
                        str(tmp_path / "out.wav"), "--amount", "0.4", "--seed", "1", "--align", "--quiet"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(y, sf.read(tmp_path / "out.wav", dtype="float32")[0])


def test_a_denoiser_starts_where_process_starts_it(tmp_path):
    """No controls given: the denoiser at its own amount with level and smoothing off, as ``process``."""
    fx = Effect("denoise")
    assert (fx.level, fx.smooth) == (0.0, 0.0)
    x = signal(seed=3) + (0.05 * np.random.default_rng(4).standard_normal(int(1.5 * SR))).astype(np.float32)
    y = fx(x, SR)
    sf.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    r = subprocess.run([sys.executable, "-m", "realtime.cli", "process", str(tmp_path / "in.wav"),
                        str(tmp_path / "out.wav"), "--model", "denoise", "--align", "--quiet"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(y, sf.read(tmp_path / "out.wav", dtype="float32")[0])
    assert Effect("default").level == 1.0 and Effect("denoise", level=0.5).level == 0.5


def test_chunked_stream_equals_one_call_and_the_aligned_result():
    x = signal()
    fx = Effect("default", amount=0.5, seed=2)
    whole = fx(x, SR, reset=False)
    fx.reset()
    cuts = [1, 100, 129, 8191, 20000, 50000]
    chunked = np.concatenate([fx(c, SR, reset=False) for c in np.split(x, cuts)])
    np.testing.assert_array_equal(chunked, whole)
    aligned = fx(x, SR)  # one-shot: latency compensated
    lat = fx.stream_latency
    np.testing.assert_array_equal(whole[lat:], aligned[:len(x) - lat])


def test_controls_are_keywords_and_attributes_and_change_the_sound():
    x = signal(1.0)
    fx = Effect("default", amount=0.0, seed=1)
    a = fx(x, SR)
    fx.amount = 0.9
    assert fx.amount == 0.9 and fx.controls["amount"] == 0.9
    b = fx(x, SR)
    assert np.abs(a - b).max() > 1e-3
    np.testing.assert_array_equal(fx(x, SR), b)  # reset=True: the same call gives the same result
    fx.mix = 0.0  # fully dry: the input, delayed and compensated
    np.testing.assert_allclose(fx(x, SR), x, atol=1e-6)


def test_any_rate_and_stereo_keep_shape_and_rate():
    x = signal(1.0, sr=44_100)
    st = np.stack([x, 0.5 * x]).astype(np.float64)
    y = Effect("default", amount=0.3)(st, 44_100)
    assert y.shape == st.shape and y.dtype == np.float32 and np.isfinite(y).all()
    # Each channel is its own stream: the right channel is not the left one copied.
    assert np.abs(y[0] - y[1]).max() > 1e-3


def test_chain_runs_effects_in_order():
    x = signal(1.0)
    chain = Chain([Effect("denoise"), Effect("default", amount=0.5)], seed=1, mix=1.0)
    assert len(chain) == 2 and chain[1].amount == 0.5
    y = chain(x, SR)
    alone = Effect("default", amount=0.5, seed=1)(x, SR)
    assert y.shape == x.shape and np.abs(y - alone).max() > 1e-4
    assert [i.kind for i in chain.info] == ["restoration", "diffusion"]


def test_info_carries_the_models_metadata():
    info = Effect("default").info
    assert info.kind == "diffusion" and info.sample_rate == SR and info.latent_dim > 0


@pytest.mark.parametrize(("audio", "words"), [
    (np.zeros((4000, 2), np.float32), "pass audio.T"),
    (np.zeros((2, 2, 2), np.float32), "(channels, samples)"),
    (np.zeros(100, np.int16), "float samples"),
    (np.array(["a", "b"]), "float32 or float64"),
])
def test_wrong_shapes_and_types_are_one_line_errors(audio, words):
    with pytest.raises(Exception, match=r"(?s)^(?!.*\n).*") as info:
        Effect("default")(audio, SR)
    assert words in str(info.value)


def test_bad_controls_and_rates_are_clear():
    fx = Effect("default")
    with pytest.raises(ValueError, match="outside 0.0..1.0"):
        fx.amount = 2.0
    with pytest.raises(ValueError, match="no control 'amout'"):
        Effect("default", amout=0.3)
    with pytest.raises(Exception, match="sample_rate"):
        fx(signal(0.1), 0)
    with pytest.raises(Exception, match="model not found"):
        Effect("no-such-model")
    assert fx(np.zeros(0, np.float32), SR).shape == (0,)


def test_live_runs_on_the_jack_server_and_stops(jack):
    import time

    fx = Effect("default", amount=0.4)
    handle = realtime.live(fx, "system", "system")
    try:
        time.sleep(1.0)
        handle.set("amount", 0.7)
        time.sleep(0.3)
        stats = handle.stats()
    finally:
        final = handle.stop()
    assert stats["callbacks"] > 100 and final["callbacks"] >= stats["callbacks"]
    assert not handle.running
