"""Latency and performance benchmark: ``python -m realtime.tools.bench [--quick]`` (``audio-diffusion bench``).

One run measures, on the machine at hand, and writes ``docs/bench/latest.json`` and ``latest.png``:

1. algorithmic latency *measured* with an impulse and a chirp (cross-correlation) through the real engine,
   dry (mix 0) and wet (mix 1, amount 0), for both window modes; it must equal ``engine.latency_samples``;
2. per-block processing time (p50/p99/p99.9/max and share of the block period) at blocks 32..1024;
3. offline throughput (real-time factor of :func:`realtime.io.offline.process_signal`), small and large blocks;
4. the engine beside (b) a numpy STFT + per-frame onnxruntime loop and (c) numpy STFT + PyTorch eager per
   frame (:mod:`realtime.tools.baselines`), same input and weights, with their output differences;
5. start-up time to the first processed block, cold (empty numba cache) and warm, in fresh interpreters;
6. device round trip through the JACK dummy server at periods 64/128/256 (reported + algorithmic);
7. latency jitter over random impulse positions and random block-size sequences (must be exactly 0);
8. published figures of comparable systems, with sources;

plus the quality cost of the low-latency window (log-spectral distance on held-out synthetic audio) and
the low-latency mode at hop 64 (timing and latency only: the shipped model is trained for hop 128).

Timings are reported, never asserted: on a shared machine they are noisy. Candidates are measured in
interleaved rounds so background load hits them alike, and medians are reported. The model is
``models/pretrained/default.onnx`` when it exists, else the third-party example model (a stand-in: its
two matrix products cost far less than the VAE, so timings would flatter the engine).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from realtime.config import OFFLINE_BLOCK, WINDOW_MODES, StftConfig
from realtime.engine.engine import Engine
from realtime.fileio import atomic_path, write_bytes, write_text
from realtime.io import cpuwake
from realtime.io.offline import process_signal
from realtime.paths import PRETRAINED

ROOT = Path(__file__).resolve().parents[2]  # the repository (this file is realtime/tools/bench.py)
DEFAULT_OUT = ROOT / "docs" / "bench"
BLOCK_SIZES = (32, 64, 128, 256, 512, 1024)
DEVICE_PERIODS = (64, 128, 256)
SECTIONS = ("meta", "latency", "block_times", "stages", "sound_stages", "offline", "baselines", "baselines_batched",
            "startup", "cli_startup", "device", "jitter", "quality", "low_latency", "published", "targets")
#: Sections a run can skip (``--skip``).
MEASURED = SECTIONS[1:-2]
#: Impulse height: well under the limiter's -1 dBFS ceiling, so the limiter never touches it.
IMPULSE = 0.5
#: Test-signal level for timing runs (white noise, dBFS RMS): above the default gate, below the limiter.
NOISE_DBFS = -20.0


@dataclass(frozen=True)
class Options:
    """What one run measures and for how long (see :meth:`quick_preset`)."""

    quick: bool = False
    model: Path | None = None
    block_seconds: float = 20.0          # audio per block size in section 2
    block_sizes: tuple[int, ...] = BLOCK_SIZES
    rounds: int = 10                     # interleaving rounds
    stage_calls: int = 4000
    offline_seconds: float = 20.0
    offline_large_block: int = OFFLINE_BLOCK
    baseline_seconds: float = 10.0
    startup_runs: int = 2
    device_periods: tuple[int, ...] = DEVICE_PERIODS
    device_seconds: float = 10.0
    jitter_trials: int = 200
    quality_seconds: float = 12.0
    skip: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def quick_preset(cls, **kw) -> Options:
        """``--quick``: the same sections on less audio (under a minute on 2 shared cores)."""
        base = cls(quick=True, block_seconds=2.0, rounds=4, stage_calls=800, offline_seconds=3.0,
                   baseline_seconds=1.5, startup_runs=1, device_seconds=1.0, jitter_trials=30,
                   quality_seconds=3.0)
        return replace(base, **kw)


# ------------------------------------------------------------------------------------------- helpers
def resolve_bench_model(path: str | Path | None, workdir: Path) -> tuple[Path, str]:
    """The model to benchmark and a note on where it came from."""
    if path:
        return Path(path), "given on the command line"
    default = PRETRAINED / "default.onnx"
    if default.exists():
        return default, "models/pretrained/default.onnx"
    from export.thirdparty_example import build_thirdparty_model

    return (build_thirdparty_model(workdir / "thirdparty_example.onnx"),
            "STAND-IN: models/pretrained/default.onnx is missing, so the torch-free example model "
            "(export/thirdparty_example.py, two matrix products) was used; timings flatter the engine")


def make_engine(model: str | Path, *, block_size: int | None = 128, window: str | None = None,
                amount: float = 0.0, mix: float = 1.0, gate_db: float = -120.0, seed: int = 0,
                warm: bool = True, lookahead: int = 0) -> Engine:
    """An offline-style engine (no deadline) with its knobs *starting* at the given values (no ramps)."""
    e = Engine([model], block_size=block_size, window=window, seed=seed, deadline_share=math.inf,
               lookahead=lookahead)
    e.params.set("amount", amount)
    e.params.set("mix", mix)
    e.params.set("gate", gate_db)
    if warm:
        e.warmup()
    e.reset()  # smoothed knob states start at the targets, so nothing ramps during a measurement
    return e


def noise_signal(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """White noise at :data:`NOISE_DBFS` (the model's cost does not depend on the signal)."""
    n = int(seconds * sample_rate)
    return (10 ** (NOISE_DBFS / 20) * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def run_blocks(engine: Engine, x: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Process ``x`` in consecutive blocks of the given sizes (cycled); returns the output."""
    y = np.zeros_like(x)
    pos, k = 0, 0
    while pos < len(x):
        n = min(int(sizes[k % len(sizes)]), len(x) - pos)
        engine.process_block(x[pos:pos + n], y[pos:pos + n])
        pos += n
        k += 1
    return y


def percentiles(us: np.ndarray, period_us: float | None = None) -> dict[str, float]:
    """p50/p99/p99.9/max in microseconds and, given a period, in percent of it."""
    p = np.percentile(us, [50, 99, 99.9, 100])
    out = {"p50_us": float(p[0]), "p99_us": float(p[1]), "p999_us": float(p[2]), "max_us": float(p[3]),
           "n": int(us.size)}
    if period_us:
        out.update({f"{k[:-3]}_pct": 100.0 * v / period_us for k, v in list(out.items()) if k.endswith("_us")})
        out["period_us"] = period_us
        out["over_period"] = int(np.sum(us > period_us))
    return out


def _impulse_delay(engine: Engine, pos: int, length: int, sizes: Sequence[int] | None = None) -> int:
    x = np.zeros(length, np.float32)
    x[pos] = IMPULSE
    engine.reset()
    y = run_blocks(engine, x, sizes) if sizes is not None else process_signal(engine, x)
    return int(np.argmax(np.abs(y))) - pos


def chirp(seconds: float, sample_rate: int, f0: float = 50.0, f1: float = 18_000.0) -> np.ndarray:
    """Exponential sine sweep with 10 ms raised-cosine fades, amplitude :data:`IMPULSE`."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    k = math.log(f1 / f0)
    x = np.sin(2 * np.pi * f0 * seconds / k * (np.exp(t * k / seconds) - 1.0))
    fade = int(0.01 * sample_rate)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    x[:fade] *= ramp
    x[-fade:] *= ramp[::-1]
    return (IMPULSE * x).astype(np.float32)


def xcorr_lag(x: np.ndarray, y: np.ndarray, max_lag: int) -> int:
    """Lag (0..max_lag) at which ``y`` best matches ``x`` delayed (FFT cross-correlation)."""
    n = 1 << int(math.ceil(math.log2(len(x) + len(y))))
    c = np.fft.irfft(np.fft.rfft(y, n) * np.conj(np.fft.rfft(x, n)), n)
    return int(np.argmax(c[: max_lag + 1]))


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------ sections
def measure_latency(model: Path, block_size: int = 128) -> list[dict]:
    """Section 1: measured delay (impulse at 3 grid offsets, and chirp) vs ``engine.latency_samples``."""
    rows = []
    for window in WINDOW_MODES:
        for mix in (0.0, 1.0):
            e = make_engine(model, block_size=block_size, window=window, mix=mix)
            sr = e.cfg.sample_rate
            # three offsets against the hop grid: the delay must not depend on where the impulse falls
            imp = [_impulse_delay(e, 4096 + off, 4096 + off + 4096) for off in (0, 37, 101)]
            c = chirp(0.5, sr)
            e.reset()
            y = process_signal(e, np.concatenate([c, np.zeros(4096, np.float32)]))
            lag = xcorr_lag(c, y, 4096)
            rows.append({"window": window, "mix": mix, "block_size": block_size, "impulse_samples": imp,
                         "chirp_samples": lag, "latency_samples": e.latency_samples,
                         "latency_ms": e.latency_ms,
                         "match": all(d == e.latency_samples for d in imp) and lag == e.latency_samples})
    return rows


def measure_block_times(model: Path, block_sizes: Sequence[int], seconds: float, rounds: int,
                        window: str | None = None, amount: float = 0.3) -> list[dict]:
    """Section 2: per-block processing time of the engine at each block size, interleaved rounds."""
    engines = {b: make_engine(model, block_size=b, window=window, amount=amount, gate_db=-70.0)
               for b in block_sizes}
    sr = next(iter(engines.values())).cfg.sample_rate
    x = noise_signal(seconds, sr, seed=1)
    times: dict[int, list[np.ndarray]] = {b: [] for b in block_sizes}
    y = np.zeros(max(block_sizes), np.float32)
    clock = time.perf_counter_ns
    per_round = len(x) // rounds
    for r in range(rounds):
        for b, e in engines.items():
            seg = x[r * per_round:(r + 1) * per_round]
            n_blocks = len(seg) // b
            t = np.empty(n_blocks)
            out = y[:b]
            for i in range(n_blocks):
                blk = seg[i * b:(i + 1) * b]
                t0 = clock()
                e.process_block(blk, out)
                t[i] = clock() - t0
            times[b].append(t / 1e3)
    rows = []
    for b, e in engines.items():
        us = np.concatenate(times[b])
        period = 1e6 * b / sr
        row = {"block_size": b, "window": e.cfg.window, "hop": e.cfg.hop, "seconds": len(us) * b / sr,
               "frames_per_block": b / e.cfg.hop, "latency_samples": e.latency_samples,
               "latency_ms": e.latency_ms, "misses": e.stats.summary()["misses"]}
        row.update(percentiles(us, period))
        rows.append(row)
    return rows


def measure_stages(model: Path, calls: int, block_size: int = 128) -> dict:
    """Where a block's time goes (one frame per 128-sample block), medians in us, interleaved."""
    from realtime.dsp.features import apply_features_into, log_magnitude_into
    from realtime.dsp.stft import StreamingStft
    from realtime.engine.model import EffectModel, probe_features
    from realtime.tools.microbench import _time_interleaved

    e = make_engine(model, block_size=block_size, amount=0.3, gate_db=-70.0)
    cfg = e.cfg
    x = noise_signal(block_size / cfg.sample_rate, cfg.sample_rate, seed=2)
    y = np.zeros_like(x)
    s = StreamingStft(cfg, max_block=8192, block_size=block_size)
    s.warmup()

    def stft_path() -> None:
        n = s.analyze(x)
        s.out_spec[:n] = s.spec[:n]
        s.synthesize(n, y)

    m = EffectModel(model, cfg, max_frames=8)
    nf = max(1, block_size // cfg.hop)
    m.features_in[:nf] = probe_features(cfg, nf)[0]
    m.warm_up()
    spec = (np.random.default_rng(3).standard_normal((nf, cfg.n_bins))
            + 1j * np.random.default_rng(4).standard_normal((nf, cfg.n_bins))).astype(np.complex64)
    feat = np.zeros((nf, cfg.n_bins), np.float32)
    wet = np.ones(nf, np.float32)
    out = np.zeros_like(spec)

    def features() -> None:
        log_magnitude_into(spec, feat)
        apply_features_into(spec, feat, feat, wet, out)

    t = _time_interleaved({"engine": lambda: e.process_block(x, y), "stft": stft_path,
                           "model": lambda: m.run_buffered(nf), "features": features}, calls)
    med = {k: float(np.median(v)) for k, v in t.items()}
    med["other"] = med["engine"] - med["stft"] - med["model"] - med["features"]
    period = 1e6 * block_size / cfg.sample_rate
    return {"block_size": block_size, "frames_per_block": nf, "period_us": period,
            "median_us": med, "share_of_engine_pct": {k: 100 * v / med["engine"] for k, v in med.items()},
            "note": "'other': knob smoothing, gate, noise draw, dry delay line, mix/limiter and the Python "
                    "glue between the kernels (engine total minus the three timed stages)"}


def measure_sound_stages(model: Path, calls: int, seconds: float, rounds: int, block_size: int = 128) -> dict:
    """Per-block cost of the level stage and of RTPGHI phase (one frame per 128-sample block, medians in us,
    interleaved), and the engine's block times with both on against both off (target: p99 <= 10 % of
    the period with both on)."""
    from realtime.dsp import level, phase
    from realtime.tools.microbench import _time_interleaved

    e = make_engine(model, block_size=block_size, amount=0.5, gate_db=-70.0)
    cfg = e.cfg
    nb = cfg.n_bins
    rng = np.random.default_rng(6)
    feat_in = (rng.standard_normal((1, nb)) - 4.0).astype(np.float32)
    feat_out = (rng.standard_normal((1, nb)) - 4.0).astype(np.float32)
    work = feat_out.copy()
    spec = (np.exp(feat_in) * np.exp(1j * rng.uniform(0, 6.28, (1, nb)))).astype(np.complex64)
    lstate, delta, fstate = np.zeros(2), np.zeros(nb, np.float32), level.follow_state(1.0)
    coefs = level.coefs(e.frame_rate, cfg.sample_rate)
    smooth = level.smooth_coef(25.0, e.frame_rate)
    ratio = np.ones(1)
    ratio_wet = np.ones(block_size, np.float32)
    wet = rng.standard_normal(block_size).astype(np.float32) * 0.1
    dry = wet.copy()
    followed = np.zeros_like(wet)
    pg = phase.make_state(cfg)
    mag = np.exp(feat_out[0]).astype(np.float32)
    out_row = np.zeros(nb, np.complex64)

    def level_stage() -> None:
        work[:] = feat_out
        level.level_frames(feat_in, work, lstate, 1.0, coefs, delta, smooth)
        level.frame_ratio(feat_in, spec, ratio)
        level.follow(wet, dry, ratio_wet, fstate, 1.0, coefs, followed)

    def pghi() -> None:
        phase.phase_frame(pg, spec[0], feat_out[0], feat_in[0], mag, phase.MODE_PGHI, out_row)

    def input_phase() -> None:  # what the phase stage costs in input mode (it tracks the history for a switch)
        phase.track_input(pg, spec[0], feat_out[0])

    acc = np.zeros(cfg.synthesis_len, np.float32)
    ws = np.ones(cfg.n_fft, np.float32)

    def auto_phase() -> None:  # auto: random starts on raised bins + one causal RTISI step (two FFTs)
        phase.auto_frame(pg, spec[0], feat_out[0], feat_in[0], mag, acc, ws, out_row)

    hold = phase.make_hold(cfg)

    def auto_lookahead() -> None:  # auto with one frame held: the held frame's RTISI-LA step on top (3 FFTs)
        phase.auto_start(pg, spec[0], feat_out[0], feat_in[0], mag, hold.new[0])
        phase.lookahead_refine(pg, hold, acc, ws, hold.new[0])
        phase.auto_refine(pg, acc, ws, mag, hold.new[0])
        phase.hold_keep(hold, mag, pg.known, True)

    t = _time_interleaved({"level": level_stage, "pghi": pghi, "auto": auto_phase, "auto_lookahead": auto_lookahead,
                           "input_phase": input_phase}, calls)
    med = {k: float(np.median(v)) for k, v in t.items()}
    period = 1e6 * block_size / cfg.sample_rate
    x = noise_signal(seconds, cfg.sample_rate, seed=7)
    engines = {}
    for name, knobs, ahead in (("both_off", {"level": 0.0, "smooth": 0.0, "phase": 0.0}, 0),
                               ("both_on", {"level": 1.0, "smooth": 25.0, "phase": 1.0}, 0),
                               ("level_auto", {"level": 1.0, "smooth": 25.0, "phase": 2.0}, 0),
                               ("level_auto_lookahead", {"level": 1.0, "smooth": 25.0, "phase": 2.0}, 1)):
        eng = make_engine(model, block_size=block_size, amount=0.5, gate_db=-70.0, lookahead=ahead)
        eng.params.apply(knobs)
        eng.reset()
        engines[name] = eng
    times: dict[str, list[np.ndarray]] = {k: [] for k in engines}
    y = np.zeros(block_size, np.float32)
    clock = time.perf_counter_ns
    per_round = len(x) // rounds
    for r in range(rounds):
        for name, eng in engines.items():
            seg = x[r * per_round:(r + 1) * per_round]
            n_blocks = len(seg) // block_size
            tt = np.empty(n_blocks)
            for i in range(n_blocks):
                blk = seg[i * block_size:(i + 1) * block_size]
                t0 = clock()
                eng.process_block(blk, y)
                tt[i] = clock() - t0
            times[name].append(tt / 1e3)
    blocks = {k: percentiles(np.concatenate(v), period) for k, v in times.items()}
    return {"block_size": block_size, "period_us": period, "median_us": med,
            "share_of_period_pct": {k: 100 * v / period for k, v in med.items()}, "engine": blocks,
            "target_p99_pct": 10.0, "meets_target": blocks["both_on"]["p99_pct"] <= 10.0,
            "meets_target_with_auto": blocks["level_auto"]["p99_pct"] <= 10.0,
            "meets_target_with_auto_lookahead": blocks["level_auto_lookahead"]["p99_pct"] <= 10.0,
            "note": "level = flicker smoother + frame gain + frame ratio + follower over one 128-sample block; "
                    "pghi = one frame of causal RTPGHI (adds no latency); auto = one frame of auto phase "
                    "(random starts + a causal RTISI step); auto_lookahead = auto with one frame held "
                    "(--lookahead 1: + the held frame's RTISI-LA step, + 1 hop latency); input_phase = the "
                    "phase stage in input mode (it keeps the integrator's history for a switch)"}


def measure_offline(model: Path, seconds: float, large_block: int, reps: int = 3) -> list[dict]:
    """Section 3: real-time factor of ``process_signal`` at block 128 and at a large block (interleaved)."""
    rows = {}
    engines = {b: make_engine(model, block_size=b, amount=0.3, gate_db=-70.0) for b in (128, large_block)}
    x = noise_signal(seconds, next(iter(engines.values())).cfg.sample_rate, seed=5)
    elapsed: dict[int, list[float]] = {b: [] for b in engines}
    for _ in range(reps):
        for b, e in engines.items():
            e.reset()
            elapsed[b].append(_timed(lambda e=e: process_signal(e, x)))
    for b, e in engines.items():
        t = float(np.median(elapsed[b]))
        rows[b] = {"block_size": b, "frames_per_call": b // e.cfg.hop, "seconds": seconds, "elapsed_s": t,
                   "rtf": seconds / t, "rtf_all": [seconds / v for v in elapsed[b]]}
    return list(rows.values())


def measure_baselines(model: Path, seconds: float, rounds: int, block_size: int = 128) -> dict:
    """Section 4: engine (a) vs numpy+ORT per frame (b) vs numpy+torch eager per frame (c)."""
    from realtime.dsp.features import log_magnitude
    from realtime.dsp.stft import stft
    from realtime.tools import baselines as B

    e = make_engine(model, block_size=block_size, amount=0.0)
    cfg, latent = e.cfg, e.slots[0].model.latent_dim
    x = noise_signal(seconds, cfg.sample_rate, seed=6)
    pipes: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    out: dict = {"block_size": block_size, "seconds": seconds, "amount": 0.0, "notes": []}

    y_a = np.zeros(block_size, np.float32)

    def engine_fn(blk: np.ndarray) -> np.ndarray:
        e.process_block(blk, y_a)
        return y_a

    pipes["a_engine"] = engine_fn
    pipes["b_numpy_ort"] = B.NumpyOrtPipeline(model, cfg, block_size, latent).process
    module = None
    if not B.torch_available():
        out["notes"].append("(c) skipped: torch is not installed (pip install -e '.[train]')")
    else:
        try:
            module = B.torch_model_from_onnx(model)
            pipes["c_torch_eager"] = B.TorchPipeline(module, cfg, block_size, latent).process
        except ValueError as exc:
            out["notes"].append(f"(c) skipped: {exc}")
    # Warm every pipeline on silence: first-call costs (ORT arenas, torch dispatch caches) stay out of the
    # timing, and zeros leave each one in its initial state (the noise is irrelevant at amount 0).
    for fn in pipes.values():
        for _ in range(50):
            fn(np.zeros(block_size, np.float32))
    e.reset()
    ys = {k: np.zeros_like(x) for k in pipes}
    times: dict[str, list[float]] = {k: [] for k in pipes}
    n_blocks = len(x) // block_size
    per_round = max(1, n_blocks // rounds)
    clock = time.perf_counter_ns
    for start in range(0, n_blocks, per_round):
        for name, fn in pipes.items():
            y, t = ys[name], times[name]
            for i in range(start, min(start + per_round, n_blocks)):
                s = slice(i * block_size, (i + 1) * block_size)
                t0 = clock()
                y[s] = fn(x[s])
                t.append((clock() - t0) / 1e3)
    period = 1e6 * block_size / cfg.sample_rate
    ref = ys["a_engine"]
    scale = float(np.max(np.abs(ref))) or 1.0
    for name in pipes:
        us = np.asarray(times[name])
        row = percentiles(us, period)
        row["total_s"] = float(us.sum() / 1e6)
        row["rtf"] = seconds / row["total_s"]
        row["max_abs_diff_vs_a"] = float(np.max(np.abs(ys[name] - ref)))
        row["max_rel_diff_vs_a"] = row["max_abs_diff_vs_a"] / scale
        out[name] = row
    a = out["a_engine"]
    for name in pipes:
        if name != "a_engine":
            key = name.split("_")[0]
            out[f"ratio_{key}_over_a_p50"] = out[name]["p50_us"] / a["p50_us"]
            out[f"ratio_{key}_over_a_total"] = out[name]["total_s"] / a["total_s"]
    if module is not None:
        feats = log_magnitude(stft(x[: min(len(x), 256 * cfg.hop)], cfg))
        out["torch_vs_onnx_max_abs_diff"] = B.model_parity(model, module, feats, latent)
    return out


_STARTUP = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from realtime.engine.engine import Engine
t1 = time.perf_counter()
e = Engine([sys.argv[1]], block_size=128)
t2 = time.perf_counter()
e.warmup()
t3 = time.perf_counter()
x = np.zeros(128, np.float32)
y = np.zeros(128, np.float32)
e.process_block(x, y)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_model_s": t2 - t1, "warmup_s": t3 - t2, "first_block_s": t4 - t3,
                  "to_first_block_s": t4 - t0}))
"""


def measure_startup(model: Path, runs: int) -> dict:
    """Section 5: fresh interpreters to the first processed block, on an empty numba cache and on a warm one."""
    env_base = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                                           if p))
    res: dict[str, list[dict]] = {"cold": [], "warm": []}
    for _ in range(runs):  # cold and warm alternate, so background load hits both alike
        with tempfile.TemporaryDirectory(prefix="adh-numba-") as cache:
            env = dict(env_base, NUMBA_CACHE_DIR=cache)
            for kind in ("cold", "warm"):
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-c", _STARTUP, str(model)], env=env, cwd=ROOT,
                                      capture_output=True, text=True, check=True)
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                row["process_wall_s"] = time.perf_counter() - t0
                res[kind].append(row)
    out: dict = {"runs": runs, "note": "cold: NUMBA_CACHE_DIR is a fresh empty directory (every kernel compiles); "
                 "warm: a second interpreter on the same directory (kernels load from disk). Python's own .pyc "
                 "files are warm in both. to_first_block_s counts from the first import; process_wall_s adds "
                 "interpreter start and exit."}
    for kind, rows in res.items():
        out[kind] = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
    return out


REPO = Path(__file__).resolve().parents[2]
#: Whole-process targets of the command line (#13 item 3): wall seconds, or real-time factor for process 60 s.
CLI_TARGETS = {"--help": 0.2, "--version": 0.2, "info default": 0.5}


def measure_cli_startup(runs: int = 3, long_seconds: float = 60.0) -> dict:
    """Section 5b: wall time of whole ``audio-diffusion`` processes as a user starts them: ``--help``,
    ``--version``, ``info default`` and ``process`` of a 1 s and a ``long_seconds`` file (default model,
    default block), each on an empty numba cache (cold) and on a warm one; medians of ``runs``."""
    import soundfile as sf

    env_base = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                                           if p))
    with tempfile.TemporaryDirectory(prefix="adh-cli-") as work:
        work_p = Path(work)
        files = {}
        for secs in (1.0, long_seconds):
            f = work_p / f"in{secs:g}.wav"
            sf.write(str(f), noise_signal(secs, 48000), 48000, subtype="FLOAT")
            files[secs] = f
        cmds = {"--help": ["--help"], "--version": ["--version"], "info default": ["info", "default"],
                "process 1 s": ["process", str(files[1.0]), str(work_p / "o1.wav"), "--quiet"],
                f"process {long_seconds:g} s": ["process", str(files[long_seconds]), str(work_p / "o2.wav"),
                                                "--quiet"]}
        times: dict[str, dict[str, list[float]]] = {name: {"cold": [], "warm": []} for name in cmds}
        for _ in range(runs):
            with tempfile.TemporaryDirectory(prefix="adh-numba-") as cache:
                env = dict(env_base, NUMBA_CACHE_DIR=cache)
                for kind in ("cold", "warm"):  # the cold run fills the cache the warm one reads
                    for name, argv in cmds.items():
                        t0 = time.perf_counter()
                        subprocess.run([sys.executable, "-m", "realtime.cli", *argv], env=env, cwd=REPO,
                                       capture_output=True, check=True)
                        times[name][kind].append(time.perf_counter() - t0)
    rows = []
    for name, t in times.items():
        row = {"command": name, "cold_s": float(np.median(t["cold"])), "warm_s": float(np.median(t["warm"]))}
        if name.startswith("process"):
            secs = 1.0 if name == "process 1 s" else long_seconds
            row["warm_rtf"] = secs / row["warm_s"]
        rows.append(row)
    return {"runs": runs, "rows": rows, "note": "whole processes (interpreter start to exit), wall time; cold: "
            "NUMBA_CACHE_DIR empty (kernels compile), warm: the same directory again (kernels load)"}


def measure_device(model: Path, periods: Sequence[int], seconds: float) -> dict:
    """Section 6: a live duplex stream through jackd's dummy backend at each period (engine block = period)."""
    import shutil

    if shutil.which("jackd") is None:
        return {"skipped": "jackd is not installed (make setup installs jackd2)"}
    from realtime.tools.jackserver import JackServer

    rows = []
    log_dir = Path(tempfile.mkdtemp(prefix="adh-bench-jack-"))
    for p in periods:
        server = JackServer(f"adh-bench-{os.getpid()}-{p}", period=p, log_dir=log_dir)
        try:
            server.start()
        except RuntimeError as exc:
            server.stop()  # it may be up even though PortAudio did not see it
            rows.append({"period": p, "skipped": str(exc)})
            continue
        try:
            engine, s, elapsed, (lat_in, lat_out) = _live_run(model, p, seconds)
            awake = {}
            if cpuwake.available():
                with cpuwake.CpuAwake():
                    a = _live_run(model, p, seconds)[1]
                awake = {"live_awake_p50_us": a["block_us_p50"], "live_awake_p99_us": a["block_us_p99"],
                         "live_awake_p99_pct": 100 * a["cpu_share_p99"], "live_awake_xruns": a["xruns"]}
        finally:
            server.stop()
        idle = _after_idle_times(engine, p, min(seconds, 1.5))
        sr = engine.cfg.sample_rate
        algo_ms = engine.latency_ms
        rows.append({"period": p, "block_size": p, "device_in_ms": 1e3 * lat_in, "device_out_ms": 1e3 * lat_out,
                     "algorithmic_samples": engine.latency_samples, "algorithmic_ms": algo_ms,
                     "round_trip_ms": algo_ms + 1e3 * (lat_in + lat_out), "callbacks": s["callbacks"],
                     "expected_callbacks": elapsed * sr / p, "xruns": s["xruns"], "misses": s["misses"],
                     "live_p50_us": s["block_us_p50"], "live_p99_us": s["block_us_p99"],
                     "live_max_us": s["block_us_max"], "live_p99_pct": 100 * s["cpu_share_p99"], **awake, **idle})
    if all("skipped" not in x for x in rows):
        import shutil

        shutil.rmtree(log_dir, ignore_errors=True)  # keep jackd's logs only when a server failed
    return {"seconds": seconds, "rows": rows,
            "note": "round trip = latency PortAudio reports for the JACK dummy driver (input + output buffering; "
                    "a real interface adds its converter and USB latency on top) + the engine's algorithmic "
                    "latency. live_* are the callback's own block times while streaming (live_awake_*: a second run "
                    "with the CPUs held out of deep idle, when permitted). after_sleep_* are the "
                    "same engine's block times, without a server, when each block follows a sleep of one "
                    "period (as in a stream); after_sleep_awake_* the same with the CPUs held out of deep idle "
                    "(realtime.io.cpuwake, when permitted); hot_* when blocks follow each other at once."}


def _live_run(model: Path, block: int, seconds: float) -> tuple[Engine, dict, float, tuple[float, float]]:
    """Stream through the running JACK server for ``seconds``; returns the engine, its statistics
    summary, the elapsed time and the latencies PortAudio reports (input, output; seconds)."""
    from realtime.io.audio import LiveStream

    engine = Engine([model], block_size=block)  # the live configuration: deadline guard on
    engine.params.set("amount", 0.3)
    live = LiveStream(engine, "system", "system")
    live.start()
    try:
        t0 = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        latency = live.stream.latency
        summary = engine.stats.summary()
    finally:
        live.stop()
    return engine, summary, elapsed, latency


def _after_idle_times(engine: Engine, block: int, seconds: float) -> dict:
    """Block times of ``engine`` after sleeping one block period (caches and the core gone cold, as
    between callbacks) and back to back (hot), in us: the machine's share of the live figures."""
    x = noise_signal(seconds, engine.cfg.sample_rate, seed=7)
    out = np.zeros(block, np.float32)
    period = block / engine.cfg.sample_rate
    n = len(x) // block
    res = {}
    runs = [("after_sleep", period), ("hot", 0.0)]
    if cpuwake.available():
        runs.insert(1, ("after_sleep_awake", period))
    for name, gap in runs:
        awake = cpuwake.hold_if(name.endswith("_awake"))
        t = np.empty(n)
        for i in range(n):
            if gap:
                time.sleep(gap)
            t0 = time.perf_counter_ns()
            engine.process_block(x[i * block:(i + 1) * block], out)
            t[i] = time.perf_counter_ns() - t0
        if awake is not None:
            awake.close()
        res[f"{name}_p50_us"], res[f"{name}_p99_us"] = np.percentile(t, [50, 99]) / 1e3
    return res


def measure_jitter(model: Path, trials: int, seed: int = 0, length: int = 16384) -> dict:
    """Section 7: delay of impulses at random positions through random block-size sequences (block_size=None).

    Also processes one noise signal through several random block sequences and reports how far the
    outputs differ (bit-identical output would make any jitter impossible).
    """
    rng = np.random.default_rng(seed)
    out: dict = {"trials": trials, "block_size": None, "rows": []}
    for window in WINDOW_MODES:
        for mix in (0.0, 1.0):
            e = make_engine(model, block_size=None, window=window, mix=mix)
            delays = []
            for _ in range(trials):
                pos = int(rng.integers(1024, length - 4096))
                sizes = rng.integers(1, 1025, size=64)
                delays.append(_impulse_delay(e, pos, length, sizes))
            d = np.asarray(delays)
            out["rows"].append({"window": window, "mix": mix, "latency_samples": e.latency_samples,
                                "delay_min": int(d.min()), "delay_max": int(d.max()),
                                "spread_samples": int(d.max() - d.min()),
                                "all_equal_latency": bool(np.all(d == e.latency_samples))})
    e = make_engine(model, block_size=None, amount=0.5, mix=1.0, gate_db=-70.0)
    x = noise_signal(0.5, e.cfg.sample_rate, seed=7)
    outs = []
    for _ in range(5):
        e.reset()
        outs.append(run_blocks(e, x, rng.integers(1, 1025, size=64)))
    out["wet_output_max_abs_diff_across_block_sequences"] = float(max(np.max(np.abs(o - outs[0])) for o in outs))
    out["note"] = ("block-synchronous processing: frames are cut on a fixed hop grid counted in samples, "
                   "whatever the block sizes, so the delay is a constant; the outputs of different block "
                   "sequences differ only by onnxruntime's batch-size-dependent rounding (amount 0.5)")
    return out


def lsd_per_clip(clips: Sequence[np.ndarray], outputs: Sequence[np.ndarray], cfg: StftConfig) -> float:
    """Mean log-spectral distance (dB) over clips, with :func:`models.quality.lsd_db`'s conventions."""
    from models.quality import lsd_db
    from realtime.dsp.stft import stft

    return float(np.mean([lsd_db(stft(c, cfg), stft(o, cfg)) for c, o in zip(clips, outputs, strict=True)]))


def measure_quality(model: Path, seconds: float) -> dict:
    """Reconstruction LSD (amount 0, through the engine) in each window mode on held-out synthetic clips."""
    from models.quality import HELDOUT_SEED
    from models.synth import synthetic_clips

    probe = make_engine(model, warm=False)
    model_cfg = probe.slots[0].model.info.stft_config()
    clips = [c.audio.astype(np.float32) for c in synthetic_clips(seconds, HELDOUT_SEED, model_cfg.sample_rate)]
    x = np.concatenate(clips)
    bounds = np.cumsum([0] + [len(c) for c in clips])
    out: dict = {"clips": len(clips), "seconds": len(x) / model_cfg.sample_rate, "trained_window": model_cfg.window,
                 "reference_analysis": f"{model_cfg.window} STFT, n_fft {model_cfg.n_fft}, hop {model_cfg.hop}"}
    for window in WINDOW_MODES:
        e = make_engine(model, window=window)
        lat = e.latency_samples
        y = process_signal(e, np.concatenate([x, np.zeros(lat, np.float32)]))[lat:]
        ys = [y[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        out[window] = {"lsd_db": lsd_per_clip(clips, ys, model_cfg), "latency_samples": lat,
                       "latency_ms": e.latency_ms}
    out["low_latency_minus_sqrt_hann_db"] = out["low_latency"]["lsd_db"] - out["sqrt_hann"]["lsd_db"]
    return out


def relabel_hop(src: Path, dst: Path, hop: int) -> Path:
    """Copy of ``src`` declaring another hop (same weights): for timing and latency only, not quality."""
    import onnx

    proto = onnx.load(str(src))
    for p in proto.metadata_props:
        if p.key == "hop":
            p.value = str(hop)
    write_bytes(dst, proto.SerializeToString())
    return dst


def measure_low_latency(model: Path, workdir: Path, seconds: float, rounds: int) -> dict:
    """Low-latency window at hop 128 (block 128) and hop 64 (block 64): measured latency and block times."""
    hop64 = relabel_hop(model, workdir / "hop64.onnx", 64)
    rows = []
    cases = {(128, 128): model, (64, 64): hop64}
    engines = {}
    for (hop, block), path in cases.items():
        e = make_engine(path, block_size=block, window="low_latency")
        measured = {mix: [] for mix in (0.0, 1.0)}
        for mix in measured:
            e.params.set("mix", mix)
            e.reset()
            measured[mix] = [_impulse_delay(e, 4096 + off, 8192 + off) for off in (0, 37)]
        e.params.set("mix", 1.0)
        e.params.set("amount", 0.3)
        e.params.set("gate", -70.0)
        e.reset()
        engines[(hop, block)] = e
        rows.append({"hop": hop, "block_size": block, "window": "low_latency",
                     "latency_samples": e.latency_samples, "latency_ms": e.latency_ms,
                     "impulse_mix0": measured[0.0], "impulse_mix1": measured[1.0],
                     "match": all(d == e.latency_samples for v in measured.values() for d in v)})
    # timing, interleaved like section 2
    sr = next(iter(engines.values())).cfg.sample_rate
    x = noise_signal(seconds, sr, seed=8)
    per_round = len(x) // rounds
    times: dict[tuple[int, int], list[np.ndarray]] = {k: [] for k in engines}
    clock = time.perf_counter_ns
    for r in range(rounds):
        for key, e in engines.items():
            b = key[1]
            seg = x[r * per_round:(r + 1) * per_round]
            y = np.zeros(b, np.float32)
            t = np.empty(len(seg) // b)
            for i in range(t.size):
                t0 = clock()
                e.process_block(seg[i * b:(i + 1) * b], y)
                t[i] = clock() - t0
            times[key].append(t / 1e3)
    for row, key in zip(rows, engines, strict=True):
        row.update(percentiles(np.concatenate(times[key]), 1e6 * key[1] / sr))
    return {"rows": rows, "note": "hop 64 uses the benchmark model's weights relabelled for hop 64 (same network "
            "cost per frame, twice the frames per second): timing and latency only. A model trained at hop 64 "
            "is needed for sound quality at hop 64."}


def published_figures() -> list[dict]:
    """Latency of comparable systems as published (48 kHz unless stated)."""
    return [
        {"system": "RAVE (Caillon & Esling 2021)", "latency_ms": 2048 / 48,
         "figure": "2048-sample latent frame (compression ratio), ~43 ms at 48 kHz before any host buffering",
         "source": "arXiv:2111.05011; Neutone SDK issue #23 'RAVE models have delay at 2048 @ 48k' "
                   "(github.com/Neutone/neutone_sdk/issues/23)"},
        {"system": "RAVE VST (acids-ircam/rave_vst)", "latency_ms": 8192 / 48,
         "figure": "default buffer 8192 samples (~171 ms at 48 kHz)",
         "source": "github.com/acids-ircam/rave_vst (plugin buffer-size setting; not re-checked here)"},
        {"system": "nn~ (acids-ircam/nn_tilde)", "latency_ms": 4096 / 48,
         "figure": "default buffer 4096 samples (~85 ms at 48 kHz)",
         "source": "github.com/acids-ircam/nn_tilde README (buffer size argument; not re-checked here)"},
        {"system": "BRAVE (Caspe et al. 2025)", "latency_ms": 10.0,
         "figure": "< 10 ms latency with about 3 ms jitter",
         "source": "arXiv:2503.11562 (JAES); fcaspe.github.io/brave"},
        {"system": "DeepFilterNet (Schroeter et al.)", "latency_ms": 40.0,
         "figure": "20 ms STFT window; 40 ms algorithmic latency with its two-frame lookahead",
         "source": "arXiv:2110.05588 (DeepFilterNet), arXiv:2305.08227 (DeepFilterNet3)"},
        {"system": "DDSP-VST (Magenta 2022)", "latency_ms": 64.0,
         "figure": "64 ms (frame-based synthesis); the plugin reports its latency to the DAW since v1.1.0",
         "source": "magenta.tensorflow.org/ddsp-vst-blog; github.com/magenta/ddsp-vst issue #15 "
                   "(64 ms figure as given in the brief, not re-checked here)"},
    ]


def evaluate_targets(r: dict) -> list[dict]:
    """The project's targets (reported, never asserted)."""
    rows: list[dict] = []

    def add(name: str, target: str, value: float | None, ok: bool | None, unit: str = "") -> None:
        rows.append({"target": name, "goal": target, "measured": value, "unit": unit, "met": ok})

    def rows_of(section: str) -> list[dict]:
        """A section's result rows; none when it was skipped (then it is a ``{"skipped": ...}`` note)."""
        v = r.get(section, [])
        v = v.get("rows", []) if isinstance(v, dict) else v
        return [x for x in v if isinstance(x, dict) and "skipped" not in x]

    def section(name: str) -> dict:
        v = r.get(name, {})
        return v if isinstance(v, dict) else {}

    lat = {(x["window"], x["mix"]): x for x in rows_of("latency")}
    if ("sqrt_hann", 1.0) in lat:
        v = lat[("sqrt_hann", 1.0)]["chirp_samples"]
        add("default latency (48k/512/128, block 128)", "<= 512 samples", v, v <= 512, "samples")
    bt = {x["block_size"]: x for x in rows_of("block_times")}
    if 128 in bt:
        v = bt[128]["p99_pct"]
        add("p99 block time, block 128", "<= 10 % of period", v, v <= 10, "%")
    base = section("baselines")
    if "ratio_c_over_a_total" in base:
        v = base["ratio_c_over_a_total"]
        add("(c) torch eager per frame / (a) engine", ">= 10x", v, v >= 10, "x")
    batched = section("baselines_batched")
    if "ratio_c_over_a_total" in batched:
        v = batched["ratio_c_over_a_total"]
        add(f"(c)/(a) at block {batched['block_size']} (engine batches frames)", ">= 10x", v, v >= 10, "x")
    # Offline processing (``process``) runs OFFLINE_BLOCK-sample blocks; block 128's figure stays in section 3.
    for x in rows_of("offline")[-1:]:
        v = x["rtf"]
        add(f"offline RTF, block {x['block_size']} (file processing), one core", ">= 200x", v, v >= 200, "x")
    dev = {x["period"]: x for x in rows_of("device") if "live_p99_pct" in x}
    if 128 in dev:
        v = dev[128]["live_p99_pct"]
        add("p99 block time, live JACK callback, period 128", "<= 10 % of period", v, v <= 10, "%")
        if "live_awake_p99_pct" in dev[128]:
            v = dev[128]["live_awake_p99_pct"]
            add("same, CPUs held awake (live --keep-cpu-awake)", "<= 10 % of period", v, v <= 10, "%")
    for x in rows_of("cli_startup"):
        if x["command"] in CLI_TARGETS:
            goal = CLI_TARGETS[x["command"]]
            add(f"audio-diffusion {x['command']}, whole process, warm", f"< {goal} s", x["warm_s"],
                x["warm_s"] < goal, "s")
        elif x["command"] == "process 60 s":
            add("process of a 60 s file, whole process, warm", ">= 100x", x["warm_rtf"], x["warm_rtf"] >= 100, "x")
    ll = {x["hop"]: x for x in rows_of("low_latency")}
    if 128 in ll:
        v = ll[128]["latency_samples"]
        add("low-latency mode latency, hop 128", "<= 256 samples", v, v <= 256 and ll[128]["match"], "samples")
    if 64 in ll:
        v = ll[64]["latency_ms"]
        add("low-latency mode latency, hop 64", "<= 2.7 ms", v, v <= 2.7 and ll[64]["match"], "ms")
        v = ll[64]["p99_pct"]
        add("low-latency hop 64, p99 block time (block 64)", "< 25 % of period", v, v < 25, "%")
    return rows


def machine_info(model: Path, model_note: str) -> dict:
    import numba
    import onnxruntime

    info = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
            "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "numpy": np.__version__, "numba": numba.__version__,
            "onnxruntime": onnxruntime.__version__, "model": str(model), "model_note": model_note,
            "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                            text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


# ------------------------------------------------------------------------------------------------ run
def run_benchmark(opts: Options, workdir: Path | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Run every section not in ``opts.skip``; skipped sections are present with a ``skipped`` note."""
    log = log or (lambda s: None)
    own_tmp = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="adh-bench-")) if own_tmp else Path(workdir)
    try:
        return _run_sections(opts, workdir, log)
    finally:
        if own_tmp:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)


def _run_sections(opts: Options, workdir: Path, log: Callable[[str], None]) -> dict:
    model, note = resolve_bench_model(opts.model, workdir)
    report: dict = {"meta": machine_info(model, note)}
    report["meta"]["options"] = {k: (sorted(v) if isinstance(v, frozenset) else
                                     str(v) if isinstance(v, Path) else v) for k, v in opts.__dict__.items()}
    steps: list[tuple[str, Callable[[], object]]] = [
        ("latency", lambda: measure_latency(model)),
        ("block_times", lambda: measure_block_times(model, opts.block_sizes, opts.block_seconds, opts.rounds)),
        ("stages", lambda: measure_stages(model, opts.stage_calls)),
        ("sound_stages", lambda: measure_sound_stages(model, opts.stage_calls, opts.block_seconds, opts.rounds)),
        ("offline", lambda: measure_offline(model, opts.offline_seconds, opts.offline_large_block)),
        ("baselines", lambda: measure_baselines(model, opts.baseline_seconds, opts.rounds)),
        ("baselines_batched", lambda: measure_baselines(model, opts.baseline_seconds, opts.rounds, block_size=1024)),
        ("startup", lambda: measure_startup(model, opts.startup_runs)),
        ("cli_startup", lambda: measure_cli_startup(opts.startup_runs + 1, 10.0 if opts.quick else 60.0)),
        ("device", lambda: measure_device(model, opts.device_periods, opts.device_seconds)),
        ("jitter", lambda: measure_jitter(model, opts.jitter_trials)),
        ("quality", lambda: measure_quality(model, opts.quality_seconds)),
        ("low_latency", lambda: measure_low_latency(model, workdir, opts.block_seconds, opts.rounds)),
    ]
    for name, fn in steps:
        if name in opts.skip:
            report[name] = {"skipped": "not requested (--skip)"}
            continue
        log(f"[bench] {name} ...")
        t0 = time.perf_counter()
        gc.collect()
        report[name] = fn()
        report.setdefault("meta", {}).setdefault("section_seconds", {})[name] = time.perf_counter() - t0
    report["published"] = published_figures()
    report["targets"] = evaluate_targets(report)
    if hasattr(os, "getloadavg"):
        report["meta"]["load_average_end"] = list(os.getloadavg())
    return report


# ---------------------------------------------------------------------------------------------- output
def _fmt(v: object, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    if isinstance(v, list):
        return ",".join(_fmt(x, nd) for x in v)
    return str(v)


def _pair(row: dict, name: str) -> str:
    """``"p50/p99"`` of a row's ``{name}_p50_us`` and ``{name}_p99_us`` (``-`` when absent)."""
    a, b = row.get(f"{name}_p50_us"), row.get(f"{name}_p99_us")
    return "-" if a is None or b is None else f"{a:.0f}/{b:.0f}"


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in header]] + [[_fmt(c) if not isinstance(c, str) else c for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [title, "  " + "  ".join(h.rjust(w) for h, w in zip(cells[0], widths, strict=True))]
    lines += ["  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells[1:]]
    return "\n".join(lines)


def _baseline_lines(b: dict) -> list[str]:
    if "a_engine" not in b:
        return [f"4. baselines: {b['skipped']}"] if "skipped" in b else []
    names = [k for k in ("a_engine", "b_numpy_ort", "c_torch_eager") if k in b]
    frames = b["block_size"] // 128
    lines = [_table(f"4. same input and weights, block {b['block_size']} ({frames} frame(s) per block), us per block",
                    ["pipeline", "p50", "p99", "max", "p99%", "RTF", "x vs (a)", "max|y - y_a|"],
                    [[n, b[n]["p50_us"], b[n]["p99_us"], b[n]["max_us"], b[n]["p99_pct"], b[n]["rtf"],
                      b[n]["total_s"] / b["a_engine"]["total_s"], f"{b[n]['max_abs_diff_vs_a']:.2e}"]
                     for n in names])]
    if "torch_vs_onnx_max_abs_diff" in b:
        lines.append(f"   torch module vs onnxruntime, max |out_features| difference: "
                     f"{b['torch_vs_onnx_max_abs_diff']:.2e}")
    return lines + [f"   {n}" for n in b.get("notes", [])]


def format_report(r: dict) -> str:
    """The printed summary: one table per section."""
    m = r["meta"]
    parts = [f"Audio Diffusion Host benchmark, {m['date']}, {m['cpus']} CPUs ({m['processor']}), python "
             f"{m['python']}, numpy {m['numpy']}, numba {m['numba']}, onnxruntime {m['onnxruntime']}",
             f"model: {m['model']} ({m['model_note']})",
             f"load average at start {_fmt(m.get('load_average_start'), 2)}, "
             f"end {_fmt(m.get('load_average_end'), 2)}"]
    if isinstance(r.get("latency"), list):
        parts.append(_table("1. algorithmic latency, measured (block 128)",
                            ["window", "mix", "impulse (3 offsets)", "chirp", "formula", "ms", "match"],
                            [[x["window"], x["mix"], x["impulse_samples"], x["chirp_samples"], x["latency_samples"],
                              x["latency_ms"], x["match"]] for x in r["latency"]]))
    if isinstance(r.get("block_times"), list):
        parts.append(_table("2. per-block processing time (amount 0.3), us and % of the block period",
                            ["block", "period", "p50", "p99", "p99.9", "max", "p50%", "p99%", "p99.9%", "max%",
                             "over", "seconds"],
                            [[x["block_size"], x["period_us"], x["p50_us"], x["p99_us"], x["p999_us"], x["max_us"],
                              x["p50_pct"], x["p99_pct"], x["p999_pct"], x["max_pct"], x["over_period"],
                              x["seconds"]] for x in r["block_times"]]))
    st = r.get("stages", {})
    if "median_us" in st:
        parts.append(_table(f"   where the time goes at block {st['block_size']} (median us per block)",
                            list(st["median_us"]), [list(st["median_us"].values()),
                                                    [f"{v:.0f}%" for v in st["share_of_engine_pct"].values()]]))
    ss = r.get("sound_stages", {})
    if "median_us" in ss:
        parts.append(_table(f"   sound stages at block {ss['block_size']} (median us per block, % of the period)",
                            list(ss["median_us"]), [list(ss["median_us"].values()),
                                                    [f"{v:.1f}%" for v in ss["share_of_period_pct"].values()]]))
        parts.append(_table("   engine with the level stage and pghi off / on, and level with auto phase "
                            "(and look-ahead) (target: p99 <= 10 % of the period)",
                            ["stages", "p50", "p99", "p99.9", "max", "p50%", "p99%", "over"],
                            [[k, x["p50_us"], x["p99_us"], x["p999_us"], x["max_us"], x["p50_pct"], x["p99_pct"],
                              x["over_period"]] for k, x in ss["engine"].items()]))
    if isinstance(r.get("offline"), list):
        parts.append(_table("3. offline throughput (process_signal, one core)",
                            ["block", "frames/call", "seconds", "elapsed s", "RTF"],
                            [[x["block_size"], x["frames_per_call"], x["seconds"], f"{x['elapsed_s']:.3f}",
                              x["rtf"]] for x in r["offline"]]))
    for key in ("baselines", "baselines_batched"):
        parts += _baseline_lines(r.get(key, {}))
    s = r.get("startup", {})
    if "cold" in s:
        keys = ["import_s", "load_model_s", "warmup_s", "first_block_s", "to_first_block_s", "process_wall_s"]
        parts.append(_table("5. start-up to the first processed block (s)", ["cache", *keys],
                            [[k, *[f"{s[k][c]:.3f}" for c in keys]] for k in ("cold", "warm")]))
    cs = r.get("cli_startup", {})
    if "rows" in cs:
        parts.append(_table("5b. command-line start-up, whole process (wall s)", ["command", "cold", "warm", "RTF"],
                            [[x["command"], f"{x['cold_s']:.3f}", f"{x['warm_s']:.3f}",
                              f"{x['warm_rtf']:.0f}x" if "warm_rtf" in x else ""] for x in cs["rows"]]))
    d = r.get("device", {})
    if "rows" in d:
        ok = [x for x in d["rows"] if "skipped" not in x]
        parts.append(_table("6. JACK dummy round trip (reported device latency + algorithmic)",
                            ["period", "in ms", "out ms", "algo ms", "total ms", "callbacks", "expected", "xruns",
                             "misses"],
                            [[x["period"], x.get("device_in_ms"), x.get("device_out_ms"), x.get("algorithmic_ms"),
                              x.get("round_trip_ms"), x.get("callbacks"), x.get("expected_callbacks"),
                              x.get("xruns"), x.get("misses")]
                             if "skipped" not in x else [x["period"], x["skipped"]] + [""] * 7
                             for x in d["rows"]]))
        parts.append(_table("   block times (p50/p99 us): live callback, live with the CPUs held awake, and "
                            "without a server: after sleeping one period (plain / CPUs awake) and back to back",
                            ["period", "live", "p99%", "live awake", "p99%", "after sleep", "awake", "hot"],
                            [[x["period"], _pair(x, "live"), x.get("live_p99_pct"), _pair(x, "live_awake"),
                              x.get("live_awake_p99_pct"), _pair(x, "after_sleep"), _pair(x, "after_sleep_awake"),
                              _pair(x, "hot")] for x in ok]))
    elif d:
        parts.append(f"6. device: {d.get('skipped')}")
    j = r.get("jitter", {})
    if "rows" in j:
        parts.append(_table(f"7. jitter: {j['trials']} impulses at random positions, random block sizes 1..1024",
                            ["window", "mix", "latency", "min delay", "max delay", "spread", "all equal"],
                            [[x["window"], x["mix"], x["latency_samples"], x["delay_min"], x["delay_max"],
                              x["spread_samples"], x["all_equal_latency"]] for x in j["rows"]]))
        parts.append(f"   wet output (amount 0.5) across 5 random block sequences: max |difference| "
                     f"{j['wet_output_max_abs_diff_across_block_sequences']:.2e}")
    q = r.get("quality", {})
    if "sqrt_hann" in q:
        parts.append(_table(f"   window-mode quality cost: LSD of the amount-0 reconstruction, {q['clips']} held-out "
                            f"synthetic clips ({q['seconds']:.1f} s)",
                            ["window", "latency", "ms", "LSD dB"],
                            [[w, q[w]["latency_samples"], q[w]["latency_ms"], f"{q[w]['lsd_db']:.3f}"]
                             for w in WINDOW_MODES]))
    ll = r.get("low_latency", {})
    if "rows" in ll:
        parts.append(_table("   low-latency window: measured latency and block time",
                            ["hop", "block", "latency", "ms", "impulse", "match", "p50 us", "p99 us", "p99%",
                             "p99.9%"],
                            [[x["hop"], x["block_size"], x["latency_samples"], f"{x['latency_ms']:.2f}",
                              x["impulse_mix0"] + x["impulse_mix1"], x["match"], x["p50_us"], x["p99_us"],
                              x["p99_pct"], x["p999_pct"]] for x in ll["rows"]]))
    parts.append(_table("8. published figures of comparable systems", ["system", "latency ms", "figure"],
                        [[x["system"], x["latency_ms"], x["figure"]] for x in r.get("published", [])]))
    parts.append(_table("targets (reported, not asserted)", ["target", "goal", "measured", "met"],
                        [[x["target"], x["goal"], f"{_fmt(x['measured'])} {x['unit']}", x["met"]]
                         for x in r.get("targets", [])]))
    return "\n\n".join(parts)


def plot_report(r: dict, path: Path) -> Path:
    """A 2x2 figure: block-time percentiles, latency comparison, baselines, block-time histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(11, 7.5), dpi=80)
    bt = r.get("block_times")
    if isinstance(bt, list) and bt:
        bs = [x["block_size"] for x in bt]
        for key, label in (("p50_pct", "p50"), ("p99_pct", "p99"), ("p999_pct", "p99.9"), ("max_pct", "max")):
            ax[0, 0].plot(bs, [x[key] for x in bt], "o-", label=label)
        ax[0, 0].axhline(100, color="k", lw=0.8, ls="--")
        ax[0, 0].axhline(10, color="g", lw=0.8, ls=":", label="10 % target")
        ax[0, 0].set(xscale="log", yscale="log", xlabel="block size (samples, 48 kHz)",
                     ylabel="% of block period", title="per-block processing time")
        ax[0, 0].set_xticks(bs, [str(b) for b in bs])
        ax[0, 0].legend(fontsize=8)
    names, vals, colors = [], [], []
    for x in r.get("latency", []) if isinstance(r.get("latency"), list) else []:
        if x["mix"] == 1.0:
            names.append(f"this host, {x['window']} (algo)")
            vals.append(x["latency_ms"])
            colors.append("C0")
    for x in r.get("device", {}).get("rows", []):
        if "round_trip_ms" in x:
            names.append(f"this host + JACK p{x['period']}")
            vals.append(x["round_trip_ms"])
            colors.append("C2")
    for x in r.get("published", []):
        names.append(x["system"].split(" (")[0])
        vals.append(x["latency_ms"])
        colors.append("C7")
    if names:
        ax[0, 1].barh(names, vals, color=colors)
        ax[0, 1].set(xscale="log", xlabel="latency (ms)", title="latency vs published systems")
        ax[0, 1].tick_params(axis="y", labelsize=7)
        ax[0, 1].invert_yaxis()
    b = r.get("baselines", {})
    pipes = [k for k in ("a_engine", "b_numpy_ort", "c_torch_eager") if k in b]
    if pipes:
        ax[1, 0].bar(pipes, [b[k]["p50_us"] for k in pipes], color=["C0", "C1", "C3"][: len(pipes)], label="p50")
        ax[1, 0].scatter(pipes, [b[k]["p99_us"] for k in pipes], color="k", zorder=3, label="p99")
        ax[1, 0].axhline(b["a_engine"]["period_us"], color="k", ls="--", lw=0.8, label="block period")
        ax[1, 0].set(yscale="log", ylabel="us per 128-sample block", title="same model, three pipelines")
        ax[1, 0].legend(fontsize=8)
    ll = r.get("low_latency", {}).get("rows", [])
    rows = ([x for x in bt if x["block_size"] in (64, 128)] if isinstance(bt, list) else []) + ll
    if rows:
        labels = [f"{x.get('window', 'sqrt_hann')}\nhop {x.get('hop', 128)} blk {x['block_size']}" for x in rows]
        ax[1, 1].bar(labels, [x["p50_pct"] for x in rows], label="p50")
        ax[1, 1].scatter(labels, [x["p99_pct"] for x in rows], color="k", zorder=3, label="p99")
        ax[1, 1].scatter(labels, [x["p999_pct"] for x in rows], color="r", marker="x", zorder=3, label="p99.9")
        ax[1, 1].set(ylabel="% of block period", title="block time by window mode / hop")
        ax[1, 1].tick_params(axis="x", labelsize=7)
        ax[1, 1].legend(fontsize=8)
    m = r.get("meta", {})
    fig.suptitle(f"Audio Diffusion Host benchmark, {m.get('date', '')}, {m.get('cpus')} CPUs, "
                 f"model {Path(m.get('model', '')).name}", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def _jsonable(o: object) -> object:
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def write_report(r: dict, out_dir: Path, plot: bool = True) -> list[Path]:
    """Write ``latest.json`` (and ``latest.png``) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / "latest.json"
    write_text(js, json.dumps(_jsonable(r), indent=1) + "\n")
    paths = [js]
    if plot:
        paths.append(plot_report(r, out_dir / "latest.png"))
    return paths


def main(argv: list[str] | None = None) -> int:
    """``audio-diffusion bench``: measure latency and speed; print a table, write JSON + PNG."""
    p = argparse.ArgumentParser(prog="audio-diffusion bench", description=main.__doc__)
    p.add_argument("--quick", action="store_true", help="less audio per measurement (under a minute)")
    p.add_argument("--model", default=None, help="model to benchmark (default: models/pretrained/default.onnx)")
    p.add_argument("--out-dir", default=str(DEFAULT_OUT), help="where latest.json and latest.png go")
    p.add_argument("--skip", default="", help=f"comma-separated sections to skip: {', '.join(MEASURED)}")
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    skip = frozenset(s.strip() for s in args.skip.split(",") if s.strip())
    unknown = skip - set(MEASURED)
    if unknown:
        print(f"error: unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(MEASURED)}",
              file=sys.stderr)
        return 2
    if args.model and not Path(args.model).exists():
        print(f"error: model file not found: {args.model}", file=sys.stderr)
        return 2
    opts = Options.quick_preset() if args.quick else Options()
    opts = replace(opts, model=Path(args.model) if args.model else None, skip=skip)
    t0 = time.perf_counter()
    report = run_benchmark(opts, log=lambda s: print(s, file=sys.stderr, flush=True))
    report["meta"]["total_seconds"] = time.perf_counter() - t0
    print(format_report(report))
    paths = write_report(report, Path(args.out_dir), plot=not args.no_plot)
    print(f"\nwrote {', '.join(str(x) for x in paths)} in {report['meta']['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
