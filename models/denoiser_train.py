"""Train :class:`models.denoiser.StatefulDenoiser` on speech and music over realistic noise (CPU-friendly).

Data: :func:`models.denoiser_data.make_sequences` renders a pool of 4-second clean sequences and noise beds
once (deterministic from ``--seed``); their STFTs are mixed on the fly in the STFT domain (it is linear), with
a fresh pairing, SNR (-5..20 dB), level and clean-only / noise-only cases every batch. Each batch runs its
sequences in chunks with the GRU state carried (truncated back-propagation), so the model learns to use
seconds of context while a step costs only a chunk.

Loss on compressed magnitudes (``|X|^0.3``, each sequence scaled by its mixture level first), with the
target's loss (output below the clean magnitude) weighted ``1 + --protect`` times the residual noise's (a
listener forgives a little noise sooner than a dull or broken voice), plus a compressed complex term that
penalises keeping bins whose phase belongs to the noise, plus (``--keep``) a log-gain penalty on the bins the
clean sound dominates, weighted per item kind (music, speech, speech over babble): the eaten notes, lost
onsets and dull voices the compressed loss hardly sees. ``--init`` fine-tunes a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from models import noises as N
from models.denoiser import N_LOW, StatefulDenoiser
from models.denoiser_data import make_sequences, music_clips, speech_utterances
from realtime.config import StftConfig
from realtime.dsp.stft import stft

#: Families the shipped model trains on (white and pink stay in: the old model's strength must not go).
TRAIN_FAMILIES = N.FAMILIES
COMPRESS = 0.3
COMPLEX_WEIGHT = 0.3
#: Bins whose clean power exceeds the noise's by this much (dB) count as the clean sound's for ``--keep``.
KEEP_SNR_DB = 10.0
#: ... down to this far below the sequence's loudest clean bin (dB; the range the music LSD measures).
KEEP_RANGE_DB = 80.0
#: Deepest log gain the keep penalty sees (-80 dB): beyond it the bin is gone either way.
KEEP_MIN_LOG = math.log(1e-4)
#: What a batch item's clean part is, for the per-kind keep weights (--keep, --keep-speech, --keep-babble).
KINDS = ("music", "speech", "speech over babble")
#: Defaults of the mixing cases: share of batch items that are clean only (must pass unchanged) and noise only.
CLEAN_SHARE = 0.06
NOISE_SHARE = 0.05


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="audio-diffusion train-denoiser", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="models/pretrained/denoise.onnx")
    p.add_argument("--checkpoint", default=None, help="also save the torch weights here")
    p.add_argument("--speech", default=None, help="folder of your own clean speech/music to add")
    p.add_argument("--noise", default=None, help="folder of real noise recordings to add (a third of the beds)")
    p.add_argument("--sequences", type=int, default=320, help="clean/noise sequences in the pool")
    p.add_argument("--seconds", type=float, default=4.0, help="length of one sequence")
    p.add_argument("--utterances", type=int, default=240, help="espeak-ng utterances rendered for training")
    p.add_argument("--music-seconds", type=float, default=240.0)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--chunk", type=int, default=125, help="frames per back-propagation chunk")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--hidden", type=int, default=96)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-minutes", type=float, default=20.0,
                   help="stop the training loop after this long (0: no limit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clean-share", type=float, default=CLEAN_SHARE, help="share of clean-only batch items")
    p.add_argument("--noise-share", type=float, default=NOISE_SHARE, help="share of noise-only batch items")
    p.add_argument("--music-share", type=float, default=0.15, help="share of sequences whose clean part is music")
    p.add_argument("--start-share", type=float, default=0.0,
                   help="share of sequences whose clean part starts at the first sample (as a recording can)")
    p.add_argument("--protect", type=float, default=0.0,
                   help="extra weight of target loss (output below the clean magnitude) over residual noise")
    p.add_argument("--keep", type=float, default=0.0,
                   help="weight of the log-gain penalty on bins the clean sound dominates (speech/music distortion)")
    p.add_argument("--keep-speech", type=float, default=None,
                   help="--keep's weight on items whose clean part is speech (default: --keep's)")
    p.add_argument("--keep-babble", type=float, default=None,
                   help="--keep's weight on speech over a babble bed, where target and noise are alike and a cut "
                        "costs intelligibility (default: --keep-speech's)")
    p.add_argument("--keep-range", type=float, default=KEEP_RANGE_DB,
                   help="dB below the loudest clean bin down to which --keep protects bins")
    p.add_argument("--init", default=None, help="start from this checkpoint's weights (fine-tuning)")
    p.add_argument("--fine-bins", type=int, default=None,
                   help="lowest bins with a per-bin gain (default 32; with --init: widen the checkpoint's to this)")
    p.add_argument("--cache", default=None, help="save the rendered data here, or load it if the file exists")
    p.add_argument("--name", default="Denoise (speech and music over realistic noise)")
    return p.parse_args(argv)


class MixBank:
    """STFTs of the clean sequences and noise beds, mixed per batch (all tensors on CPU)."""

    def __init__(self, seqs, cfg: StftConfig, clean_share: float = CLEAN_SHARE,
                 noise_share: float = NOISE_SHARE) -> None:
        self.clean_share, self.noise_share = clean_share, noise_share
        clean = np.stack([s.clean for s in seqs])
        noise = np.stack([s.noise for s in seqs])
        self.S = torch.from_numpy(stft(clean, cfg))  # [N, T, bins] complex64
        self.Nz = torch.from_numpy(stft(noise, cfg))
        self.p_clean = torch.from_numpy(np.mean(clean.astype(np.float64) ** 2, axis=1))
        self.p_noise = torch.from_numpy(np.mean(noise.astype(np.float64) ** 2, axis=1))
        self.speech = torch.tensor([s.speech for s in seqs])
        self.babble = torch.tensor([s.family == "babble" for s in seqs])

    def batch(self, g: torch.Generator, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(X, S, kind)``: mixture and clean target, complex ``[T, b, bins]`` (time first), and each item's
        :data:`KINDS` index ``[b]`` (music; speech; speech over a babble bed)."""
        n = self.S.shape[0]
        ic = torch.randint(n, (b,), generator=g)
        inz = torch.randint(n, (b,), generator=g)
        snr = torch.rand(b, generator=g, dtype=torch.float64) * 25.0 - 5.0
        k = torch.sqrt(self.p_clean[ic] / (self.p_noise[inz] * 10 ** (snr / 10) + 1e-20))
        case = torch.rand(b, generator=g)
        k = torch.where(case < self.clean_share, torch.zeros_like(k), k)  # clean only: must pass unchanged
        noise_only = case > 1.0 - self.noise_share
        s_gain = torch.where(noise_only, torch.zeros_like(k), torch.ones_like(k))  # noise only: remove it
        k = torch.where(noise_only & (k == 0), torch.ones_like(k), k)
        S = self.S[ic] * s_gain[:, None, None].float()
        X = S + self.Nz[inz] * k[:, None, None].float()
        # level: mixture RMS between -50 and -8 dBFS (the model must not care about the level)
        rms = torch.sqrt((X.abs() ** 2).mean(dim=(1, 2)) + 1e-20)
        target = 10 ** ((torch.rand(b, generator=g) * 42.0 - 50.0) / 20) * 16.0  # bin RMS = 16 x sample RMS
        scale = (target / rms)[:, None, None]
        kind = self.speech[ic].long() * (1 + (self.babble[inz] & (k > 0)).long())
        return (X * scale).transpose(0, 1).contiguous(), (S * scale).transpose(0, 1).contiguous(), kind


def features_of(X: torch.Tensor) -> torch.Tensor:
    return torch.log(X.abs() + 1e-5)


def keep_loss(gain: torch.Tensor, X: torch.Tensor, S: torch.Tensor, range_db: float = KEEP_RANGE_DB,
              weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared log gain over the bins the clean sound dominates (``KEEP_SNR_DB`` over the noise, within
    ``range_db`` of the sequence's loudest clean bin): the distortion a listener hears as a dull voice,
    a lost onset or an eaten note. In the log domain every such bin counts alike, quiet partials too (as in
    the LSD), where the compressed-magnitude loss barely sees them. ``weight`` ``[B]`` scales each item's
    bins."""
    ps = S.abs() ** 2
    pn = (X - S).abs() ** 2
    top = ps.amax(dim=(0, 2), keepdim=True)
    mask = (ps > pn * 10 ** (KEEP_SNR_DB / 10)) & (ps > top * 10 ** (-range_db / 10))
    lg = torch.log(gain.clamp_min(1e-12)).clamp_min(KEEP_MIN_LOG)
    w = mask if weight is None else mask * weight[None, :, None]
    return (lg ** 2 * w).sum() / (mask.sum() + 1.0)


def loss_fn(gain: torch.Tensor, X: torch.Tensor, S: torch.Tensor, protect: float = 0.0,
            keep: torch.Tensor | float = 0.0, keep_range: float = KEEP_RANGE_DB) -> torch.Tensor:
    """Compressed-magnitude loss (target loss weighted ``1 + protect``) plus a compressed complex term, each
    sequence scaled by its mixture level, plus ``keep`` (a number, or one per item ``[B]``) times
    :func:`keep_loss`."""
    c = torch.sqrt((X.abs() ** 2).mean(dim=(0, 2), keepdim=True) + 1e-12)
    mx, ms = X.abs() / c, S.abs() / c
    y = (gain * mx + 1e-12) ** COMPRESS
    t = (ms + 1e-12) ** COMPRESS
    err = y - t
    mag = (err ** 2 * (1.0 + protect * (err < 0))).mean()
    px = X / (X.abs() + 1e-12)
    ps = S / (S.abs() + 1e-12)
    cplx = ((y * px - t * ps).abs() ** 2).mean()
    out = mag + COMPLEX_WEIGHT * cplx
    if not torch.is_tensor(keep):
        return out + keep * keep_loss(gain, X, S, keep_range) if keep > 0 else out
    return out + keep_loss(gain, X, S, keep_range, keep)


def build_data(args, cfg: StftConfig, log=print):
    """Render the training and validation pools (seeded)."""
    sr = cfg.sample_rate
    t0 = time.time()
    speech = speech_utterances("train", args.utterances, args.seed, sr)
    music = music_clips(args.music_seconds, args.seed, sr)
    if args.speech:
        from models.data import load_folder

        own = [c.audio.astype(np.float64) for c in load_folder(args.speech, sr)]
        speech = speech + own
    talkers = N.babble_pool("train", sr)
    pool = N.load_noise_folder(args.noise, sr) if args.noise else []
    log(f"data: {len(speech)} speech clips, {len(music)} music clips, {len(talkers)} babble talkers, "
        f"{len(pool)} noise files ({time.time() - t0:.0f} s)")
    train = make_sequences(args.sequences, args.seconds, args.seed, sr, speech=speech, music=music, talkers=talkers,
                           families=TRAIN_FAMILIES, noise_pool=pool, music_share=args.music_share,
                   start_share=args.start_share)
    val = make_sequences(max(16, args.sequences // 16), args.seconds, args.seed + 1000, sr, speech=speech,
                         music=music, talkers=talkers, families=TRAIN_FAMILIES, noise_pool=pool,
                         music_share=args.music_share, start_share=args.start_share)
    log(f"data: {len(train)} training and {len(val)} validation sequences of {args.seconds:.0f} s "
        f"({time.time() - t0:.0f} s)")
    desc = (f"{len(train)} x {args.seconds:.0f} s sequences (seed {args.seed}): espeak-ng speech "
            f"({len(speech)} utterances of models.synth.TRAIN_TEXTS, {len(set(N.TRAIN_BABBLE))} babble talkers in "
            f"{len({v.split('+')[0] for v, _ in N.TRAIN_BABBLE})} languages), 40 % of it with synthetic room "
            f"reverb, and synthetic music ({args.music_share:.0%}, kept clean), over generated noise of "
            "models/noises.py ("
            + ", ".join(TRAIN_FAMILIES) + ") at -5..20 dB SNR"
            + (f"; plus {len(pool)} real noise files from --noise" if pool else "")
            + ("; plus the user's --speech folder" if args.speech else "") + ". No recorded audio, no licence terms.")
    shares = (args.clean_share, args.noise_share)
    return MixBank(train, cfg, *shares), MixBank(val, cfg, *shares), desc


def validate(model: StatefulDenoiser, bank: MixBank, seed: int = 123, b: int = 16) -> tuple[float, float]:
    """``(loss, keep loss)`` on a fixed validation batch (the loss without the keep term, comparable across
    runs)."""
    g = torch.Generator().manual_seed(seed)
    X, S, _ = bank.batch(g, b)
    with torch.no_grad():
        gain, _, _ = model.gains(features_of(X), model.initial_state(b))
    return float(loss_fn(gain, X, S)), float(keep_loss(gain, X, S))


def train(args, log=print) -> tuple[StatefulDenoiser, dict]:
    """Train per ``args`` (see :func:`parse_args`); returns the model (eval mode) and a summary."""
    if args.init and not Path(args.init).is_file():  # before the data are rendered
        raise SystemExit(f"error: --init {args.init}: no such checkpoint (--checkpoint F writes one)")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    cfg = StftConfig()
    t0 = time.time()
    if args.cache and Path(args.cache).is_file():
        bank, val_bank, desc = torch.load(args.cache, weights_only=False)
        if not all(hasattr(b, "babble") for b in (bank, val_bank)):
            raise SystemExit(f"error: {args.cache} was written by an older train-denoiser; delete it and the data "
                             "are rendered again")
        for b in (bank, val_bank):  # the mixing shares are the run's, not the cache's
            b.clean_share, b.noise_share = args.clean_share, args.noise_share
        log(f"data: loaded {args.cache}")
    else:
        bank, val_bank, desc = build_data(args, cfg, log)
        if args.cache:
            torch.save((bank, val_bank, desc), args.cache)
    t_data = time.time() - t0
    g = torch.Generator().manual_seed(args.seed)
    X, _, _ = bank.batch(g, 64)
    if args.init:  # fine-tuning: the checkpoint's shape and standardisation
        model, _ = load_checkpoint(args.init)
        if args.fine_bins and args.fine_bins < model.n_low:
            raise SystemExit(f"error: --fine-bins {args.fine_bins} is below the checkpoint's {model.n_low}: "
                             "fine-tuning can only widen the fine stage")
        if args.fine_bins and args.fine_bins != model.n_low:
            model = model.widened(args.fine_bins, features_of(X))
        model.train()
    else:
        model = StatefulDenoiser(cfg.n_bins, cfg.sample_rate, hidden=args.hidden, layers=args.layers,
                                 n_low=args.fine_bins or N_LOW)
        model.set_normalisation(model.inputs(features_of(X)).reshape(-1, model.n_erb + model.n_low))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    warm = max(1, min(50, args.steps // 10))
    step, t_train, losses = 0, time.time(), []
    budget = 60.0 * args.max_minutes if args.max_minutes > 0 else math.inf
    deadline = t_train + budget

    def progress(s: int) -> float:
        # Cosine decay over the steps, or over the wall-clock budget when that runs out first (a shared
        # machine): then the run is not bit-reproducible, and the card says at which step it stopped.
        return min(1.0, max(s / max(1, args.steps), (time.time() - t_train) / budget))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * (
        0.05 + 0.95 * 0.5 * (1.0 + np.cos(np.pi * progress(s)))))
    ks = args.keep if args.keep_speech is None else args.keep_speech
    keep_weights = torch.tensor([args.keep, ks, ks if args.keep_babble is None else args.keep_babble])
    while step < args.steps and time.time() < deadline:
        X, S, kind = bank.batch(g, args.batch)
        keep = keep_weights[kind] if bool(keep_weights.any()) else 0.0
        feats = features_of(X)
        h = model.initial_state(args.batch)
        for c0 in range(0, X.shape[0], args.chunk):
            if step >= args.steps:
                break
            sl = slice(c0, c0 + args.chunk)
            gain, _, h = model.gains(feats[sl], h)
            loss = loss_fn(gain, X[sl], S[sl], args.protect, keep, args.keep_range)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            h = tuple(t.detach() for t in h)
            losses.append(float(loss.detach()))
            step += 1
            if step % 100 == 0:
                val, val_keep = validate(model, val_bank)
                log(f"step {step}/{args.steps}: loss {np.mean(losses[-100:]):.4f}, val {val:.4f} keep {val_keep:.4f}"
                    f" ({time.time() - t_train:.0f} s)")
    model.eval()
    val, val_keep = validate(model, val_bank)
    summary = {"steps": step, "train_seconds": round(time.time() - t_train, 1), "data_seconds": round(t_data, 1),
               "val_loss": round(val, 5), "val_keep_loss": round(val_keep, 5), "training_data": desc}
    return model, summary


def save_checkpoint(path: str | Path, model: StatefulDenoiser, summary: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"hparams": model.hparams(), "model": model.state_dict(), "summary": summary}, str(path))


def load_checkpoint(path: str | Path) -> tuple[StatefulDenoiser, dict]:
    ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    model = StatefulDenoiser(**ckpt["hparams"])
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt.get("summary", {})


def main(argv: list[str] | None = None, exporter=None) -> int:
    """Train, save the checkpoint, and hand the model to ``exporter(model, out, summary)`` (export/ does it)."""
    args = parse_args(argv)
    model, summary = train(args, log=lambda m: print(m, file=sys.stderr, flush=True))
    summary["command"] = "audio-diffusion train-denoiser " + " ".join(argv if argv is not None else sys.argv[1:])
    print(json.dumps({k: v for k, v in summary.items() if k != "training_data"}), file=sys.stderr)
    if args.checkpoint:
        save_checkpoint(args.checkpoint, model, summary)
    if exporter is not None:
        return 0 if exporter(model, args.out, summary, args.name) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

