"""``python -m models.fd MODEL.onnx``: how far a diffusion model's output strays from real audio, by amount.

Held-out material (never trained on: other seeds, unseen sentences, SoundFont programs kept out of training):
speech, chords, sampled instruments, a pad and a 20 Hz-16 kHz sine sweep. Each file runs through the real
engine (offline, block 1024, seed 1) at each amount and, for a model with the ``latent_mode`` input, in both
modes (``prior`` and the contract-1 noise ``mix``). Measured:

* **FD**: Frechet distance between Gaussian fits of 40-band log-mel frames (2048-point frames, hop 512,
  natural-log power floored 80 dB below each file's loudest band; frames where the input is within 60 dB of
  its loudest) of all outputs and of all inputs.
* **LSD** to the input (dB, :func:`models.quality.lsd_db`), and the reconstruction LSD at amount 0 per class.
* **HNR change**: harmonic-to-noise ratio (energy within +-3 bins of the input's spectral peaks over the
  energy between them; 4096-point frames, 50 Hz-8 kHz) of the output minus the input's, per file.
* **Sweep level**: output minus input level (dB) in 1/3-octave windows along the sweep, worst absolute value.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from realtime.config import StftConfig

SR = 48000
N_MELS = 40
MEL_FFT, MEL_HOP = 2048, 512
HNR_FFT = 4096
AMOUNTS = (0.0, 0.25, 0.5, 0.75, 1.0)


# -- held-out material -------------------------------------------------------------------------------
def sweep(seconds: float = 6.0, f0: float = 20.0, f1: float = 16000.0, level: float = 0.3) -> np.ndarray:
    """Exponential sine sweep ``f0`` -> ``f1`` at a constant level."""
    t = np.arange(int(seconds * SR)) / SR
    k = math.log(f1 / f0)
    phase = 2 * np.pi * f0 * seconds / k * (np.exp(t / seconds * k) - 1)
    return (level * np.sin(phase)).astype(np.float32)


def pad(seconds: float = 6.0, seed: int = 5) -> np.ndarray:
    """A soft sustained chord of detuned harmonic voices (slow attack and release)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    out = np.zeros_like(t)
    for f in (220.0, 277.2, 329.6, 440.0):
        for det in (-0.3, 0.3):
            ph = rng.uniform(0, 2 * np.pi)
            for h in range(1, 12):
                if f * h > 12000:
                    break
                out += np.sin(2 * np.pi * (f + det) * h * t + ph * h) / h ** 1.5
    env = np.minimum(1, t / 0.8) * np.minimum(1, (seconds - t) / 0.8)
    out *= env
    return (0.25 * out / np.abs(out).max()).astype(np.float32)


def heldout_set(seconds: float = 8.0) -> dict[str, np.ndarray]:
    """``{name: mono float32}``: speech, chords, instruments (held-out programs), pad, sweep."""
    from models import instruments
    from models.synth import HELDOUT_TEXTS, speech_clips, synthetic_clips

    seed = 20_240_601
    out: dict[str, np.ndarray] = {}
    talk = speech_clips(seconds, seed, SR, HELDOUT_TEXTS)
    if talk:
        out["speech"] = np.concatenate([c.audio for c in talk])
    chords = [c for c in synthetic_clips(6 * seconds, seed, SR) if c.kind in ("chord", "tone", "pluck")]
    out["synth"] = np.concatenate([c.audio for c in chords])[:int(seconds * SR)]
    inst = instruments.instrument_clips(seconds, seed, SR, heldout=True)
    if inst:
        out["instruments"] = np.concatenate([c.audio for c in inst])
    out["pad"] = pad()
    out["sweep"] = sweep()
    return out


# -- metrics --------------------------------------------------------------------------------------------
def _frames(x: np.ndarray, n: int, hop: int) -> np.ndarray:
    if len(x) < n:
        x = np.pad(x, (0, n - len(x)))
    count = 1 + (len(x) - n) // hop
    idx = np.arange(n)[None, :] + hop * np.arange(count)[:, None]
    return x[idx] * np.hanning(n)[None, :]


def mel_filters(n_fft: int = MEL_FFT, n_mels: int = N_MELS, fmin: float = 20.0, fmax: float = 20000.0) -> np.ndarray:
    """HTK-style triangular mel filterbank ``[n_mels, n_fft // 2 + 1]``."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1 / SR)
    fb = np.zeros((n_mels, freqs.size))
    for i in range(n_mels):
        lo, c, hi = edges[i], edges[i + 1], edges[i + 2]
        fb[i] = np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0, None)
    return fb


_MEL = mel_filters()


def mel_power(x: np.ndarray) -> np.ndarray:
    """40-band mel power frames ``[frames, 40]``."""
    p = np.abs(np.fft.rfft(_frames(x.astype(np.float64), MEL_FFT, MEL_HOP), axis=1)) ** 2
    return p @ _MEL.T


def logmel_pair(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel frames (natural log of power) of a reference and an output, both floored 80 dB below the
    reference's loudest band and kept only where the reference frame is within 60 dB of its loudest: silence
    and inaudible floors would otherwise dominate the statistics."""
    r, e = mel_power(ref), mel_power(est)
    n = min(len(r), len(e))
    r, e = r[:n], e[:n]
    floor = max(float(r.max()) * 1e-8, 1e-20)
    energy = r.sum(axis=1)
    keep = energy > energy.max() * 1e-6
    return np.log(np.maximum(r[keep], floor)), np.log(np.maximum(e[keep], floor))


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussian fits of two frame sets ``[n, d]``."""
    from scipy import linalg

    m1, m2 = a.mean(axis=0), b.mean(axis=0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(c1 @ c2)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * covmean))


def hnr_db(ref: np.ndarray, est: np.ndarray) -> float:
    """Harmonic-to-noise ratio of ``est`` at the spectral peaks of ``ref`` (dB, frames of audible ``ref``)."""
    from scipy.signal import find_peaks

    fr, fe = _frames(ref.astype(np.float64), HNR_FFT, HNR_FFT // 4), _frames(est.astype(np.float64), HNR_FFT,
                                                                               HNR_FFT // 4)
    n = min(len(fr), len(fe))
    pr = np.abs(np.fft.rfft(fr[:n], axis=1)) ** 2
    pe = np.abs(np.fft.rfft(fe[:n], axis=1)) ** 2
    freqs = np.fft.rfftfreq(HNR_FFT, 1 / SR)
    band = (freqs >= 50) & (freqs <= 8000)
    energy = pr[:, band].sum(axis=1)
    keep = energy > energy.max() * 1e-4
    ratios = []
    for f in np.flatnonzero(keep):
        spec = pr[f, band]
        peaks, _ = find_peaks(10 * np.log10(spec + 1e-20), prominence=10.0)
        if len(peaks) == 0:
            continue
        near = np.zeros(spec.size, bool)
        for p in peaks:
            near[max(0, p - 3):p + 4] = True
        e = pe[f, band]
        h, nz = e[near].sum(), e[~near].sum()
        ratios.append(10 * np.log10((h + 1e-20) / (nz + 1e-20)))
    return float(np.mean(ratios)) if ratios else float("nan")


def sweep_level_error(ref: np.ndarray, est: np.ndarray, f0: float = 20.0, f1: float = 16000.0) -> dict[str, float]:
    """Output minus input level (dB) in 1/3-octave steps along an exponential sweep of ``len(ref)`` samples."""
    seconds = len(ref) / SR
    k = math.log(f1 / f0)
    worst, at = 0.0, 0.0
    errs = {}
    f = f0 * 2 ** (1 / 3)
    while f < f1 / 2 ** (1 / 6):
        t = seconds * math.log(f / f0) / k
        i0 = int((t - 0.03) * SR)
        i1 = int((t + 0.03) * SR)
        if i0 > 2048 and i1 < len(ref) - 2048:
            r = 10 * np.log10(np.mean(ref[i0:i1].astype(np.float64) ** 2) + 1e-20)
            e = 10 * np.log10(np.mean(est[i0:i1].astype(np.float64) ** 2) + 1e-20)
            errs[round(f)] = round(e - r, 2)
            if abs(e - r) > abs(worst):
                worst, at = e - r, f
        f *= 2 ** (1 / 3)
    return {"worst_db": round(worst, 2), "at_hz": round(at), "by_hz": errs}


# -- running a model ------------------------------------------------------------------------------------
def run_engine(model: str | Path, audio: np.ndarray, amount: float, mode: str = "prior", seed: int = 1,
               block: int = 1024, knobs: dict | None = None) -> np.ndarray:
    """The engine's output for ``audio`` (latency compensated), with ``latent_mode`` for ``mode``."""
    from realtime.engine import params as P
    from realtime.engine.engine import Engine

    p = P.Params()
    p.set("amount", amount)
    p.set("latent_mode", 1.0 if mode == "mix" else 0.0)
    for k, v in (knobs or {}).items():
        p.set(k, v)
    e = Engine([model], block_size=block, seed=seed, params=p, deadline_share=math.inf)
    lat = e.latency_samples
    n = len(audio) + lat
    n += (-n) % block
    x = np.zeros(n, np.float32)
    x[:len(audio)] = audio
    y = np.zeros_like(x)
    for i in range(0, n, block):
        e.process_block(x[i:i + block], y[i:i + block])
    return y[lat:lat + len(audio)]


def lsd(ref: np.ndarray, est: np.ndarray) -> float:
    from models.quality import lsd_db
    from realtime.dsp.stft import stft

    cfg = StftConfig()
    return lsd_db(stft(ref, cfg), stft(est, cfg))


def evaluate(model: str | Path, amounts=AMOUNTS, modes=("prior", "mix"), seconds: float = 8.0,
             files: dict[str, np.ndarray] | None = None) -> dict:
    """Every metric for each mode and amount; see the module docstring."""
    files = files or heldout_set(seconds)
    ref_mel = np.concatenate([logmel_pair(x, x)[0] for x in files.values()])
    hnr_in = {k: hnr_db(x, x) for k, x in files.items() if k != "sweep"}
    res: dict = {"files": {k: round(len(x) / SR, 2) for k, x in files.items()}, "hnr_input": hnr_in}
    for mode in modes:
        for a in amounts:
            outs = {k: run_engine(model, x, a, mode) for k, x in files.items()}
            out_mel = np.concatenate([logmel_pair(files[k], y)[1] for k, y in outs.items()])
            row = {"fd": round(frechet(out_mel, ref_mel), 3),
                   "lsd": {k: round(lsd(files[k], y), 3) for k, y in outs.items()},
                   "hnr_change": {k: round(hnr_db(files[k], y) - hnr_in[k], 2) for k, y in outs.items()
                                  if k != "sweep"}}
            row["lsd_mean"] = round(float(np.mean(list(row["lsd"].values()))), 3)
            hc = list(row["hnr_change"].values())
            row["hnr_change_mean"] = round(float(np.nanmean(hc)), 2)
            row["hnr_change_worst"] = round(float(np.nanmin(hc)), 2)
            if "sweep" in outs:
                row["sweep"] = sweep_level_error(files["sweep"], outs["sweep"])
            res[f"{mode}@{a:g}"] = row
            print(f"{mode} amount {a:g}: FD {row['fd']:.2f}, LSD mean {row['lsd_mean']:.2f} dB, HNR change mean "
                  f"{row['hnr_change_mean']:+.2f} / worst {row['hnr_change_worst']:+.2f} dB"
                  + (f", sweep worst {row['sweep']['worst_db']:+.2f} dB" if "sweep" in row else ""),
                  file=sys.stderr)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.fd", description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--modes", default="prior,mix", help="comma list; 'mix' only for a v1 model")
    p.add_argument("--amounts", default=",".join(f"{a:g}" for a in AMOUNTS))
    p.add_argument("--seconds", type=float, default=8.0, help="held-out seconds per category")
    p.add_argument("--json", default=None, help="write the full results here")
    p.add_argument("--picture", default=None, help="write the prior-vs-mix spectrogram picture here (and stop)")
    p.add_argument("--bench", action="store_true", help="engine block times at block 128 (and stop)")
    args = p.parse_args(argv)
    if args.picture:
        print(picture(args.model, args.picture))
        return 0
    if args.bench:
        print(json.dumps(engine_block_times(args.model)))
        return 0
    res = evaluate(args.model, tuple(float(a) for a in args.amounts.split(",")), tuple(args.modes.split(",")),
                   args.seconds)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def engine_block_times(model: str | Path, block: int = 128, seconds: float = 4.0, amount: float = 0.7,
                       seed: int = 1) -> dict[str, float]:
    """Engine block time (us) at ``block`` on music-like input: median, p99, and p99 as a share of the period."""
    import time

    from realtime.engine import params as P
    from realtime.engine.engine import Engine

    p = P.Params()
    p.set("amount", amount)
    e = Engine([model], block_size=block, seed=seed, params=p, deadline_share=math.inf)
    e.warmup()
    x = heldout_music(seconds)
    y = np.zeros(block, np.float32)
    times = []
    for i in range(0, len(x) - block + 1, block):
        t0 = time.perf_counter()
        e.process_block(x[i:i + block], y)
        times.append(time.perf_counter() - t0)
    t = np.array(times) * 1e6
    period = 1e6 * block / SR
    return {"median_us": round(float(np.median(t)), 1), "p99_us": round(float(np.percentile(t, 99)), 1),
            "p99_share": round(float(np.percentile(t, 99)) / period, 4), "period_us": round(period, 1)}


def heldout_music(seconds: float) -> np.ndarray:
    """A few seconds of held-out instruments (or the pad without fluidsynth)."""
    from models import instruments

    clips = instruments.instrument_clips(seconds, 20_240_601, SR, heldout=True)
    x = np.concatenate([c.audio for c in clips]) if clips else pad(seconds)
    return x[:int(seconds * SR)].astype(np.float32)


def picture(model: str | Path, out: str | Path, seconds: float = 4.0, amounts=(0.25, 0.5, 1.0)) -> Path:
    """Spectrograms: the input, then each amount for the prior (left) and the noise mix (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = heldout_set(seconds)
    x = np.concatenate([files[k][:int(seconds * SR / 2)] for k in ("instruments", "speech") if k in files])
    rows = 1 + len(amounts)
    fig, axes = plt.subplots(rows, 2, figsize=(12, 2.2 * rows), sharex=True, sharey=True)

    def show(ax, y, title):
        f = _frames(y.astype(np.float64), 1024, 256)
        s = 20 * np.log10(np.abs(np.fft.rfft(f, axis=1)).T + 1e-6)
        top = s.max()
        ax.imshow(s, origin="lower", aspect="auto", vmin=top - 90, vmax=top, cmap="magma",
                  extent=(0, len(y) / SR, 0, SR / 2000))
        ax.set_ylim(0, 12)
        ax.set_title(title, fontsize=9)

    show(axes[0, 0], x, "input (held-out instruments + speech)")
    show(axes[0, 1], x, "input")
    for r, a in enumerate(amounts, start=1):
        for c, mode in enumerate(("prior", "mix")):
            show(axes[r, c], run_engine(model, x, a, mode), f"{mode}, amount {a:g}")
    for ax in axes[:, 0]:
        ax.set_ylabel("kHz")
    for ax in axes[-1]:
        ax.set_xlabel("s")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
