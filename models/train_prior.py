"""``python -m models.train_prior``: train the envelope VAE, then the causal latent prior, then export.

Both stages run on CPU in minutes (``torch.set_num_threads(1)`` by default: the machine is shared). Data:
the built-in corpus (:func:`models.data.build_corpus`: synthetic, SoundFont instruments, espeak-ng speech)
or a folder. Everything derives from ``--seed``. ``python -m export.prior_pipeline`` (same arguments) trains
and then exports one contract-2 ONNX graph (``export.onnx_export.export_prior``); this module alone ends with
the checkpoint (models never import export).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.data import Corpus, NoAudioError, build_corpus, clip_features
from models.prior import EnvelopeVAE, LatentPrior, PriorEffect, loudness, prior_loss, residual_std
from realtime.config import StftConfig
from realtime.dsp.features import log_magnitude
from realtime.dsp.stft import stft

#: Frames per training sequence of the prior and the hop between sequences.
SEQ_FRAMES = 48
SEQ_HOP = 24


@dataclass
class Trained:
    vae: EnvelopeVAE
    prior: LatentPrior
    corpus: Corpus
    metrics: dict
    seconds: float


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m models.train_prior", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="synthetic", help="'synthetic' (built-in corpus) or a folder of audio")
    p.add_argument("--minutes", type=float, default=10.0, help="built-in corpus length")
    p.add_argument("--out", default="prior.onnx")
    p.add_argument("--checkpoint", default=None, help="default: --out with .pt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latent", type=int, default=16)
    p.add_argument("--hidden", default="256,128", help="VAE encoder widths (decoder mirrors them)")
    p.add_argument("--gru", type=int, default=96, help="prior GRU width")
    p.add_argument("--vae-steps", type=int, default=3000)
    p.add_argument("--prior-steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=512, help="VAE batch (frames)")
    p.add_argument("--seq-batch", type=int, default=32, help="prior batch (sequences)")
    p.add_argument("--beta", type=float, default=3e-3, help="VAE KL weight")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--sampler-steps", type=int, default=2, help="K: DDIM steps in the exported sampler")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="Prior diffusion")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    args.hidden = tuple(int(h) for h in str(args.hidden).split(",") if h.strip())
    if args.checkpoint is None:
        args.checkpoint = str(Path(args.out).with_suffix(".pt"))
    return args


def _cosine(opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s, total) / max(total, 1))))


def train_vae(frames: np.ndarray, val: np.ndarray, args, log: Callable[[str], None]) -> tuple[EnvelopeVAE, dict]:
    vae = EnvelopeVAE(frames.shape[1], args.latent, args.hidden)
    vae.set_normalisation(frames)
    opt = torch.optim.Adam(vae.parameters(), lr=args.lr)
    sched = _cosine(opt, args.vae_steps)
    x_all = torch.from_numpy(frames)
    gen = np.random.default_rng([args.seed, 21])
    warm = max(1, args.vae_steps // 3)
    for step in range(args.vae_steps):
        idx = torch.from_numpy(gen.integers(0, len(frames), min(args.batch, len(frames))))
        parts = vae.loss(x_all[idx], args.beta * min(1.0, step / warm))
        opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 5.0)
        opt.step()
        sched.step()
        if not args.no_progress and (step + 1) % 500 == 0:
            log(f"vae step {step + 1}/{args.vae_steps}: recon {parts['recon'].item():.4f} kl {parts['kl'].item():.1f}")
    vae.eval()
    with torch.no_grad():
        v = torch.from_numpy(val if len(val) else frames[:2048])
        mu, _ = vae.encode(v)
        err = (vae.decode(mu) - vae.ceps(v)) @ vae.basis  # envelope error over the bins (nepers)
        env_lsd = float((20 / math.log(10)) * err.pow(2).mean(dim=1).sqrt().mean())
        kl = float((0.5 * mu.pow(2)).mean(dim=0).sum())
    return vae, {"vae_envelope_lsd_db": round(env_lsd, 3), "vae_latent_energy": round(kl, 2)}


@torch.no_grad()
def latent_sequences(vae: EnvelopeVAE, clips, cfg: StftConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mu, loudness)`` windows ``[W, SEQ_FRAMES, D]`` / ``[W, SEQ_FRAMES, 1]`` from every clip (silence kept:
    the prior must learn onsets and silence too)."""
    mus, louds = [], []
    for c in clips:
        f = torch.from_numpy(np.ascontiguousarray(log_magnitude(stft(c.audio, cfg))))
        if len(f) < SEQ_FRAMES:
            continue
        mu, _ = vae.encode(f)
        ld = loudness(f)
        for s in range(0, len(f) - SEQ_FRAMES + 1, SEQ_HOP):
            mus.append(mu[s:s + SEQ_FRAMES])
            louds.append(ld[s:s + SEQ_FRAMES])
    if not mus:
        raise NoAudioError(f"no clip is longer than {SEQ_FRAMES} frames; give longer audio")
    return torch.stack(mus), torch.stack(louds)


def train_prior(vae: EnvelopeVAE, corpus: Corpus, cfg: StftConfig, args,
                log: Callable[[str], None]) -> tuple[LatentPrior, dict]:
    mu, loud = latent_sequences(vae, corpus.train, cfg)
    prior = LatentPrior(args.latent, args.gru)
    audible = (loud > -17.0).squeeze(-1)
    flat = mu[audible] if audible.any() else mu.reshape(-1, mu.shape[-1])
    prior.lat_mean.copy_(flat.mean(dim=0))
    prior.lat_std.copy_(flat.std(dim=0).clamp_min(1e-3))
    prior.loud_mean.copy_(loud.mean().view(1))
    prior.loud_std.copy_(loud.std().clamp_min(1e-3).view(1))
    u = (mu - prior.lat_mean) / prior.lat_std
    opt = torch.optim.Adam(prior.parameters(), lr=args.lr)
    sched = _cosine(opt, args.prior_steps)
    gen = torch.Generator().manual_seed(args.seed + 31)
    pick = np.random.default_rng([args.seed, 41])
    vmu, vloud = latent_sequences(vae, corpus.val, cfg) if corpus.val else (mu[:64], loud[:64])
    vu = (vmu - prior.lat_mean) / prior.lat_std
    loss = torch.zeros(())
    for step in range(args.prior_steps):
        idx = torch.from_numpy(pick.integers(0, len(u), min(args.seq_batch, len(u))))
        loss = prior_loss(prior, u[idx].transpose(0, 1), loud[idx].transpose(0, 1), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prior.parameters(), 2.0)
        opt.step()
        sched.step()
        if not args.no_progress and (step + 1) % 500 == 0:
            log(f"prior step {step + 1}/{args.prior_steps}: v-loss {loss.item():.4f}")
    prior.eval()
    with torch.no_grad():
        vg = torch.Generator().manual_seed(999)
        val_loss = float(prior_loss(prior, vu[:256].transpose(0, 1), vloud[:256].transpose(0, 1), vg))
        prior.resid_std.copy_(residual_std(prior, vu[:512].transpose(0, 1), vloud[:512].transpose(0, 1)))
    return prior, {"prior_train_v_loss": round(float(loss.detach()), 4), "prior_val_v_loss": round(val_loss, 4),
                   "prior_sequences": int(len(u)), "prior_resid_std_mean": round(float(prior.resid_std.mean()), 3)}


def train(args, log: Callable[[str], None] = print) -> Trained:
    """Both stages on the corpus ``args`` describes."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, int(args.threads)))
    cfg = StftConfig()
    t0 = time.time()
    corpus = build_corpus(args.data, args.minutes, args.seed, cfg)
    frames = clip_features(corpus.train, cfg)
    val = clip_features(corpus.val, cfg)
    if len(frames) == 0:
        raise NoAudioError("the training split has no non-silent frames; give more or louder audio")
    log(f"data: {corpus.description}; {len(frames)} train / {len(val)} val frames ({time.time() - t0:.0f} s)")
    vae, m1 = train_vae(frames, val, args, log)
    log(f"vae: {m1} ({time.time() - t0:.0f} s)")
    prior, m2 = train_prior(vae, corpus, cfg, args, log)
    log(f"prior: {m2} ({time.time() - t0:.0f} s)")
    return Trained(vae, prior, corpus, {**m1, **m2, "train_frames": int(len(frames))}, time.time() - t0)


def save(path: str | Path, t: Trained, args) -> None:
    torch.save({"vae": t.vae.state_dict(), "vae_hparams": t.vae.hparams(), "prior": t.prior.state_dict(),
                "prior_hparams": t.prior.hparams(), "training_data": t.corpus.description, "metrics": t.metrics,
                "args": vars(args), "seconds": t.seconds}, str(path))


def load(path: str | Path) -> tuple[EnvelopeVAE, LatentPrior, dict]:
    ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    vae = EnvelopeVAE(**ckpt["vae_hparams"])
    vae.load_state_dict(ckpt["vae"])
    prior = LatentPrior(**ckpt["prior_hparams"])
    prior.load_state_dict(ckpt["prior"], strict=False)  # checkpoints before resid_std: zeros (no sampling noise)
    return vae.eval(), prior.eval(), ckpt


def main(argv: list[str] | None = None, exporter: Callable[..., Path | None] | None = None) -> int:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    try:
        t = train(args, log)
    except NoAudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    Path(args.checkpoint).parent.mkdir(parents=True, exist_ok=True)
    save(args.checkpoint, t, args)
    if exporter is None:  # models never import export: export.prior_pipeline passes the ONNX exporter
        print(f"trained in {t.seconds:.0f} s; checkpoint {args.checkpoint}", file=sys.stderr)
        return 0
    effect = PriorEffect(t.vae, t.prior, args.sampler_steps)
    path = exporter(effect, args.out, training_data=t.corpus.description, metrics=t.metrics, name=args.name,
                    description=f"envelope VAE latent {args.latent} + causal GRU prior ({args.gru}), "
                                f"{args.sampler_steps}-step DDIM sampler; trained in {t.seconds:.0f} s")
    if path is None:
        return 1
    print(f"wrote {path} in {t.seconds:.0f} s of training", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
