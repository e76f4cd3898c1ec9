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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.config import OFFLINE_BLOCK
from realtime.engine.engine import Engine
from realtime.engine.model import EffectModel
from realtime.engine.params import Params
from realtime.errors import AudioFileError, OutputFileError
from realtime.fileio import atomic_path, audio_container, check_writable, refuse_overwrite_input, supported_text


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
    """The file as float32 ``(frames, channels)`` at ``sample_rate`` (soxr), and the file's own rate."""
    import soundfile as sf

    _check_input(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise AudioFileError(f"{path}: not a readable audio file ({exc}); use {supported_text()}") from None
    if data.shape[0] == 0:
        raise AudioFileError(f"{path}: the file holds no samples")
    if sr != sample_rate:
        import soxr

        data = soxr.resample(data, sr, sample_rate, quality="HQ").astype(np.float32)
    return data, sr


def _check_input(path: Path) -> None:
    if not path.exists():
        raise AudioFileError(f"{path}: no such file")
    if path.is_dir():
        raise AudioFileError(f"{path} is a folder; give an audio file ({supported_text()})")
    if not os.access(path, os.R_OK):
        raise AudioFileError(f"{path}: permission denied (cannot read the file)")


#: Amount a slot starts at when none is given: effects at a moderate 0.3; stateful (contract v2) restoration
#: models, whose amount is the attenuation limit, at full strength; contract-v1 denoisers at 0 (their best).
EFFECT_AMOUNT = 0.3


def default_amount(model: str | Path | EffectModel) -> float:
    """The amount a model starts at when the user gives none (see :data:`EFFECT_AMOUNT`)."""
    if isinstance(model, EffectModel):
        info = model.info
    else:  # the metadata alone: no probe, no warm-up (this runs before every command's engine is built)
        from realtime.engine.contract import parse_metadata
        from realtime.engine.model import open_session

        info = parse_metadata(open_session(model).get_modelmeta().custom_metadata_map, model)
    if info.kind != "restoration":
        return EFFECT_AMOUNT
    return 1.0 if info.contract_version >= 2 else 0.0


# Sample formats of 16 bits or fewer get TPDF dither when the engine's float output is reduced to them.
_DITHER_BITS = {"PCM_16": 16, "PCM_S8": 8, "PCM_U8": 8}
_SUBTYPE_TEXT = {"PCM_16": "16-bit", "PCM_24": "24-bit", "PCM_32": "32-bit int", "FLOAT": "32-bit float",
                 "DOUBLE": "64-bit float", "PCM_S8": "8-bit", "PCM_U8": "8-bit", "VORBIS": "Vorbis",
                 "MPEG_LAYER_III": "mp3"}


@dataclass(frozen=True)
class OutputFormat:
    """What a processed file is written as: container, sample rate, sample format (subtype), channels."""

    container: str
    rate: int
    subtype: str
    channels: int
    frames: int = 0

    def describe(self) -> str:
        ch = {1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels} channels")
        return f"{self.rate} Hz {_SUBTYPE_TEXT.get(self.subtype, self.subtype)} {ch} {self.container}"


def plan_output(inp: str | Path, out: str | Path, rate: int | None = None, subtype: str | None = None
                ) -> tuple[OutputFormat, OutputFormat]:
    """The input's format and the output's: by default the input's rate, channels and sample format, in the
    container the output's extension names (a sample format the container cannot hold becomes its default).
    ``rate``/``subtype`` override. Checks everything before any processing; raises :class:`AudioFileError`."""
    import soundfile as sf

    inp, out = Path(inp), Path(out)
    _check_input(inp)
    try:
        info = sf.info(str(inp))
    except Exception as exc:  # noqa: BLE001 - soundfile raises several types for unreadable files
        raise AudioFileError(f"{inp}: not a readable audio file ({exc}); use {supported_text()}") from None
    src = OutputFormat(info.format, int(info.samplerate), info.subtype, int(info.channels), int(info.frames))
    container = audio_container(out)
    if rate is not None and not (isinstance(rate, int) and 8000 <= rate <= 384000):
        raise AudioFileError(f"--rate {rate}: give a sample rate in Hz between 8000 and 384000")
    if subtype is not None:
        subtype = subtype.upper()
        if not sf.check_format(container, subtype):
            raise AudioFileError(f"--subtype {subtype}: {container} cannot hold it; choose one of "
                                 f"{', '.join(sf.available_subtypes(container))}")
    elif sf.check_format(container, src.subtype):
        subtype = src.subtype
    else:
        subtype = sf.default_subtype(container)
    return src, OutputFormat(container, rate or src.rate, subtype, src.channels, src.frames)


def changes(src: OutputFormat, dst: OutputFormat) -> str:
    """What differs between the input's and the output's format, in words (``""`` when nothing)."""
    parts = []
    if src.rate != dst.rate:
        parts.append(f"rate {src.rate} -> {dst.rate} Hz")
    if src.subtype != dst.subtype:
        parts.append(f"sample format {_SUBTYPE_TEXT.get(src.subtype, src.subtype)} -> "
                     f"{_SUBTYPE_TEXT.get(dst.subtype, dst.subtype)}")
    if src.container != dst.container:
        parts.append(f"container {src.container} -> {dst.container}")
    return ", ".join(parts)


def quantize_dithered(y: np.ndarray, subtype: str, seed: int = 0) -> np.ndarray:
    """Float samples to int16 carrying ``subtype``'s resolution, with TPDF dither of +-1 LSB (seeded:
    the same file comes out the same). Other subtypes: float32 unchanged (libsndfile converts)."""
    bits = _DITHER_BITS.get(subtype)
    if bits is None:
        return np.ascontiguousarray(y, np.float32)
    q = float(2 ** (bits - 1))
    rng = np.random.default_rng(seed)
    tpdf = rng.random(y.shape, dtype=np.float32) - rng.random(y.shape, dtype=np.float32)
    v = np.clip(np.round(y.astype(np.float64) * q + tpdf), -q, q - 1)
    return (v * (32768.0 / q)).astype(np.int16)


def write_audio(out: str | Path, y: np.ndarray, fmt: OutputFormat, seed: int = 0) -> None:
    """Write ``y`` (float, ``(frames, channels)``) atomically in ``fmt`` (dithered when 16 bits or fewer)."""
    import soundfile as sf

    out = Path(out)
    data = quantize_dithered(y, fmt.subtype, seed)
    with atomic_path(out) as tmp:
        try:
            sf.write(str(tmp), data, fmt.rate, subtype=fmt.subtype, format=fmt.container)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - libsndfile reports a full disk and others as RuntimeError
            raise OutputFileError(f"cannot write {out}: {exc}; the previous file (if any) is unchanged") from None
        if fmt.container == "WAV" and fmt.subtype in ("FLOAT", "DOUBLE"):
            complete_float_wav_header(tmp)


def complete_float_wav_header(path: str | Path) -> bool:
    """Give a float WAV's ``fmt`` chunk the 2-byte extension size (``cbSize = 0``) the WAV spec asks of every
    non-PCM format. libsndfile writes a 16-byte ``fmt`` for IEEE float, and sox then warns "wave header missing
    extended part of fmt chunk". Rewrites the file in place; returns whether it changed anything."""
    import struct

    path = Path(path)
    raw = path.read_bytes()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        return False
    chunks, pos, changed = [], 12, False
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        body = raw[pos + 8:pos + 8 + size]
        if cid == b"fmt " and size == 16 and struct.unpack("<H", body[:2])[0] == 3:  # WAVE_FORMAT_IEEE_FLOAT
            body, changed = body + b"\x00\x00", True
        chunks.append(cid + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b""))
        pos += 8 + size + (size % 2)
    if changed:
        payload = b"WAVE" + b"".join(chunks)
        path.write_bytes(b"RIFF" + struct.pack("<I", len(payload)) + payload)
    return changed


_BYTES = {"PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8, "PCM_S8": 1, "PCM_U8": 1}


def _check_space(out: Path, src: OutputFormat, dst: OutputFormat) -> None:
    """Refuse before processing when an uncompressed output cannot fit on its disk."""
    import shutil

    width = _BYTES.get(dst.subtype)
    if width is None or dst.container not in ("WAV", "AIFF"):
        return
    need = int(src.frames * dst.rate / max(src.rate, 1)) * dst.channels * width
    free = shutil.disk_usage(out.parent).free
    if need > free:
        raise OutputFileError(f"{out}: needs about {need / 1e6:.2f} MB, the disk has {free / 1e6:.2f} MB free; "
                              "nothing was written")


class _Stop(Exception):
    """Raised in a channel's worker thread when the main thread was interrupted."""


def process_file(inp: str | Path, out: str | Path, models: Sequence[str | Path], *,
                 amount: float | Sequence[float] | None = 0.3,
                 noise_rate: float = 2.0, mix: float = 1.0, seed: int = 0, block_size: int = OFFLINE_BLOCK,
                 window: str | None = None, align: bool = False, params: Params | None = None,
                 show_progress: bool = True, rate: int | None = None, subtype: str | None = None,
                 lookahead: int = 0) -> dict:
    """Process an audio file with a model chain and write the result (each channel its own engine).

    The output keeps the input's sample rate, channels and sample format unless ``rate``/``subtype`` say
    otherwise, in the container of ``out``'s extension; it is written atomically and never over the input.
    Every check (input readable, output not the input, folder writable, formats) runs before processing.

    Returns a small report: latency, duration, real-time factor (audio seconds of all channels per wall
    second; channels run in parallel, one thread each, up to the CPU count), misses, formats. With ``align``
    the output is shifted back by the engine latency so it lines up with the input.
    """
    import threading
    import time

    inp, out = Path(inp), Path(out)
    _check_input(inp)
    refuse_overwrite_input(inp, out)
    if block_size is not None and (not isinstance(block_size, int) or not 1 <= block_size <= 1 << 20):
        raise AudioFileError(f"--blocksize {block_size}: give a whole number of samples from 1 to {1 << 20}")
    first = EffectModel(models[0])
    src_fmt, out_fmt = plan_output(inp, out, rate, subtype)
    check_writable(out)
    _check_space(out, src_fmt, out_fmt)
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
    show_progress = show_progress and sys.stderr.isatty()  # a bar belongs on a terminal, never in a pipe or log
    progress = _progress(f"{n_ch} channel{'s' if n_ch > 1 else ''}") if show_progress else None
    done = [0] * n_ch
    stop = threading.Event()

    def run_channel(ch: int) -> tuple[np.ndarray, int, int]:
        # Each channel gets its own engine and model copy (a model's bound buffers serve one caller), so
        # channels run in parallel threads: numba kernels and onnxruntime release the GIL.
        model = first if ch == 0 else EffectModel(first.path)
        engine = Engine([model, *models[1:]], block_size=block_size, window=window, seed=seed, params=params,
                        deadline_share=math.inf, lookahead=lookahead)
        lat = engine.latency_samples
        x = data[:, ch]
        if align:
            x = np.concatenate([x, np.zeros(lat, np.float32)])

        def step(d: int, total: int) -> None:
            if stop.is_set():
                raise _Stop
            done[ch] = d
            if progress is not None:
                progress(sum(done), total * n_ch)

        y = process_signal(engine, x, block_size, step)
        return (y[lat:] if align else y), engine.stats.summary()["misses"], lat

    t0 = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=max(1, min(n_ch, os.cpu_count() or 1)))
    try:
        futures = [pool.submit(run_channel, ch) for ch in range(n_ch)]
        results = [f.result() for f in futures]
    except BaseException:
        stop.set()  # Ctrl-C or an error: the workers stop at their next block, nothing is written
        raise
    finally:
        pool.shutdown(wait=True)
        if show_progress:
            sys.stderr.write("\n")
    elapsed = time.perf_counter() - t0
    channels = [r[0] for r in results]
    misses = sum(r[1] for r in results)
    latency = results[0][2]
    y = np.stack(channels, axis=1)
    if out_fmt.rate != sr:
        import soxr

        y = soxr.resample(y, sr, out_fmt.rate, quality="HQ").astype(np.float32)
    write_audio(out, y, out_fmt, seed)
    seconds = len(data) / sr
    return {"input": str(inp), "output": str(out), "input_rate": in_sr, "rate": sr, "output_rate": out_fmt.rate,
            "seconds": seconds, "latency_samples": latency, "latency_ms": 1e3 * latency / sr, "aligned": align,
            "realtime_factor": seconds * data.shape[1] / max(elapsed, 1e-9), "misses": misses,
            "input_format": src_fmt.describe(), "output_format": out_fmt.describe(),
            "changes": changes(src_fmt, out_fmt)}


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
