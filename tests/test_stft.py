"""Windows, offline stft/istft and StreamingStft: perfect reconstruction, latency, bit-compatibility."""

from __future__ import annotations

import tracemalloc
from functools import cache
from math import gcd

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.config import StftConfig
from realtime.dsp.stft import StreamingStft, istft, istft_delay, stft, warmup
from realtime.dsp.windows import make_windows, periodic_hann

CONFIGS = [
    StftConfig(n_fft=512, hop=128),
    StftConfig(n_fft=1024, hop=256),
    StftConfig(n_fft=256, hop=128),
    StftConfig(n_fft=512, hop=128, window="low_latency"),
    StftConfig(n_fft=1024, hop=128, window="low_latency"),
]
IDS = [f"{c.window}-{c.n_fft}-{c.hop}" for c in CONFIGS]
TOL = 1e-5

block_sizes = st.one_of(st.integers(1, 300), st.integers(1, 8192))


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    warmup()


@cache
def _streamer(cfg: StftConfig, block_size: int | None = None) -> StreamingStft:
    # one object per configuration; tests call reset(), which therefore gets exercised too
    return StreamingStft(cfg, max_block=8192, block_size=block_size)


def _run_stream(s: StreamingStft, x: np.ndarray, blocks: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Feed ``x`` in ``blocks`` (identity processor via analyze/copy/synthesize)."""
    s.reset()
    out = np.zeros_like(x)
    frames = []
    i = 0
    for b in blocks:
        n = s.analyze(x[i : i + b])
        frames.append(s.spec[:n].copy())
        s.out_spec[:n] = s.spec[:n]
        s.synthesize(n, out[i : i + b])
        i += b
    return out, np.concatenate(frames)


def _assert_delayed(out: np.ndarray, x: np.ndarray, delay: int) -> None:
    d = min(delay, len(x))
    assert np.max(np.abs(out[:d]), initial=0.0) <= TOL
    assert np.max(np.abs(out[d:] - x[: len(x) - d]), initial=0.0) <= TOL


# ------------------------------------------------------------------------------------------ windows
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_windows_are_cola(cfg: StftConfig) -> None:
    wa, ws = make_windows(cfg)
    assert wa.dtype == ws.dtype == np.float32 and wa.shape == ws.shape == (cfg.n_fft,)
    assert np.all(ws[: cfg.n_fft - cfg.synthesis_len] == 0.0)
    prod = (wa.astype(np.float64) * ws).reshape(-1, cfg.hop).sum(axis=0)
    np.testing.assert_allclose(prod, 1.0, atol=1e-6)


def test_sqrt_hann_is_symmetric_pair() -> None:
    wa, ws = make_windows(StftConfig())
    np.testing.assert_array_equal(wa, ws)
    np.testing.assert_allclose(wa, np.sqrt(periodic_hann(512) * 0.5), atol=1e-7)


@pytest.mark.parametrize("cfg", [c for c in CONFIGS if c.window == "low_latency"], ids=str)
def test_low_latency_product_is_short_hann(cfg: StftConfig) -> None:
    wa, ws = make_windows(cfg)
    tail = 2 * cfg.hop
    np.testing.assert_allclose(wa[-tail:].astype(np.float64) * ws[-tail:], periodic_hann(tail), atol=1e-6)
    assert np.all(wa > -1e-9) and wa[-cfg.hop] == pytest.approx(1.0)  # long rise peaks before fall


# ------------------------------------------------------------------------------------------ offline
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_offline_roundtrip_delay(cfg: StftConfig) -> None:
    x = np.random.default_rng(1).standard_normal(5000).astype(np.float32)
    spec = stft(x, cfg)
    assert spec.dtype == np.complex64 and spec.shape == (5000 // cfg.hop, cfg.n_bins)
    y = istft(spec, cfg, len(x))
    assert y.dtype == np.float32
    complete = spec.shape[0] * cfg.hop
    _assert_delayed(y[:complete], x[:complete], istft_delay(cfg))


def test_offline_frame_convention_and_batch() -> None:
    cfg = StftConfig()
    x = np.random.default_rng(2).standard_normal((2, 3, 1000)).astype(np.float32)
    spec = stft(x, cfg)
    assert spec.shape == (2, 3, 1000 // cfg.hop, cfg.n_bins)
    wa, _ = make_windows(cfg)
    k = 5  # frame k covers [k*hop - n_fft, k*hop)
    seg = x[1, 2, k * cfg.hop - cfg.n_fft : k * cfg.hop]
    np.testing.assert_allclose(spec[1, 2, k - 1], np.fft.rfft(seg * wa), atol=1e-4)
    k = 2  # starts before sample 0: zeros there
    seg = np.concatenate([np.zeros(cfg.n_fft - k * cfg.hop), x[0, 0, : k * cfg.hop]])
    np.testing.assert_allclose(spec[0, 0, k - 1], np.fft.rfft(seg * wa), atol=1e-4)
    assert istft(spec, cfg).shape == (2, 3, (1000 // cfg.hop) * cfg.hop)
    assert stft(np.zeros(cfg.hop - 1), cfg).shape == (0, cfg.n_bins)


# ---------------------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
@settings(max_examples=15, deadline=None)
@given(blocks=st.lists(block_sizes, min_size=1, max_size=8), seed=st.integers(0, 2**32 - 1))
def test_identity_any_blocks(cfg: StftConfig, blocks: list[int], seed: int) -> None:
    s = _streamer(cfg)
    assert s.latency_samples == cfg.synthesis_len - 1
    x = np.random.default_rng(seed).standard_normal(sum(blocks)).astype(np.float32)
    out, frames = _run_stream(s, x, blocks)
    _assert_delayed(out, x, s.latency_samples)
    assert s.underflows == 0
    # offline frames are the streaming frames, bit for bit
    np.testing.assert_array_equal(frames, stft(x, cfg))


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
@settings(max_examples=10, deadline=None)
@given(block_size=st.sampled_from([1, 32, 64, 96, 128, 200, 256, 384, 512, 1000, 4096]),
       mults=st.lists(st.integers(1, 40), min_size=1, max_size=8), seed=st.integers(0, 2**32 - 1))
def test_identity_fixed_block(cfg: StftConfig, block_size: int, mults: list[int], seed: int) -> None:
    s = _streamer(cfg, block_size)
    g = gcd(block_size, cfg.hop)
    assert s.latency_samples == cfg.synthesis_len - g
    # any multiple of gcd(block_size, hop) is served, not just block_size itself
    blocks = [min(m * g, 8192 // g * g) for m in mults] + [block_size] * 3
    x = np.random.default_rng(seed).standard_normal(sum(blocks)).astype(np.float32)
    out, _ = _run_stream(s, x, blocks)
    _assert_delayed(out, x, s.latency_samples)
    assert s.underflows == 0


def test_documented_latencies() -> None:
    default, low = StftConfig(), StftConfig(window="low_latency")
    assert StreamingStft(default, block_size=128).latency_samples == 384
    assert StreamingStft(default, block_size=64).latency_samples == 448
    assert StreamingStft(default).latency_samples == 511
    assert StreamingStft(low, block_size=128).latency_samples == 128
    assert StreamingStft(low).latency_samples == 255


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_istft_equals_streaming_at_hop_blocks(cfg: StftConfig) -> None:
    x = np.random.default_rng(3).standard_normal(40 * cfg.hop).astype(np.float32)
    s = _streamer(cfg, cfg.hop)
    out, _ = _run_stream(s, x, [cfg.hop] * 40)
    assert s.latency_samples == istft_delay(cfg)
    np.testing.assert_array_equal(out, istft(stft(x, cfg), cfg, len(x)))


def test_process_matches_engine_path_and_processing_applies() -> None:
    cfg = StftConfig()
    x = np.random.default_rng(4).standard_normal(3000).astype(np.float32)
    s = StreamingStft(cfg, max_block=1000)
    y = np.zeros_like(x)
    for i in range(0, 3000, 1000):
        assert s.process(x[i : i + 1000], y[i : i + 1000]) >= 7
    ref, _ = _run_stream(s, x, [1000] * 3)
    np.testing.assert_array_equal(y, ref)
    # a processor that zeroes every frame silences the output
    s.reset()
    n = s.analyze(x[:1000])
    s.out_spec[:n] = 0
    s.synthesize(n, y[:1000])
    assert np.all(y[:1000] == 0.0)


def test_rejects_bad_blocks_without_touching_state() -> None:
    s = StreamingStft(StftConfig(), max_block=512, block_size=128)
    with pytest.raises(ValueError):
        s.analyze(np.zeros(100, dtype=np.float32))  # not a multiple of 128
    with pytest.raises(ValueError):
        s.analyze(np.zeros(640, dtype=np.float32))  # > max_block
    with pytest.raises(TypeError):
        s.analyze(np.zeros(128))  # float64
    with pytest.raises(TypeError):
        s.analyze(np.zeros((2, 128), dtype=np.float32)[:, 0])  # strided
    with pytest.raises(ValueError):
        s.process(np.zeros(128, dtype=np.float32), np.zeros(256, dtype=np.float32))
    with pytest.raises(ValueError):
        StreamingStft(StftConfig(), max_block=64, block_size=128)
    x = np.random.default_rng(5).standard_normal(1280).astype(np.float32)
    out, _ = _run_stream(s, x, [128, 256, 512, 384])  # reset happened inside; state is fine
    _assert_delayed(out, x, 384)
    # read-only input blocks are fine (warm-up compiles that specialisation too)
    ro = x[:128].copy()
    ro.setflags(write=False)
    s.process(ro, np.zeros(128, dtype=np.float32))


def test_max_frames_bound() -> None:
    cfg = StftConfig()
    s = StreamingStft(cfg, max_block=1000)
    assert s.max_frames == 8 and s.spec.shape == (8, cfg.n_bins)
    s.analyze(np.zeros(127, dtype=np.float32))
    assert s.analyze(np.zeros(1000, dtype=np.float32)) == 8


def test_no_heap_growth_over_10k_blocks() -> None:
    s = StreamingStft(StftConfig(), block_size=128)
    s.warmup()
    x = np.random.default_rng(6).standard_normal(128).astype(np.float32)
    y = np.zeros(128, dtype=np.float32)
    for _ in range(100):
        s.process(x, y)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(10_000):
            s.process(x, y)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(d.size_diff for d in after.compare_to(before, "filename"))
    assert growth < 10_000, f"heap grew by {growth} bytes"
