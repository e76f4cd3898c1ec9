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
from realtime.config import StftConfig
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
    """A :data:`FeatureFn` running an exported model at amount 0, and the model's metadata."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    latent = int(meta.get("latent_dim", sess.get_inputs()[2].shape[1]))

    def fn(features: np.ndarray) -> np.ndarray:
        n = features.shape[0]
        feeds = {"features": np.ascontiguousarray(features, np.float32),
                 "amount": np.zeros((n, 1), np.float32), "noise": np.zeros((n, latent), np.float32)}
        return sess.run(["out_features"], feeds)[0]

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


def main(argv: list[str] | None = None) -> int:
    """``audio-diffusion quality MODEL.onnx``: metrics on held-out synthetic audio and speech."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--restore" in argv:  # realistic-noise restoration report: models/restore_quality.py
        from models.restore_quality import main as restore_main

        return restore_main([a for a in argv if a != "--restore"])
    p = argparse.ArgumentParser(prog="audio-diffusion quality", description=main.__doc__)
    p.add_argument("model", help="exported .onnx model")
    p.add_argument("--data", default="synthetic", help="'synthetic' (default) or a folder of audio files")
    p.add_argument("--seconds", type=float, default=30.0, help="held-out audio per category (synthetic)")
    p.add_argument("--seed", type=int, default=HELDOUT_SEED)
    p.add_argument("--timing", action="store_true",
                   help="also time inference (1 thread, 1 and 8 frames per call) with the engine's loader")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = p.parse_args(argv)
    from realtime.engine.contract import ModelError
    from realtime.engine.model import EffectModel

    try:
        loaded = EffectModel(args.model)  # the engine's own validation, with its one-line messages
        fn, meta = onnx_fn(args.model)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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


if __name__ == "__main__":
    raise SystemExit(main())
