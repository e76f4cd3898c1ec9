"""The engine on real ONNX models: exactness, reproducibility, robustness, allocation, guard."""

from __future__ import annotations

import math
import time
import tracemalloc

import numpy as np
import pytest

from realtime.dsp.features import EPS, log_magnitude
from realtime.dsp.stft import istft, istft_delay, stft
from realtime.engine.engine import Engine
from realtime.engine.model import EffectModel
from realtime.io.offline import process_signal

SR = 48_000


def noise(seconds: float = 1.0, seed: int = 0, level: float = 0.1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(SR * seconds)) * level).astype(np.float32)


def make_engine(model, **kw) -> Engine:
    # Offline tests run without the deadline guard: a preempted CPU must not change a result.
    kw.setdefault("deadline_share", math.inf)
    e = Engine([model], **kw)
    e.warmup()
    return e


def test_mix0_is_input_delayed_exactly(tp_model):
    e = make_engine(tp_model)
    e.params.set("mix", 0.0)
    e.params.set("amount", 0.8)
    e.reset()
    x = noise()
    y = process_signal(e, x)
    lat = e.latency_samples
    assert lat == 384  # n_fft 512 - gcd(128, 128) at a fixed block of 128
    np.testing.assert_array_equal(y[lat:], x[:-lat])
    assert not y[:lat].any()


def test_amount0_mix1_equals_model_reconstruction(tp_model):
    e = make_engine(tp_model)
    e.params.set("amount", 0.0)
    e.reset()
    x = noise(0.5)
    y = process_signal(e, x)
    # Reference: offline analysis, the model run once on every frame, new magnitudes with the input
    # phase, offline synthesis. Same STFT definition, so the streams must agree to float rounding.
    model = EffectModel(tp_model, max_frames=1000)
    spec = stft(x)
    feat = log_magnitude(spec)
    n = feat.shape[0]
    out, _ = model.run(feat, np.zeros((n, 1), np.float32), np.zeros((n, model.latent_dim), np.float32))
    mag = np.maximum(np.exp(out.astype(np.float64)) - EPS, 0)
    ref_spec = spec * (mag / np.maximum(np.abs(spec), 1e-20))
    ref = istft(ref_spec.astype(np.complex64), e.cfg, len(x))
    lat = e.latency_samples

    d = istft_delay(e.cfg)
    assert d == lat
    m = n * e.cfg.hop - d  # istft is exact up to the last complete frame
    err = np.abs(y[lat:lat + m] - ref[d:d + m]).max()
    assert err < 1e-4, err


def test_same_seed_bit_identical_and_seed_matters(tp_model):
    x = noise(0.5)
    outs = []
    for seed in (7, 7, 8):
        e = make_engine(tp_model, seed=seed)
        e.params.set("amount", 0.7)
        e.reset()
        outs.append(process_signal(e, x))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])


def test_fuzz_blocks_never_raise_and_stay_bounded(tp_model):
    e = Engine([tp_model], block_size=None, max_block=4096)
    e.params.set("amount", 0.5)
    e.params.set("output_gain", 24.0)
    rng = np.random.default_rng(1)
    out = np.zeros(4096, np.float32)
    kinds = ["noise", "nan", "inf", "huge", "dc", "silence", "square"]
    for i in range(10_000):
        n = int(rng.integers(1, 4097))
        kind = kinds[i % len(kinds)]
        x = (rng.standard_normal(n) * 0.5).astype(np.float32)
        if kind == "nan":
            x[rng.integers(0, n, size=max(1, n // 10))] = np.nan
        elif kind == "inf":
            x[rng.integers(0, n, size=max(1, n // 10))] = np.inf * rng.choice([-1, 1])
        elif kind == "huge":
            x *= 1e30
        elif kind == "dc":
            x[:] = 1.0
        elif kind == "silence":
            x[:] = 0.0
        elif kind == "square":
            x = np.sign(np.sin(np.arange(n) * 0.05)).astype(np.float32)
        e.process_block(x, out[:n])
        assert np.isfinite(out[:n]).all()
        assert np.abs(out[:n]).max() <= e.ceiling + 1e-7
    assert e.stats.summary()["bad_input_blocks"] > 0
    assert e.last_error == ""


def test_no_heap_growth_over_10000_callbacks(tp_model):
    e = make_engine(tp_model)
    e.params.set("amount", 0.5)
    x = noise(0.1)[:128].copy()
    out = np.zeros(128, np.float32)
    for _ in range(500):
        e.process_block(x, out)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(10_000):
        e.process_block(x, out)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert growth < 16_384, growth


def test_knob_jump_causes_no_click(tp_model):
    e = make_engine(tp_model)
    e.params.set("amount", 0.0)
    e.params.set("mix", 0.0)
    e.reset()
    t = np.arange(SR) / SR
    x = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    out = np.zeros(128, np.float32)
    ys = []
    for i in range(0, SR, 128):
        if i == SR // 2:
            e.params.set("mix", 1.0)
            e.params.set("amount", 1.0)
            e.params.set("output_gain", -24.0)
        e.process_block(x[i:i + 128], out)
        ys.append(out.copy())
    y = np.concatenate(ys)
    steps = np.abs(np.diff(y))
    steady = steps[SR // 4: SR // 2 - 1024].max()  # a 220 Hz sine's own largest step
    assert steps.max() <= 1.5 * steady, (steps.max(), steady)


class SlowModel(EffectModel):
    """A real model whose run sleeps past the deadline while ``slow`` is set.

    ONNX has no operator that sleeps, so the delay is injected in Python around the real session
    (tests/test_faults.py drives a genuinely slow ONNX graph through a live stream).
    """

    slow = False

    def run_buffered(self, n, watched=False):
        if self.slow:
            time.sleep(0.03)
        return super().run_buffered(n, watched)


def test_deadline_guard_falls_back_continuously_and_recovers(tp_model):
    # Blocks of 1024 (21 ms) with the guard at half of that: a 30 ms model is always late, while the
    # machine's own hiccups (a few ms on a busy 2-core VM) never reach the deadline.
    b = 1024
    model = SlowModel(tp_model, max_frames=65)
    e = Engine([model], block_size=b, deadline_share=0.5)
    e.warmup()
    e.params.set("amount", 1.0)
    e.reset()
    t = np.arange(SR * 2) / SR
    x = (0.5 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    out = np.zeros(b, np.float32)
    ys = []
    for k, i in enumerate(range(0, len(x) - b + 1, b)):
        model.slow = 30 <= k < 50
        e.process_block(x[i:i + b], out)
        ys.append(out.copy())
    y = np.concatenate(ys)
    s = e.stats.summary()
    assert s["misses"] >= 2
    assert np.isfinite(y).all()
    # Continuity: never silent during the fault, and no step larger than the signal's own steps allow
    # (the dry fallback crossfades through the overlap-add windows).
    fault = y[30 * b + 1024: 50 * b]
    assert np.sqrt(np.mean(fault ** 2)) > 0.1
    assert np.abs(np.diff(y[e.latency_samples:])).max() < 0.5
    # Recovery: once the fault stops and the back-off has passed, the model runs again (no new misses).
    for i in range(0, b * 40, b):
        e.process_block(x[i:i + b], out)
    misses = e.stats.summary()["misses"]
    for i in range(b * 40, b * 80, b):
        e.process_block(x[i % (len(x) - b):i % (len(x) - b) + b], out)
    assert e.stats.summary()["misses"] == misses
    assert e.slots[0].skip_blocks == 0


def test_chain_of_two_models_and_slot_bypass(tp_model):
    x = noise(0.5)
    one = make_engine(tp_model)
    one.params.set("amount", 0.6)
    one.reset()
    y1 = process_signal(one, x)
    two = Engine([tp_model, tp_model], deadline_share=math.inf)
    two.warmup()
    two.params.set("amount", 0.6, slot=0)
    two.params.set("slot_bypass", 1.0, slot=1)
    two.reset()
    np.testing.assert_array_equal(process_signal(two, x), y1)
    two.params.set("slot_bypass", 0.0, slot=1)
    two.params.set("amount", 0.6, slot=1)
    two.reset()
    assert not np.array_equal(process_signal(two, x), y1)


def test_freeze_holds_the_latent(tp_model):
    e = make_engine(tp_model)
    e.params.set("amount", 0.0)
    e.reset()
    x = noise(0.3)
    out = np.zeros(128, np.float32)
    for i in range(0, len(x) - 127, 128):
        e.process_block(x[i:i + 128], out)
    e.params.set("freeze", 1.0)
    held = e.slots[0].held_z.copy()
    for i in range(0, len(x) - 127, 128):
        e.process_block(x[i:i + 128], out)
    np.testing.assert_array_equal(e.slots[0].held_z, held)


def test_gate_keeps_silence_silent(tp_model):
    e = make_engine(tp_model)
    e.params.set("amount", 1.0)
    e.reset()
    x = (np.random.default_rng(3).standard_normal(SR // 2) * 1e-5).astype(np.float32)  # -100 dBFS hiss
    y = process_signal(e, x)
    assert np.abs(y).max() < 1e-3


@pytest.mark.parametrize("window", ["sqrt_hann", "low_latency"])
def test_window_modes_latency(tp_model, window):
    e = make_engine(tp_model, window=window)
    e.params.set("mix", 0.0)
    e.reset()
    x = noise(0.2)
    y = process_signal(e, x)
    lat = e.latency_samples
    np.testing.assert_array_equal(y[lat:], x[:-lat])
    assert lat <= (384 if window == "sqrt_hann" else 2 * e.cfg.hop)
    assert math.isclose(e.latency_ms, 1e3 * lat / SR)


def test_hot_swap_crossfades_linearly_over_the_swap_frames(tp_model, tmp_path):
    """A queued model fades in over SWAP_XFADE_FRAMES frames (linear ramp, no allocation: a numba kernel),
    then replaces the old one."""
    from export.thirdparty_example import build_thirdparty_model
    from realtime.engine import blockdsp
    from realtime.engine.engine import SWAP_XFADE_FRAMES

    old = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    new = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
    out = np.zeros_like(old)
    blockdsp.crossfade_frames(old, new, out, 2, 4)
    t = np.minimum((2 + np.arange(3) + 1) / 4, 1.0)[:, None]
    np.testing.assert_allclose(out, (1 - t) * old + t * new, rtol=1e-6, atol=1e-7)

    e = make_engine(tp_model, block_size=128)
    other = build_thirdparty_model(tmp_path / "other.onnx", seed=5)
    e.swap_model(other)
    x, y = noise(1.0), np.zeros(128, np.float32)
    for i in range(SWAP_XFADE_FRAMES):
        assert e.stats.summary()["swaps"] == 0
        e.process_block(x[i * 128:(i + 1) * 128], y)
        assert np.isfinite(y).all()
    assert e.stats.summary()["swaps"] == 1 and e.slots[0].model.info.path == other


def test_swapping_back_reuses_the_loaded_model_unless_the_file_changed(tp_model, tmp_path):
    """Creating an onnxruntime session holds the GIL for milliseconds, so a model a swap replaced stays
    loaded (a few of them, least recently used out) and swapping back reuses it; a file changed on disk
    since is loaded afresh."""
    import os
    import shutil

    from export.thirdparty_example import build_thirdparty_model
    from realtime.engine.engine import MODEL_CACHE, SWAP_XFADE_FRAMES

    a = tmp_path / "a.onnx"
    shutil.copy(tp_model, a)
    b = build_thirdparty_model(tmp_path / "b.onnx", seed=5)
    e = make_engine(a, block_size=128)
    first = e.slots[0].model
    x, y = noise(2.0), np.zeros(128, np.float32)
    pos = 0

    def run_swap():
        nonlocal pos
        for _ in range(SWAP_XFADE_FRAMES):
            e.process_block(x[pos:pos + 128], y)
            pos = (pos + 128) % (len(x) - 128)

    e.swap_model(b)
    run_swap()
    assert e.swap_model(a) is first  # reused: no new session
    run_swap()
    assert e.slots[0].model is first
    st = os.stat(a)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # "changed on disk"
    back_b = e.swap_model(b)
    run_swap()
    assert e.swap_model(a) is not first  # a stale copy is never handed out
    run_swap()
    others = [build_thirdparty_model(tmp_path / f"m{i}.onnx", seed=10 + i) for i in range(MODEL_CACHE + 1)]
    for m in others:
        e.swap_model(m)
        run_swap()
    assert len(e._cache) <= MODEL_CACHE
    assert e.swap_model(b) is not back_b  # the least recently used was freed
