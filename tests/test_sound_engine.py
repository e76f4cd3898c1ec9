"""The engine's sound stages (level, flicker smoothing, phase) against the listener metrics of
models/quality.py, offline with the shipped default model: level tracking, limiter hits, clicks during
knob sweeps and every kind of switch a performer makes, and the phase stage's consistency."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from models import quality as Q
from realtime.engine.engine import Engine
from realtime.io.offline import default_amount
from realtime.paths import resolve_model as shipped_model

SR = 48_000
BLOCK = 128


@pytest.fixture(scope="module")
def default_model():
    return shipped_model("default")


@pytest.fixture(scope="module")
def material():
    files = Q.listener_material(Q.HELDOUT_SEED, SR)
    return {k: files[k] for k in ("chords", "speech", "sweep") if k in files}


def run_blocks(engine: Engine, x: np.ndarray, at_block: Callable[[int], None] | None = None) -> np.ndarray:
    """Stream ``x`` through ``engine`` in live-sized blocks, calling ``at_block(i)`` before block ``i``
    (knob moves land between blocks, as from the panel); returns the output aligned with ``x``."""
    lat = engine.latency_samples
    n = x.size + lat
    n += (-n) % BLOCK
    xp = np.zeros(n, np.float32)
    xp[: x.size] = x
    y = np.zeros_like(xp)
    for i, s in enumerate(range(0, n, BLOCK)):
        if at_block is not None:
            at_block(i)
        engine.process_block(xp[s:s + BLOCK], y[s:s + BLOCK])
    return y[lat:lat + x.size]


def test_level_stage_holds_the_level_and_keeps_the_limiter_idle(default_model, material):
    x = material["chords"]
    rows = {}
    for lvl in (0.0, 1.0):
        r = Q.run_engine(default_model, x, {"amount": 0.5, "level": lvl})
        rows[lvl] = (Q.level_tracking(x, r["y"], SR), r["stats"]["limiter_hits"])
    off, on = rows[0.0][0], rows[1.0][0]
    assert on["level_p95_db"] < 0.6 * off["level_p95_db"], (off, on)
    assert on["level_median_db"] < 2.0, on
    assert rows[1.0][1] == 0  # the chords peak at -8 dBFS: nothing reaches the ceiling
    # Amount 0: nearly transparent in level.
    r0 = Q.run_engine(default_model, x, {"amount": 0.0})
    assert Q.level_tracking(x, r0["y"], SR)["level_p95_db"] < 2.0


def test_peak_guard_keeps_a_noise_like_wet_near_the_players_peaks():
    """Energy matching alone lets a noise-like wet (crest factor ~4) stand in for a sine (1.4) and peak
    9 dB over it; the guard holds it within PEAK_HEADROOM_DB of the dry's peaks and counts engaging. At
    level 0 the follower (and its guard) leave the wet untouched."""
    from realtime.dsp import level

    rng = np.random.default_rng(2)
    n = SR
    dry = (0.25 * np.sin(2 * np.pi * 15_000 * np.arange(n) / SR)).astype(np.float32)
    wet = (0.01 * rng.standard_normal(n)).astype(np.float32)  # 28 dB too quiet, as decoded there
    c = level.coefs(SR / 128, SR)
    ceiling = 0.25 * 10 ** (level.PEAK_HEADROOM_DB / 20)
    out = np.zeros_like(wet)
    hits = level.follow(wet, dry, np.ones(n, np.float32), level.follow_state(1.0), 1.0, c, out)
    tail = out[n // 2:]
    assert np.abs(tail).max() <= ceiling * 1.001, np.abs(tail).max()
    assert hits > 0
    rms = float(np.sqrt(np.mean(tail.astype(np.float64) ** 2)))
    assert 0.25 / np.sqrt(2) / 4 < rms <= 0.25 / np.sqrt(2) * 1.05, rms  # raised toward the sine's energy
    hits = level.follow(wet, dry, np.ones(n, np.float32), level.follow_state(0.0), 0.0, c, out)
    assert hits == 0 and np.array_equal(out, wet)


def test_restoration_models_start_with_the_level_stage_off(default_model):
    """Level and flicker smoothing start at 0 on a restoration slot (its gains must follow the noise),
    at their defaults on a diffusion slot; and the denoiser with its defaults removes as much white noise
    as with both stages off by hand."""
    eng = Engine([shipped_model("denoise"), default_model], block_size=BLOCK)
    assert eng.params.get("level", 0) == 0.0 and eng.params.get("level", 1) == 1.0
    assert eng.params.get("smooth", 0) == 0.0 and eng.params.get("smooth", 1) == 100.0
    # A hot swap moves knobs that sit at the outgoing kind's default to the incoming kind's; others stay.
    eng.params.set("smooth", 40.0, 1)
    eng.swap_model(shipped_model("denoise"), slot=1)
    assert eng.params.get("level", 1) == 0.0 and eng.params.get("smooth", 1) == 40.0
    eng.swap_model(default_model, slot=0)
    assert eng.params.get("level", 0) == 1.0 and eng.params.get("smooth", 0) == 100.0
    rng = np.random.default_rng(8)
    t = np.arange(2 * SR) / SR
    gate = (np.floor(t / 0.15) % 2 == 0).astype(np.float32)  # 150 ms tone bursts: the gains must follow
    clean = (0.2 * np.sin(2 * np.pi * 220 * t) * gate).astype(np.float32)
    noisy = clean + (0.05 * rng.standard_normal(clean.size)).astype(np.float32)
    denoise = shipped_model("denoise")

    def residual_db(knobs: dict) -> float:
        y = Q.run_engine(denoise, noisy, knobs)["y"][SR // 2:]
        return 10 * np.log10(np.mean((y - clean[SR // 2:]) ** 2) / np.mean((noisy - clean)[SR // 2:] ** 2))

    full = default_amount(denoise)  # the shipped denoiser's full strength (1 for contract 2, 0 for contract 1)
    by_default = residual_db({"amount": full})
    assert by_default == pytest.approx(residual_db({"amount": full, "smooth": 0.0, "level": 0.0}), abs=1e-6)
    assert by_default < -9.0, by_default  # measured -11.2 dB (denoise-v1: -18.1)
    # smoothed gains lag every burst: measured -0.5 dB, 10.7 dB worse (denoise-v1: +1.0, 19 dB worse)
    assert residual_db({"amount": full, "smooth": 100.0}) > by_default + 8.0


def test_level_off_and_input_phase_is_the_plain_engine(default_model, material):
    """With the stages off, the output is the wet spectrum with the input phase (no hidden gain)."""
    x = material["chords"][: SR]
    knobs = {"amount": 0.0, "level": 0.0, "smooth": 0.0, "phase": 0.0, "slot_bypass": 1.0}
    y = Q.run_engine(default_model, x, knobs)["y"]
    np.testing.assert_allclose(y, x, atol=2e-6)  # slot bypassed: the STFT's own round trip


def _switches(engine: Engine, other) -> Callable[[int], None]:
    """Every kind of move, one per ~0.4 s, over ~6 s of blocks (375 blocks per second)."""
    p = engine.params
    snapshot = dict(p.snapshot(), amount=0.6, mix=0.8, noise_rate=5.0)

    def at(i: int) -> None:
        t = i / 375.0
        if 0.2 <= t < 1.2:  # amount 0 -> 1 -> 0 in one second
            u = (t - 0.2) / 1.0
            p.set("amount", float(1.0 - abs(2.0 * u - 1.0)))
        elif i == int(1.3 * 375):
            p.set("amount", 0.3)
        elif i == int(1.6 * 375):
            p.set("freeze", 1.0)
        elif i == int(2.0 * 375):
            p.set("freeze", 0.0)
        elif i == int(2.4 * 375):
            p.set("bypass", 1.0)
        elif i == int(2.8 * 375):
            p.set("bypass", 0.0)
        elif i == int(3.2 * 375):
            p.set("mix", 0.0)
        elif i == int(3.6 * 375):
            p.set("mix", 1.0)
        elif i == int(4.0 * 375):
            engine.swap_model(other)
        elif i == int(4.6 * 375):
            p.apply(snapshot)  # a preset load
        elif i == int(5.2 * 375):
            p.set("level", 0.0)
        elif i == int(5.6 * 375):
            p.set("level", 1.0)

    return at


@pytest.mark.parametrize("name", ["chords", "speech"])
def test_no_clicks_from_knob_sweeps_and_switches(default_model, material, name):
    from realtime.engine.model import EffectModel

    if name not in material:
        pytest.skip("espeak-ng not installed")
    x = np.concatenate([material[name]] * 2)[: 6 * SR]
    engine = Engine([default_model], block_size=BLOCK, seed=1, deadline_share=float("inf"))
    engine.params.set("amount", 0.0)
    engine.warmup()
    other = EffectModel(default_model)
    y = run_blocks(engine, x, _switches(engine, other))
    assert engine.stats.summary()["swaps"] == 1
    clicks = Q.click_events(x, y, SR)
    print(f"\n{name}: clicks during sweeps and switches at frames {clicks.tolist()}")
    assert len(clicks) == 0, (clicks * BLOCK / SR).round(2)


@pytest.mark.parametrize("f0", [50.0, 440.0])
def test_level_stage_does_not_pump_on_steady_tones(default_model, f0):
    """A steady tone keeps a steady level: 10 ms windows vary no more with the level stage than without."""
    t = np.arange(3 * SR) / SR
    x = (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)
    std = {}
    for lvl in (0.0, 1.0):
        y = Q.run_engine(default_model, x, {"amount": 0.0, "level": lvl})["y"][SR:]
        w = 480
        e = 10 * np.log10(np.mean(y[: y.size // w * w].reshape(-1, w).astype(np.float64) ** 2, axis=1))
        std[lvl] = float(e.std())
    assert std[1.0] <= std[0.0] + 0.1 and std[1.0] < 0.5, std


def test_auto_phase_fits_the_new_magnitude_better_than_the_input_phase(default_model, material):
    """STFT consistency (requested magnitude against the re-analysed output) at amount 0.75: auto's
    random starts and causal RTISI step beat the input phase; at amount 0 auto keeps the input phase on
    every unchanged bin, so the output stays the input's (near-)consistent spectrogram."""
    x = material["sweep"]
    cons = {}
    for mode in (0.0, 2.0):
        r = Q.run_engine(default_model, x, {"amount": 0.75, "phase": mode})
        cons[mode] = Q.consistency_db(r["requested"], r["synth"], r["cfg"], r["delay_frames"])
        assert np.isfinite(r["y"]).all()
    assert cons[2.0] < 0.85 * cons[0.0], cons
    r = Q.run_engine(default_model, x, {"amount": 0.0, "phase": 2.0})
    assert Q.consistency_db(r["requested"], r["synth"], r["cfg"], r["delay_frames"]) < 0.3
    # Reproducible: the random phases come from a seeded generator (a fresh engine: the same output).
    a = Q.run_engine(default_model, x[: 2 * SR], {"amount": 0.75, "phase": 2.0})["y"]
    np.testing.assert_array_equal(a, Q.run_engine(default_model, x[: 2 * SR], {"amount": 0.75, "phase": 2.0})["y"])


def test_lookahead_holds_each_frame_one_hop_and_lets_auto_fit_better(default_model, material):
    """One frame of look-ahead: in input and pghi mode the output is the same, one hop later (the latency
    says so); in auto the held frame's RTISI-LA step fits the magnitude better than auto without it, at a
    mid amount on chords (harmonics) and the sweep (where the model moves the most)."""
    x = np.concatenate([material["chords"][: 2 * SR], material["sweep"][: 3 * SR]])
    hop = 128  # the shipped model's hop
    for mode in (0.0, 1.0):
        r0 = Q.run_engine(default_model, x, {"amount": 0.5, "phase": mode})
        r1 = Q.run_engine(default_model, x, {"amount": 0.5, "phase": mode}, lookahead=1)
        n = min(r0["raw"].size, r1["raw"].size - hop)
        np.testing.assert_array_equal(r1["raw"][hop:hop + n], r0["raw"][:n])
        np.testing.assert_array_equal(r1["y"], r0["y"])  # y is aligned by each engine's own latency
    cons = {}
    for ahead in (0, 1):
        r = Q.run_engine(default_model, x, {"amount": 0.5, "phase": 2.0}, lookahead=ahead)
        assert np.isfinite(r["y"]).all()
        cons[ahead] = Q.consistency_db(r["requested"], r["synth"], r["cfg"], r["delay_frames"])
    print(f"\nauto consistency without / with look-ahead: {cons[0]:.2f} / {cons[1]:.2f} dB")
    assert cons[1] < 0.9 * cons[0], cons
    with pytest.raises(ValueError, match="lookahead"):
        Engine([default_model], lookahead=2)
