"""Offline processing of signals and files through the very engine the live stream uses.

Block by block, with the same block size and seed, the output is bit-identical to what the live
stream produces for the same input (the deadline guard is off offline: a slow disk or a busy machine
must not change the result).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from realtime.config import OFFLINE_BLOCK
from realtime.engine.engine import Engine
from realtime.engine.model import EffectModel
from realtime.engine.params import Params
from realtime.errors import AudioFileError  # noqa: F401 - raised here, re-exported


def process_signal(engine: Engine, signal: np.ndarray, block_size: int | None = None,
                   progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Run a mono float signal through ``engine`` block by block; returns float32 of the same length.

    The output is *not* latency-compensated: sample ``i`` of the output answers input sample
    ``i - engine.latency_samples`` (pad the input with that many zeros to get its tail out).
    """
    x = np.ascontiguousarray(signal, dtype=np.float32)
    out = np.zeros_like(x)
    b = block_size or engine.block_size or 128
    for start in range(0, len(x), b):
        end = min(start + b, len(x))
        if engine.block_size and end - start != engine.block_size:
            # A short last block would break a fixed-block engine's latency; pad it with silence.
            tmp_in = np.zeros(engine.block_size, np.float32)
            tmp_in[: end - start] = x[start:end]
            tmp_out = np.zeros_like(tmp_in)
            engine.process_block(tmp_in, tmp_out)
            out[start:end] = tmp_out[: end - start]
        else:
            engine.process_block(x[start:end], out[start:end])
        if progress is not None:
            progress(end, len(x))
    return out


def _read(path: Path, sample_rate: int) -> tuple[np.ndarray, int]:
    import soundfile as sf

    if not path.exists():
        raise AudioFileError(f"{path}: no such file")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise AudioFileError(f"{path}: not a readable audio file ({exc}); use wav, flac, ogg or aiff") from None
    if data.shape[0] == 0:
        raise AudioFileError(f"{path}: the file holds no samples")
    if sr != sample_rate:
        import soxr

        data = soxr.resample(data, sr, sample_rate, quality="HQ").astype(np.float32)
    return data, sr


#: Amount a slot starts at when none is given: effects at a moderate 0.3; stateful (contract v2) restoration
#: models, whose amount is the attenuation limit, at full strength; contract-v1 denoisers at 0 (their best).
EFFECT_AMOUNT = 0.3


def default_amount(model: str | Path | EffectModel) -> float:
    """The amount a model starts at when the user gives none (see :data:`EFFECT_AMOUNT`)."""
    info = model.info if isinstance(model, EffectModel) else EffectModel(model).info
    if info.kind != "restoration":
        return EFFECT_AMOUNT
    return 1.0 if info.contract_version >= 2 else 0.0


def process_file(inp: str | Path, out: str | Path, models: Sequence[str | Path], *,
                 amount: float | Sequence[float] | None = 0.3,
                 noise_rate: float = 2.0, mix: float = 1.0, seed: int = 0, block_size: int = OFFLINE_BLOCK,
                 window: str | None = None, align: bool = False, params: Params | None = None,
                 show_progress: bool = True) -> dict:
    """Process an audio file with a model chain and write the result (each channel its own engine).

    Returns a small report: latency, duration, real-time factor (audio seconds of all channels per wall
    second; channels run in parallel, one thread each, up to the CPU count), misses. With ``align`` the
    output is shifted back by the engine latency so it lines up with the input.
    """
    import time

    import soundfile as sf

    inp, out = Path(inp), Path(out)
    first = EffectModel(models[0])
    sr = first.info.sample_rate
    data, in_sr = _read(inp, sr)
    if params is None:
        params = Params()
        if amount is None:  # each model at its own default (a denoiser at full strength)
            amount = [default_amount(first)] + [default_amount(m) for m in models[1:]]
        for slot in range(len(models)):
            params.set("amount", amount[slot] if isinstance(amount, Sequence) else amount, slot)
            params.set("noise_rate", noise_rate, slot)
        params.set("mix", mix)
    n_ch = data.shape[1]
    progress = _progress(f"{n_ch} channel{'s' if n_ch > 1 else ''}") if show_progress else None
    done = [0] * n_ch

    def run_channel(ch: int) -> tuple[np.ndarray, int, int]:
        # Each channel gets its own engine and model copy (a model's bound buffers serve one caller), so
        # channels run in parallel threads: numba kernels and onnxruntime release the GIL.
        model = first if ch == 0 else EffectModel(first.path)
        engine = Engine([model, *models[1:]], block_size=block_size, window=window, seed=seed, params=params,
                        deadline_share=math.inf)
        lat = engine.latency_samples
        x = data[:, ch]
        if align:
            x = np.concatenate([x, np.zeros(lat, np.float32)])

        def step(d: int, total: int) -> None:
            done[ch] = d
            if progress is not None:
                progress(sum(done), total * n_ch)

        y = process_signal(engine, x, block_size, step)
        return (y[lat:] if align else y), engine.stats.summary()["misses"], lat

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, min(n_ch, os.cpu_count() or 1))) as pool:
        results = list(pool.map(run_channel, range(n_ch)))
    elapsed = time.perf_counter() - t0
    if show_progress:
        sys.stderr.write("\n")
    channels = [r[0] for r in results]
    misses = sum(r[1] for r in results)
    latency = results[0][2]
    y = np.stack(channels, axis=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        sf.write(str(out), y, sr, subtype="FLOAT" if out.suffix.lower() == ".wav" else None)
    except Exception as exc:
        raise AudioFileError(f"{out}: cannot write ({exc})") from None
    seconds = len(data) / sr
    return {"input": str(inp), "output": str(out), "input_rate": in_sr, "rate": sr, "seconds": seconds,
            "latency_samples": latency, "latency_ms": 1e3 * latency / sr, "aligned": align,
            "realtime_factor": seconds * data.shape[1] / max(elapsed, 1e-9), "misses": misses}


def _progress(label: str) -> Callable[[int, int], None]:
    state = {"last": -1}

    def show(done: int, total: int) -> None:
        pct = int(100 * done / max(total, 1))
        if pct != state["last"]:
            state["last"] = pct
            bar = "#" * (pct // 4)
            sys.stderr.write(f"\r{label} [{bar:<25}] {pct:3d}%")
            sys.stderr.flush()

    return show
