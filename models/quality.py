"""Quality metrics for a model run offline on held-out audio, and a baseline it has to beat.

A model is applied the way the engine applies it: STFT, log-magnitude features, the model at amount 0,
new magnitudes with the *input* phase, overlap-add. Resynthesis with the input phase forgives a lot
(re-analysis smooths magnitude errors), so every reconstruction number is printed next to a plain
baseline: the input magnitude smoothed over 8 bins. A model that does not beat it learned nothing.

Metrics: log-spectral distance (LSD, dB; lower is better), spectral convergence (lower is better), and
for restoration models the SNR improvement against a clean reference at fixed input SNRs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from models.synth import HELDOUT_TEXTS, Clip, add_noise, speech_clips, synthetic_clips
from realtime.config import LOOKAHEADS, StftConfig
from realtime.dsp.features import EPS, log_magnitude, magnitude_from_features
from realtime.dsp.stft import istft, istft_delay, stft

#: A frame processor: raw log-magnitude features ``[frames, n_bins]`` in, same out.
FeatureFn = Callable[[np.ndarray], np.ndarray]
#: Frames more than this far (dB) below the clip's loudest frame are ignored by LSD (silence).
LSD_RANGE_DB = 60.0
#: Dynamic range of the LSD: bins more than this below the reference's loudest bin count as the floor.
TOP_DB = 80.0
BASELINE_BINS = 8
HELDOUT_SEED = 20_240_601


# ------------------------------------------------------------------------------------------ metrics
def lsd_db(ref: np.ndarray, est: np.ndarray, top_db: float | None = TOP_DB,
           range_db: float = LSD_RANGE_DB) -> float:
    """Log-spectral distance (dB) between two complex or magnitude spectrograms ``[frames, bins]``.

    Per frame ``sqrt(mean_k (20 log10(max(|R|, fl) / max(|E|, fl)))^2)``, averaged over frames whose energy
    is within ``range_db`` of the loudest reference frame. The floor ``fl`` is ``top_db`` below the
    reference's loudest bin (like ``librosa.amplitude_to_db(top_db=80)``): differences deeper than that
    are inaudible, and an absolute floor would make the score depend on the playback level. With
    ``top_db=None`` the floor is the feature floor ``1e-5`` (about 140 dB below a full-scale sine).
    """
    r, e = np.abs(ref).astype(np.float64), np.abs(est).astype(np.float64)
    fl = EPS if top_db is None else max(float(r.max()) * 10 ** (-top_db / 20), 1e-30)
    d = 20.0 * np.log10(np.maximum(r, fl) / np.maximum(e, fl))
    per_frame = np.sqrt(np.mean(d ** 2, axis=1))
    energy = np.sum(r ** 2, axis=1)
    keep = energy > energy.max() * 10 ** (-range_db / 10) if energy.max() > 0 else np.ones_like(energy, bool)
    return float(per_frame[keep].mean())


def spectral_convergence(ref: np.ndarray, est: np.ndarray) -> float:
    """``|| |R| - |E| ||_F / || |R| ||_F`` (0 is perfect)."""
    r, e = np.abs(ref).astype(np.float64), np.abs(est).astype(np.float64)
    return float(np.linalg.norm(r - e) / max(np.linalg.norm(r), 1e-20))


def snr_db(clean: np.ndarray, est: np.ndarray) -> float:
    """Signal-to-noise ratio of ``est`` against the reference ``clean`` (dB)."""
    c, e = clean.astype(np.float64), est.astype(np.float64)
    return float(10.0 * np.log10(np.sum(c ** 2) / max(np.sum((e - c) ** 2), 1e-30)))


# --------------------------------------------------------------------------------------- processing
def smooth_bins(features: np.ndarray, width: int = BASELINE_BINS) -> np.ndarray:
    """Baseline processor: the magnitude averaged over ``width`` neighbouring bins (as features)."""
    mag = magnitude_from_features(features).astype(np.float64)
    kernel = np.ones(width) / width
    pad = np.pad(mag, ((0, 0), (width // 2, width - 1 - width // 2)), mode="edge")
    smoothed = np.stack([np.convolve(row, kernel, mode="valid") for row in pad])
    return np.log(smoothed + EPS).astype(np.float32)


def process_signal(x: np.ndarray, fn: FeatureFn, cfg: StftConfig) -> np.ndarray:
    """Run ``fn`` over ``x`` as the engine would (input phase kept); output aligned with ``x``."""
    d = istft_delay(cfg)
    # pad so the frames that complete the last samples exist, then undo the synthesis delay
    xp = np.concatenate([x.astype(np.float32), np.zeros(d + cfg.hop, np.float32)])
    spec = stft(xp, cfg)
    feats = log_magnitude(spec)
    mag_in = np.abs(spec)
    mag_out = magnitude_from_features(fn(feats))
    ratio = np.where(mag_in > 1e-20, mag_out / np.maximum(mag_in, 1e-20), 0.0)
    y = istft((spec * ratio).astype(np.complex64), cfg, xp.size)
    return y[d:d + x.size]


def onnx_fn(path: str | Path, threads: int = 1) -> tuple[FeatureFn, dict[str, str]]:
    """A :data:`FeatureFn` running an exported model at amount 0 over all frames in one call (a contract-2
    model's state starts from zeros and runs through them; optional inputs at their defaults), and the
    model's metadata. ``threads`` is kept for callers; the engine's loader runs one thread."""
    from realtime.engine.model import EffectModel, open_session

    meta = dict(open_session(path).get_modelmeta().custom_metadata_map)
    model = EffectModel(path)

    def fn(features: np.ndarray) -> np.ndarray:
        n = features.shape[0]
        res = model.run_all(np.ascontiguousarray(features, np.float32), np.zeros((n, 1), np.float32),
                            np.zeros((n, model.latent_dim), np.float32))
        return res["out_features"]

    return fn, meta


def torch_fn(model) -> FeatureFn:
    """A :data:`FeatureFn` running a :class:`models.vae.FrameVAE` (CPU, amount 0)."""
    import torch

    def fn(features: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            f = torch.from_numpy(np.ascontiguousarray(features, np.float32))
            n = f.shape[0]
            out, _ = model(f, torch.zeros(n, 1), torch.zeros(n, model.latent_dim))
        return out.numpy()

    return fn


# --------------------------------------------------------------------------------------- evaluation
def reconstruction_metrics(fn: FeatureFn, clips: Sequence[Clip], cfg: StftConfig) -> dict[str, float]:
    """Mean LSD (80 dB range, and absolute floor: ``lsd_abs``) and spectral convergence of ``fn`` and of
    the 8-bin smoothing baseline (``*_baseline``) over ``clips``."""
    rows: dict[str, list[float]] = {}
    for clip in clips:
        ref = stft(clip.audio, cfg)
        for key, proc in (("", fn), ("_baseline", smooth_bins)):
            est = stft(process_signal(clip.audio, proc, cfg), cfg)
            rows.setdefault(f"lsd{key}_db", []).append(lsd_db(ref, est))
            rows.setdefault(f"lsd_abs{key}_db", []).append(lsd_db(ref, est, top_db=None))
            rows.setdefault(f"sc{key}", []).append(spectral_convergence(ref, est))
    return {k: round(float(np.mean(v)), 4) for k, v in rows.items()}


def denoise_metrics(fn: FeatureFn, clips: Sequence[Clip], cfg: StftConfig, snrs: Sequence[float] = (0.0, 10.0),
                    colors: Sequence[str] = ("white", "pink"), seed: int = HELDOUT_SEED) -> dict[str, float]:
    """SNR improvement (dB, output SNR minus input SNR) at each input SNR, per noise colour and mean."""
    out: dict[str, float] = {}
    for snr in snrs:
        gains = []
        for color in colors:
            rng = np.random.default_rng([seed, int(snr * 10) + 1000, len(color)])
            g = [snr_db(c.audio, process_signal(y, fn, cfg)) - snr_db(c.audio, y)
                 for c in clips for y in [add_noise(c.audio, snr, color, rng)]]
            out[f"snri_{color}_{snr:g}db"] = round(float(np.mean(g)), 3)
            gains.extend(g)
        out[f"snri_{snr:g}db"] = round(float(np.mean(gains)), 3)
    return out


def heldout_clips(seconds: float, seed: int, cfg: StftConfig) -> dict[str, list[Clip]]:
    """Held-out synthetic instruments and espeak-ng speech (unseen sentences), by category."""
    sets = {"synthetic": synthetic_clips(seconds, seed, cfg.sample_rate)}
    speech = speech_clips(seconds, seed, cfg.sample_rate, HELDOUT_TEXTS)
    if speech:
        sets["speech"] = speech
    return sets


def split_by_category(clips: Sequence[Clip]) -> dict[str, list[Clip]]:
    """``speech`` clips, recorded ``files``, and everything else as ``synthetic``."""
    sets: dict[str, list[Clip]] = {}
    for c in clips:
        name = c.kind if c.kind in ("speech", "file") else "synthetic"
        sets.setdefault(name, []).append(c)
    return sets


def evaluate(fn: FeatureFn, kind: str, sets: dict[str, list[Clip]], cfg: StftConfig) -> dict[str, float]:
    """All metrics for a model of ``kind`` on each category of clips, flat ``{"<metric>_<set>": value}``.

    Restoration models also report their LSD on clean input (how much they damage clean audio).
    """
    metrics: dict[str, float] = {}
    for name, clips in sets.items():
        if not clips:
            continue
        parts = reconstruction_metrics(fn, clips, cfg)
        if kind == "restoration":
            # on clean input the smoothing baseline is beside the point: report the damage only
            parts = {f"clean_{k}": v for k, v in parts.items() if "baseline" not in k}
            parts.update(denoise_metrics(fn, clips, cfg))
        metrics.update({f"{k}_{name}": v for k, v in parts.items()})
    return metrics


def format_metrics(metrics: dict[str, float]) -> str:
    """One metric per line, aligned."""
    width = max((len(k) for k in metrics), default=0)
    return "\n".join(f"{k:<{width}}  {v:8.3f}" for k, v in sorted(metrics.items()))


# ------------------------------------------------------------------------- listening through the engine
AMOUNTS = (0.0, 0.25, 0.5, 0.75, 1.0)
LISTEN_SEED = 1


def listener_material(seed: int = HELDOUT_SEED, sample_rate: int = 48_000) -> dict[str, np.ndarray]:
    """Held-out files a listener would try (none of it in the training corpus; each peaks below -6 dBFS):
    ``speech`` (espeak-ng, held-out sentences; absent without espeak-ng), ``chords``, ``pad`` (a slow
    sustained chord), ``sweep`` (log sine sweep 50 Hz - 16 kHz) and ``instruments`` (tones, plucks,
    bells, noise, hits at their own levels)."""
    from models.synth import chord

    sr = sample_rate
    rng = np.random.default_rng([seed, 77])
    out: dict[str, np.ndarray] = {}

    def norm(x: np.ndarray, peak_db: float) -> np.ndarray:
        return (x * (10 ** (peak_db / 20) / max(float(np.max(np.abs(x))), 1e-12))).astype(np.float32)

    def gap(s: float) -> np.ndarray:
        return np.zeros(int(s * sr), np.float32)

    speech = speech_clips(8.0, seed, sr, HELDOUT_TEXTS)
    if speech:
        out["speech"] = norm(np.concatenate([c for cl in speech for c in (cl.audio, gap(0.15))]), -8.0)
    out["chords"] = norm(np.concatenate([c for _ in range(5) for c in (chord(int(1.5 * sr), sr, rng), gap(0.1))]),
                         -8.0)
    n = 6 * sr
    env = np.minimum(1.0, np.minimum(np.arange(n) / (1.0 * sr), (n - np.arange(n)) / (1.5 * sr)))
    pad = chord(n, sr, rng)
    out["pad"] = norm(pad / max(np.max(np.abs(pad)), 1e-12) * env, -10.0)
    t = np.arange(n) / sr
    f0, f1 = 50.0, 16000.0
    k = np.log(f1 / f0) / (n / sr)
    sweep = np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k) * np.minimum(1.0, np.minimum(t, n / sr - t) / 0.05)
    out["sweep"] = norm(sweep, -12.0)
    inst = synthetic_clips(8.0, seed + 1, sr)
    out["instruments"] = norm(np.concatenate([c for cl in inst for c in (cl.audio, gap(0.05))]), -7.0)
    return out


def run_engine(model, x: np.ndarray, knobs: dict[str, float], *, block: int | None = None,
               seed: int = LISTEN_SEED, lookahead: int = 0) -> dict:
    """Run ``x`` through the real engine (one model, no deadline guard, ``lookahead`` frames of phase
    look-ahead) with ``knobs`` set.

    Returns ``{"y": output aligned with x, "raw": unaligned output, "synth": the unaligned overlap-added
    wet before the level follower, "requested": |out_spec| frames the synthesis was asked for (frame ``j``
    is frame ``j + delay_frames`` of ``synth``'s analysis), "delay_frames", "stats"}``.
    """
    from realtime.config import OFFLINE_BLOCK
    from realtime.engine.engine import Engine

    block = block or OFFLINE_BLOCK
    engine = Engine([model], block_size=block, seed=seed, deadline_share=float("inf"), lookahead=lookahead)
    engine.params.apply(knobs)
    engine.reset()
    lat = engine.latency_samples
    cfg = engine.cfg
    total = x.size + lat + cfg.n_fft
    total += (-total) % block
    xp = np.zeros(total, np.float32)
    xp[: x.size] = x
    raw = np.zeros_like(xp)
    synth = np.zeros_like(xp)
    req = np.zeros((total // cfg.hop + 1, cfg.n_bins), np.float32)
    f = 0
    for start in range(0, total, block):
        engine.process_block(xp[start:start + block], raw[start:start + block])
        synth[start:start + block] = engine.synthesized[:block]
        nf = engine.last_frames
        req[f:f + nf] = np.abs(engine.stft.out_spec[:nf])
        f += nf
    # out_spec holds the frames as synthesis received them: their offset is the STFT's alone (a held frame
    # and a model's own delay move what the frames hold, not where synthesis puts them)
    delay, rem = divmod(engine.stft.latency_samples, cfg.hop)
    return {"y": raw[lat:lat + x.size], "raw": raw, "synth": synth, "requested": req[:f],
            "delay_frames": delay if rem == 0 else None, "stats": engine.stats.summary(), "cfg": cfg}


def listen(model, files: dict[str, np.ndarray], amounts: Sequence[float] = AMOUNTS,
           knobs: dict[str, float] | None = None, seed: int = LISTEN_SEED, lookahead: int = 0) -> dict:
    """Every listener metric per amount over ``files``; also the outputs (for the spectrogram picture).

    Returns ``{"rows": [{"amount", "level_median_db", "level_p95_db", "level_max_db", "clicks_per_min",
    "limiter_hits_per_min", "peak_guard_per_min" (the level stage's peak guard engaging),
    "hnr_change_mean_db", "hnr_change_worst_db", "consistency_db", "lsd_db"}],
    "outputs": {amount: {name: y}}}``.
    """
    from realtime.engine.model import EffectModel

    if not isinstance(model, EffectModel):
        model = EffectModel(model)
    sr = model.info.sample_rate
    rows, outputs = [], {}
    minutes = sum(x.size for x in files.values()) / sr / 60.0
    for a in amounts:
        k = dict(knobs or {})
        k["amount"] = float(a)
        diffs, clicks, hits, guards, hnr, cons, lsd = [], 0, 0, 0, [], [], []
        outputs[a] = {}
        for name, x in files.items():
            r = run_engine(model, x, k, seed=seed, lookahead=lookahead)
            y = r["y"]
            outputs[a][name] = y
            w = max(int(LEVEL_WINDOW_S * sr), 1)
            m = min(x.size, y.size) // w
            ex = np.mean(x[: m * w].astype(np.float64).reshape(m, w) ** 2, axis=1)
            ey = np.mean(y[: m * w].astype(np.float64).reshape(m, w) ** 2, axis=1)
            keep = _db(ex) > LEVEL_FLOOR_DB
            diffs.append(np.abs(_db(ey[keep], 1e-14) - _db(ex[keep])))
            clicks += len(click_events(x, y, sr))
            hits += r["stats"]["limiter_hits"]
            guards += r["stats"]["peak_guard_hits"]
            h_in, h_out = hnr_change(x, y, sr)
            hnr.append(h_out - h_in)
            if r["delay_frames"] is not None:
                cons.append(consistency_db(r["requested"], r["synth"], r["cfg"], r["delay_frames"]))
            lsd.append(lsd_db(stft(x, r["cfg"]), stft(y, r["cfg"])))
        d = np.concatenate(diffs) if diffs else np.zeros(1)
        rows.append({"amount": float(a), "level_median_db": float(np.median(d)),
                     "level_p95_db": float(np.percentile(d, 95)), "level_max_db": float(d.max()),
                     "clicks_per_min": clicks / minutes, "limiter_hits_per_min": hits / minutes,
                     "peak_guard_per_min": guards / minutes,
                     "hnr_change_mean_db": float(np.mean(hnr)), "hnr_change_worst_db": float(np.min(hnr)),
                     "consistency_db": float(np.mean(cons)) if cons else float("nan"),
                     "lsd_db": float(np.mean(lsd))})
    return {"rows": rows, "outputs": outputs, "minutes": minutes}


LISTEN_COLUMNS = (("amount", "amount", "{:.2f}"), ("level_median_db", "level med", "{:.2f}"),
                  ("level_p95_db", "level p95", "{:.2f}"), ("level_max_db", "level max", "{:.1f}"),
                  ("clicks_per_min", "clicks/min", "{:.1f}"), ("limiter_hits_per_min", "limiter/min", "{:.1f}"),
                  ("peak_guard_per_min", "guard/min", "{:.0f}"),
                  ("hnr_change_mean_db", "HNR d mean", "{:+.2f}"), ("hnr_change_worst_db", "HNR d worst", "{:+.2f}"),
                  ("consistency_db", "consist.", "{:.2f}"), ("lsd_db", "LSD", "{:.2f}"))


def format_listen(rows: Sequence[dict]) -> str:
    """The listener table (dB unless named otherwise), one row per amount."""
    head = " | ".join(h for _, h, _ in LISTEN_COLUMNS)
    lines = [f"| {head} |", "|" + "|".join("---" for _ in LISTEN_COLUMNS) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt.format(r[k]) for k, _, fmt in LISTEN_COLUMNS) + " |")
    return "\n".join(lines)


def spectrogram_png(path: str | Path, files: dict[str, np.ndarray], outputs: dict, sr: int,
                    title: str = "") -> Path:
    """A grid of spectrograms (rows: the input, then each amount; columns: the files), 0-16 kHz, dB."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(files)
    rows = [("input", files)] + [(f"amount {a:g}", outputs[a]) for a in outputs]
    fig, axes = plt.subplots(len(rows), len(names), figsize=(3.2 * len(names), 1.7 * len(rows)), squeeze=False,
                             constrained_layout=True)
    n_fft, hop = 1024, 256
    for i, (label, sig) in enumerate(rows):
        for j, name in enumerate(names):
            x = np.asarray(sig[name], np.float64)
            frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
            p = _db(np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2 / n_fft, 1e-14)
            top = int(16000 * n_fft / sr)
            ax = axes[i, j]
            ax.imshow(p[:, :top].T, origin="lower", aspect="auto", vmin=-110, vmax=-10, cmap="magma",
                      extent=(0, x.size / sr, 0, 16))
            ax.tick_params(labelsize=6)
            if i == 0:
                ax.set_title(name, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{label}\nkHz", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _parse_set(items: Sequence[str]) -> dict[str, float]:
    """``NAME=VALUE`` pairs (``NAME@SLOT`` for other slots; a named choice such as ``phase=pghi`` is
    looked up in :data:`realtime.engine.params.CHOICES`) as a :meth:`Params.apply` dict."""
    from realtime.engine import params as P

    out: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise P.ParamError(f"--set {item!r}: use NAME=VALUE")
        name = key.partition("@")[0]
        choices = getattr(P, "CHOICES", {}).get(name)
        if choices and value in choices:
            out[key] = float(choices.index(value))
            continue
        try:
            out[key] = float(value)
        except ValueError:
            raise P.ParamError(f"--set {item!r}: {value!r} is not a number"
                               + (f" or one of {', '.join(choices)}" if choices else "")) from None
    P.Params().apply(out)  # validate every key and range now (one-line errors)
    return out


def main(argv: list[str] | None = None) -> int:
    """``audio-diffusion quality MODEL.onnx``: listener metrics per amount through the real engine
    (level tracking, clicks, limiter hits, harmonic-to-noise change, STFT consistency, LSD), a table or
    ``--json``, and a PNG of spectrograms; ``--reconstruction`` prints the amount-0 reconstruction metrics
    against the smoothing baseline instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--restore" in argv:  # realistic-noise restoration report: models/restore_quality.py
        from models.restore_quality import main as restore_main

        return restore_main([a for a in argv if a != "--restore"])
    p = argparse.ArgumentParser(prog="audio-diffusion quality", description=main.__doc__)
    p.add_argument("model", help="exported .onnx model")
    p.add_argument("--data", default="synthetic",
                   help="'synthetic' (held-out speech, chords, pad, sweep, instruments) or a folder of audio files")
    p.add_argument("--seconds", type=float, default=30.0, help="held-out audio per category (--reconstruction)")
    p.add_argument("--seed", type=int, default=HELDOUT_SEED, help="held-out material seed")
    p.add_argument("--amounts", default=",".join(f"{a:g}" for a in AMOUNTS), help="comma-separated amounts")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="any knob of the engine (realtime/engine/params.py), e.g. --set phase=pghi; repeatable")
    p.add_argument("--lookahead", type=int, choices=LOOKAHEADS, default=0,
                   help="frames of phase look-ahead (1: auto phase refines each frame with the next; +1 hop latency)")
    p.add_argument("--png", default=None, help="spectrogram picture path (default: quality-<model>.png here; "
                   "'none' for no picture)")
    p.add_argument("--reconstruction", action="store_true",
                   help="amount-0 reconstruction metrics against the 8-bin smoothing baseline (the old report)")
    p.add_argument("--timing", action="store_true",
                   help="also time inference (1 thread, 1 and 8 frames per call) with the engine's loader")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = p.parse_args(argv)
    from realtime.engine.contract import ModelError
    from realtime.engine.model import EffectModel
    from realtime.errors import ParamError

    try:
        loaded = EffectModel(args.model)  # the engine's own validation, with its one-line messages
        knobs = _parse_set(args.set)
        amounts = [float(a) for a in args.amounts.split(",") if a.strip()]
    except (ModelError, ParamError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.reconstruction:
        return _main_reconstruction(args, loaded)
    sr = loaded.info.sample_rate
    if args.data == "synthetic":
        files = listener_material(args.seed, sr)
    else:
        from models.data import NoAudioError, load_folder

        try:
            files = {f"file{i + 1}": c.audio for i, c in enumerate(load_folder(args.data, sr))}
        except NoAudioError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    res = listen(loaded, files, amounts, knobs, lookahead=args.lookahead)
    report = {"model": str(args.model), "kind": loaded.info.kind, "files": {k: round(v.size / sr, 2) for k, v in
                                                                           files.items()},
              "knobs": knobs, "lookahead": args.lookahead, "rows": res["rows"]}
    if args.png != "none":
        png = Path(args.png or f"quality-{Path(args.model).stem}.png")
        spectrogram_png(png, files, res["outputs"], sr, f"{Path(args.model).name} {' '.join(args.set)}".strip())
        report["png"] = str(png)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print(f"{loaded.info.name} ({loaded.info.kind}) through the engine, {res['minutes'] * 60:.1f} s held-out: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in report["files"].items())
              + (f"; knobs {knobs}" if knobs else ""))
        print(format_listen(res["rows"]))
        if "png" in report:
            print(f"spectrograms: {report['png']}")
    return 0


def _main_reconstruction(args, loaded) -> int:
    fn, meta = onnx_fn(args.model)
    cfg = StftConfig(int(meta.get("sample_rate", 48000)), int(meta.get("n_fft", 512)), int(meta.get("hop", 128)),
                     meta.get("window", "sqrt_hann"))
    kind = meta.get("model_kind", "diffusion")
    if args.data == "synthetic":
        sets = heldout_clips(args.seconds, args.seed, cfg)
    else:
        from models.data import NoAudioError, load_folder

        try:
            sets = {"file": load_folder(args.data, cfg.sample_rate)}
        except NoAudioError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    metrics = evaluate(fn, kind, sets, cfg)
    if args.timing:
        from realtime.engine.model import measure_inference

        for n, t in measure_inference(loaded, (1, 8), repeats=2000).items():
            metrics[f"infer_{n}frame_median_us"] = round(t["median_us"], 1)
            metrics[f"infer_{n}frame_p99_us"] = round(t["p99_us"], 1)
    if args.json:
        print(json.dumps(metrics, sort_keys=True))
    else:
        print(f"{meta.get('name', Path(args.model).stem)} ({kind}), held-out: "
              + ", ".join(f"{k} {len(v)} clips" for k, v in sets.items()))
        print(format_metrics(metrics))
    return 0




# ---------------------------------------------------------------------------------- listener metrics
#: Level tracking: windows of this length where the input is above LEVEL_FLOOR_DB (dBFS, RMS).
LEVEL_WINDOW_S = 0.1
LEVEL_FLOOR_DB = -50.0
#: Click detector: energy above CLICK_CUTOFF_HZ in CLICK_FRAME-sample frames, against the median of
#: +-CLICK_NEIGHBOURS frames; a jump of CLICK_JUMP_DB there, where the input's own jump stays below it.
CLICK_CUTOFF_HZ = 6000.0
CLICK_FRAME = 128
CLICK_NEIGHBOURS = 50
CLICK_JUMP_DB = 15.0
#: ... and exceeds the input's jump by this much (an onset the input has too is not a click), at a
#: high-band level above CLICK_FLOOR_DB (dBFS mean square over the frame: a 2.7 ms burst above 6 kHz at
#: -70 dBFS is at the threshold of hearing even at loud playback (0 dBFS = 100 dB SPL); below it the
#: detector would count jumps in the decoder's inaudible noise floor).
CLICK_MARGIN_DB = 6.0
CLICK_FLOOR_DB = -70.0
#: ... and is sudden: at least CLICK_ONSET_DB above each of the CLICK_ONSET_FRAMES frames before it (a
#: click is an impulse; a swell of the high band over tens of milliseconds, as when the amount knob is
#: swept up in half a second, is not one, though its level can outrun the +-50-frame median), and
#: CLICK_MARGIN_DB more sudden than the input at the same frame: an onset the input makes just as fast is
#: the player's (measured on the shipped default: every event the median test alone flagged, 1-8 per
#: amount, was a consonant or a hit whose input rose as fast, within 2 dB, at the same frame; the output's
#: high band around it was only duller than the input's, so its jump over the median was larger).
CLICK_ONSET_DB = 6.0
CLICK_ONSET_FRAMES = 3
#: Harmonic-to-noise ratio: frames, band, and the +-bins around the input's spectral peaks.
HNR_N_FFT = 4096
HNR_BAND_HZ = (50.0, 8000.0)
HNR_PEAK_BINS = 3


def _db(x: np.ndarray | float, floor: float = 1e-12) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(np.asarray(x, np.float64), floor))


def level_tracking(x: np.ndarray, y: np.ndarray, sr: int, window_s: float = LEVEL_WINDOW_S,
                   floor_db: float = LEVEL_FLOOR_DB) -> dict[str, float]:
    """Absolute level difference (dB) of ``y`` against ``x`` (aligned) over windows where ``x`` is loud
    enough: ``{"level_median_db", "level_p95_db", "level_max_db", "level_windows"}``."""
    w = max(int(round(window_s * sr)), 1)
    n = min(x.size, y.size) // w
    if n == 0:
        return {"level_median_db": 0.0, "level_p95_db": 0.0, "level_max_db": 0.0, "level_windows": 0}
    ex = np.mean(x[:n * w].astype(np.float64).reshape(n, w) ** 2, axis=1)
    ey = np.mean(y[:n * w].astype(np.float64).reshape(n, w) ** 2, axis=1)
    keep = _db(ex) > floor_db
    d = np.abs(_db(ey[keep], 1e-14) - _db(ex[keep]))
    if d.size == 0:
        return {"level_median_db": 0.0, "level_p95_db": 0.0, "level_max_db": 0.0, "level_windows": 0}
    return {"level_median_db": float(np.median(d)), "level_p95_db": float(np.percentile(d, 95)),
            "level_max_db": float(d.max()), "level_windows": int(d.size)}


def high_band_db(x: np.ndarray, sr: int, cutoff_hz: float = CLICK_CUTOFF_HZ,
                 frame: int = CLICK_FRAME) -> np.ndarray:
    """Mean-square level (dBFS) above ``cutoff_hz`` of each ``frame``-sample frame: a zero-phase high-pass
    of the whole signal (so a low-frequency onset leaks nothing into the band) with a raised-cosine edge
    1 kHz wide around the cutoff (a brick wall would ring for milliseconds before a click)."""
    x = np.asarray(x, np.float64)
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(x.size, 1.0 / sr)
    edge = np.clip((f - (cutoff_hz - 500.0)) / 1000.0, 0.0, 1.0)
    spec *= 0.5 - 0.5 * np.cos(np.pi * edge)
    hp = np.fft.irfft(spec, x.size)
    n = x.size // frame
    return _db(np.mean(hp[: n * frame].reshape(n, frame) ** 2, axis=1), 1e-14)


def _running_median(e: np.ndarray, half: int) -> np.ndarray:
    pad = np.pad(e, half, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(pad, 2 * half + 1), axis=1)


def _sudden_rise(e: np.ndarray) -> np.ndarray:
    """Per frame, how far (dB) it stands above the lowest of the :data:`CLICK_ONSET_FRAMES` frames before."""
    before = np.full(e.size, np.inf)
    for d in range(1, CLICK_ONSET_FRAMES + 1):
        before[d:] = np.minimum(before[d:], e[d:] - e[:-d])
    return before


def click_events(x: np.ndarray, y: np.ndarray, sr: int) -> np.ndarray:
    """Start frames (of :data:`CLICK_FRAME` samples) of click events in ``y`` that ``x`` (aligned) lacks.

    A frame is a click frame when its high-band level (:func:`high_band_db`) jumps at least
    :data:`CLICK_JUMP_DB` over the median of its +-:data:`CLICK_NEIGHBOURS` frames while the input's
    jump there stays below that and below the output's by :data:`CLICK_MARGIN_DB`, the band is above
    :data:`CLICK_FLOOR_DB` and the rise is sudden (:data:`CLICK_ONSET_DB` over the
    :data:`CLICK_ONSET_FRAMES` frames before, and :data:`CLICK_MARGIN_DB` more than the input's rise at
    that frame); consecutive click frames are one event.
    """
    n = min(x.size, y.size)
    ey, ex = high_band_db(y[:n], sr), high_band_db(x[:n], sr)
    if ey.size == 0:
        return np.zeros(0, np.int64)
    jy = ey - _running_median(ey, CLICK_NEIGHBOURS)
    jx = ex - _running_median(ex, CLICK_NEIGHBOURS)
    rise_y, rise_x = _sudden_rise(ey), _sudden_rise(ex)
    rise_x[~np.isfinite(rise_x)] = -np.inf  # the first frame has no frames before: nothing to compare
    sudden = (rise_y >= CLICK_ONSET_DB) & (rise_y - rise_x >= CLICK_MARGIN_DB)
    flag = ((jy >= CLICK_JUMP_DB) & (jx < CLICK_JUMP_DB) & (jy - jx >= CLICK_MARGIN_DB) & (ey > CLICK_FLOOR_DB)
            & sudden)
    starts = np.flatnonzero(flag & ~np.concatenate([[False], flag[:-1]]))
    return starts.astype(np.int64)


def _hnr_frames(x: np.ndarray, n_fft: int = HNR_N_FFT) -> np.ndarray:
    hop = n_fft // 4
    w = np.hanning(n_fft)
    n = (x.size - n_fft) // hop + 1
    if n <= 0:
        return np.zeros((0, n_fft // 2 + 1))
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), n_fft)[::hop][:n]
    return np.abs(np.fft.rfft(frames * w, axis=1)) ** 2


def harmonic_mask(power: np.ndarray, sr: int, n_fft: int = HNR_N_FFT) -> tuple[np.ndarray, np.ndarray]:
    """``(harmonic, band)`` boolean masks ``[frames, bins]``: bins within +-:data:`HNR_PEAK_BINS` of the
    spectral peaks of ``power`` (local maxima over that span, 10 dB above the median of +-32 bins and
    within 50 dB of the frame's strongest peak), and the 50 Hz-8 kHz band they are counted in."""
    k = HNR_PEAK_BINS
    lo, hi = (int(f * n_fft / sr) for f in HNR_BAND_HZ)
    band = np.zeros(power.shape[1], bool)
    band[lo:hi + 1] = True
    p = _db(power, 1e-20)
    pad = np.pad(p, ((0, 0), (k, k)), mode="edge")
    local_max = np.max(np.lib.stride_tricks.sliding_window_view(pad, 2 * k + 1, axis=1), axis=2)
    pad32 = np.pad(p, ((0, 0), (32, 32)), mode="edge")
    med = np.median(np.lib.stride_tricks.sliding_window_view(pad32, 65, axis=1)[:, ::1], axis=2)
    top = np.max(np.where(band, p, -np.inf), axis=1, keepdims=True)
    peaks = (p >= local_max) & (p > med + 10.0) & (p > top - 50.0) & band
    harm = np.zeros_like(peaks)
    for d in range(-k, k + 1):
        harm |= np.roll(peaks, d, axis=1)
    return harm & band, np.broadcast_to(band, power.shape)


def hnr_change(x: np.ndarray, y: np.ndarray, sr: int) -> tuple[float, float]:
    """Harmonic-to-noise ratio (dB) of the input and of the output (aligned), both measured on the
    input's spectral peaks (:func:`harmonic_mask`) over frames within 40 dB of the loudest: a noise floor
    rising between the harmonics, or harmonics smeared, lowers the output's. Returns ``(hnr_in, hnr_out)``."""
    n = min(x.size, y.size)
    px, py = _hnr_frames(x[:n]), _hnr_frames(y[:n])
    if px.shape[0] == 0:
        return 0.0, 0.0
    harm, band = harmonic_mask(px, sr)
    e = np.sum(np.where(band, px, 0.0), axis=1)
    use = (e > e.max() * 1e-4) & harm.any(axis=1)
    if not use.any():
        return 0.0, 0.0
    noise = band & ~harm

    def ratio(p: np.ndarray) -> float:
        h = np.sum(np.where(harm[use], p[use], 0.0))
        r = np.sum(np.where(noise[use], p[use], 0.0))
        return float(_db(h / max(r, 1e-30), 1e-30))

    return ratio(px), ratio(py)


def consistency_db(requested: np.ndarray, produced: np.ndarray, cfg: StftConfig, delay_frames: int) -> float:
    """STFT consistency: LSD (dB) between the magnitudes the engine asked the synthesis for
    (``requested[frames, bins]``) and the magnitudes of the audio it produced, re-analysed with the same
    STFT (``produced`` is that audio, unaligned; frame ``j`` of ``requested`` is frame ``j + delay_frames``
    of its analysis). 0 when the spectrogram the model asked for is one a signal can have."""
    spec = np.abs(stft(produced, cfg))
    n = min(requested.shape[0], spec.shape[0] - delay_frames)
    return lsd_db(requested[:n], spec[delay_frames:delay_frames + n])


if __name__ == "__main__":
    raise SystemExit(main())
