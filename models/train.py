"""``audio-diffusion train``: train a frame-wise VAE and export it to ONNX.

Runs on CPU, on a GPU when present (``--device auto``), and under ``torchrun`` with
DistributedDataParallel (gloo on CPU, nccl on GPU). Every rank builds the same corpus from the seed and
takes its own slice of each global batch; rank 0 validates, checkpoints and exports.

Reproducibility: all randomness derives from ``--seed`` (data order from ``(seed, epoch)``, the
reparameterisation noise from torch's seeded generator, saved in checkpoints), and
``torch.use_deterministic_algorithms`` is on. ``--deterministic`` also pins torch to one thread, which
makes two runs bit-identical on the same machine. A run resumed from an epoch checkpoint continues
exactly where the uninterrupted run would be.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from models import quality
from models.data import (
    NOISE_COLORS,
    SNR_RANGE_DB,
    Corpus,
    NoAudioError,
    build_corpus,
    clip_features,
    noisy_pairs,
)
from models.train_checks import (
    StopRequest,
    TrainArgError,
    check_args,
    check_resume,
    load_checkpoint,
    parse_hidden,
    resume_command,
    shipped_metrics,
    verdict,
)
from models.vae import FrameVAE, lsd_features_db, vae_loss
from realtime.config import WINDOW_MODES, StftConfig
from realtime.fileio import atomic_path

DEFAULT_BETA = {"diffusion": 1e-3, "restoration": 1e-5}


@dataclass
class Dist:
    """Where this process sits in a (possibly single-process) run."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


#: ``exporter(model, out, **card) -> Path | None`` (see :func:`main`).
Exporter = Callable[..., 'Path | None']


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="audio-diffusion train", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="synthetic", help="'synthetic' or a folder of audio files")
    p.add_argument("--out", default="model.onnx", help="exported model path (.onnx)")
    p.add_argument("--kind", choices=("diffusion", "restoration"), default="diffusion")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps", type=int, default=None, help="total optimiser steps (overrides --epochs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latent", type=int, default=16, help="latent dimensions")
    p.add_argument("--hidden", default="256,128", help="encoder hidden widths (decoder mirrors them)")
    p.add_argument("--batch", type=int, default=512, help="global batch size (frames)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beta", type=float, default=None, help="KL weight (default 1e-3 diffusion, 1e-5 restoration)")
    p.add_argument("--kl-warmup", type=float, default=0.3, help="fraction of the steps for the KL warm-up")
    p.add_argument("--free-bits", type=float, default=0.0, help="free nats per latent dimension")
    p.add_argument("--minutes", type=float, default=5.0, help="synthetic corpus length")
    p.add_argument("--checkpoint", default=None, help="checkpoint path (default: --out with .pt)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--deterministic", action="store_true", help="one torch thread: bit-identical reruns")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--window", choices=WINDOW_MODES, default="sqrt_hann")
    p.add_argument("--name", default=None, help="model display name (default: --out stem)")
    p.add_argument("--eval-seconds", type=float, default=None,
                   help="extra held-out audio per category for the final metrics (default: corpus held-out only)")
    p.add_argument("--stop-after", type=int, default=None, metavar="EPOCHS",
                   help="stop after this many epochs with a checkpoint and no export (continue with --resume)")
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation (quick tests)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.beta is None:
        args.beta = DEFAULT_BETA[args.kind]
    args.hidden = parse_hidden(args.hidden)
    if args.checkpoint is None:
        args.checkpoint = str(Path(args.out).with_suffix(".pt"))
    return args


def setup(args: argparse.Namespace) -> Dist:
    """Seed, threads, determinism, device, and the process group under torchrun."""
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if args.deterministic:
        torch.set_num_threads(1)
    elif args.threads:
        torch.set_num_threads(args.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    cuda = torch.cuda.is_available() and args.device in ("auto", "cuda") or args.device.startswith("cuda:")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(args.device if ":" in args.device else f"cuda:{local}")
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Dist(rank, world, device)


class Frames:
    """Training inputs/targets; restoration re-draws its noise every epoch for variety."""

    def __init__(self, corpus: Corpus, kind: str, cfg: StftConfig, seed: int) -> None:
        self.corpus, self.kind, self.cfg, self.seed = corpus, kind, cfg, seed
        if kind == "diffusion":
            x = clip_features(corpus.train, cfg)
            self._train = (x, x)
            v = clip_features(corpus.val, cfg)
            self.val = (v, v)
        else:
            self._train = noisy_pairs(corpus.train, cfg, np.random.default_rng([seed, 0]))
            self.val = noisy_pairs(corpus.val, cfg, np.random.default_rng([seed, 999_999]))
        if len(self._train[0]) == 0:
            raise NoAudioError("the training split has no non-silent frames; give more or louder audio")

    def epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "restoration" and epoch > 0:
            self._train = noisy_pairs(self.corpus.train, self.cfg, np.random.default_rng([self.seed, epoch]))
        return self._train

    @property
    def normalisation_source(self) -> np.ndarray:
        return self._train[0]


class LossModule(nn.Module):
    """The training loss as a module, so DistributedDataParallel's forward (and its gradient hooks) wrap it."""

    def __init__(self, model: FrameVAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor, kl_w: float, free_bits: float) -> dict[str, torch.Tensor]:
        return vae_loss(self.model, x, y, kl_w, free_bits)


def steps_per_epoch(n_frames: int, batch: int) -> int:
    return max(1, math.ceil(n_frames / batch))


@torch.no_grad()
def validate(model: FrameVAE, val: tuple[np.ndarray, np.ndarray], beta: float, device: torch.device,
             seed: int) -> dict[str, float]:
    """Validation loss (sampled z, fixed seed), and LSD proxy at amount 0 on features."""
    model.eval()
    if len(val[0]) == 0:
        return {}
    x = torch.from_numpy(val[0]).to(device)
    y = torch.from_numpy(val[1]).to(device)
    # fork: validation noise must not advance the training RNG (resume == uninterrupted)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        parts = vae_loss(model, x, y, beta)
    out, _ = model(x, torch.zeros(len(x), 1, device=device), torch.zeros(len(x), model.latent_dim, device=device))
    model.train()
    return {"val_loss": float(parts["loss"]), "val_recon": float(parts["recon"]), "val_kl": float(parts["kl"]),
            "val_lsd_feat_db": float(lsd_features_db(out, y))}


def save_checkpoint(path: str | Path, model: FrameVAE, opt, sched, epoch: int, step: int, args, cfg: StftConfig,
                    corpus: Corpus, metrics: dict, history: list[dict]) -> None:
    """Atomically write everything needed to resume or export."""
    state = {
        "model": model.state_dict(), "hparams": model.hparams(), "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(), "epoch": epoch, "step": step, "torch_rng": torch.get_rng_state(),
        "args": vars(args), "cfg": cfg.as_dict(), "training_data": corpus.description, "metrics": metrics,
        "history": history,
    }
    with atomic_path(path) as tmp:  # a crash or Ctrl-C mid-save leaves the previous checkpoint as it was
        torch.save(state, tmp)


def command_line(argv: list[str] | None) -> str:
    """The command as a user would type it (for model cards and metadata)."""
    words = sys.argv[1:] if argv is None else argv
    return "audio-diffusion train " + shlex.join(words)


def _args_and_checkpoint(argv: list[str] | None) -> tuple[argparse.Namespace, dict | None]:
    """Parse and check the command line (values in range, outputs writable) and load the checkpoint a
    ``--resume`` continues from, before any data is built. Raises ``TrainArgError``."""
    args = parse_args(argv)
    check_args(args)
    ckpt = None
    if args.resume and Path(args.checkpoint).exists():
        ckpt = load_checkpoint(Path(args.checkpoint))
        check_resume(ckpt, args, Path(args.checkpoint))  # which setting differs, and what the checkpoint has
    return args, ckpt


def _data(args: argparse.Namespace, cfg: StftConfig, log: Callable) -> tuple[Corpus, Frames]:
    """The corpus and its frames (restoration: noisy inputs, clean targets). Raises ``NoAudioError``."""
    t0 = time.time()
    corpus = build_corpus(args.data, args.minutes, args.seed, cfg)
    frames = Frames(corpus, args.kind, cfg, args.seed)
    if args.kind == "restoration":
        lo, hi = SNR_RANGE_DB
        corpus.description += (f"; inputs are noisy copies ({'/'.join(NOISE_COLORS)} noise at {lo:g}..{hi:g} dB "
                               "SNR, redrawn every epoch), targets the clean audio")
    log(f"data: {corpus.description}; {len(frames.normalisation_source)} train / {len(frames.val[0])} val frames, "
        f"{len(corpus.heldout)} held-out clips ({time.time() - t0:.1f} s)", file=sys.stderr)
    return corpus, frames


@dataclass
class Run:
    """A training run's moving parts and progress (what a checkpoint saves and a resume restores)."""

    model: FrameVAE
    net: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    total: int          # optimiser steps in all
    spe: int            # steps per epoch
    epochs: int
    start_epoch: int = 0
    step: int = 0
    metrics: dict | None = None
    history: list | None = None


def _make_run(args: argparse.Namespace, cfg: StftConfig, frames: Frames, d: Dist, ckpt: dict | None,
              log: Callable) -> Run:
    """Model, optimiser and cosine schedule, restored from ``ckpt`` when resuming."""
    model = FrameVAE(cfg.n_bins, args.latent, args.hidden, args.kind)
    model.set_normalisation(frames.normalisation_source)
    model.to(d.device)
    net: nn.Module = LossModule(model)
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[d.device] if d.device.type == "cuda" else None)
    spe = steps_per_epoch(len(frames.normalisation_source), args.batch)
    total = args.steps if args.steps else args.epochs * spe
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    # cosine decay to 5 % of the peak rate: late small steps polish the reconstruction
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s, total) / max(total, 1))))
    run = Run(model, net, opt, sched, total, spe, math.ceil(total / spe), metrics={}, history=[])
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["torch_rng"])
        run.start_epoch, run.step, run.metrics = ckpt["epoch"] + 1, ckpt["step"], ckpt.get("metrics", {})
        run.history = ckpt.get("history", [])
        log(f"resumed from {args.checkpoint} at epoch {run.start_epoch}, step {run.step}", file=sys.stderr)
    return run


def _train_epoch(run: Run, args: argparse.Namespace, frames: Frames, d: Dist, epoch: int, bar: tqdm,
                 stop: StopRequest) -> None:
    """One epoch of optimiser steps (fewer when the step budget ends or a stop is requested)."""
    model, net, opt, sched = run.model, run.net, run.opt, run.sched
    warmup = int(args.kl_warmup * run.total)
    per_rank = max(1, args.batch // d.world)
    x_np, y_np = frames.epoch(epoch)
    order = np.random.default_rng([args.seed, 7, epoch]).permutation(len(x_np))
    x_all, y_all = torch.from_numpy(x_np), torch.from_numpy(y_np)
    for b in range(run.spe):
        if run.step >= run.total:
            break
        idx = order[b * args.batch:(b + 1) * args.batch][d.rank::d.world][:per_rank]
        if len(idx) == 0:  # a short last batch may leave a rank empty; keep ranks in lockstep
            idx = order[:1]
        ix = torch.from_numpy(idx)
        x, y = x_all[ix].to(d.device), y_all[ix].to(d.device)
        w = args.beta * min(1.0, run.step / warmup) if warmup > 0 else args.beta
        parts = net(x, y, w, args.free_bits)
        opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        run.step += 1
        bar.update(1)
        if run.step % 20 == 0:
            bar.set_postfix(recon=f"{parts['recon'].item():.4f}", kl=f"{parts['kl'].item():.1f}")
        if stop.requested:
            break


def main(argv: list[str] | None = None, exporter: Exporter | None = None) -> int:
    """Train, validate every epoch, checkpoint, evaluate on held-out audio, then hand the model to ``exporter``.

    ``exporter(model, out, **card)`` writes the ONNX file and returns its path, or ``None`` after printing
    why it could not (``export.pipeline`` passes the ONNX exporter: models never import export).
    Without one, training ends with the checkpoint. Returns 0 on success.
    """
    try:
        args, ckpt = _args_and_checkpoint(argv)
    except TrainArgError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    d = setup(args)
    cfg = StftConfig(window=args.window)
    log = tqdm.write if d.main else (lambda *_a, **_k: None)
    t0 = time.time()
    try:
        corpus, frames = _data(args, cfg, log)
    except NoAudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run = _make_run(args, cfg, frames, d, ckpt, log)
    ckpt_path = Path(args.checkpoint)

    def save(epoch: int) -> None:
        save_checkpoint(ckpt_path, run.model, run.opt, run.sched, epoch, run.step, args, cfg, corpus, run.metrics,
                        run.history)

    bar = tqdm(total=run.total, initial=run.step, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True,
               disable=args.no_progress or not d.main, mininterval=0.5 if sys.stderr.isatty() else 10.0)
    run.net.train()
    done = run.start_epoch  # epochs completed
    stop = StopRequest().__enter__()  # Ctrl-C / SIGTERM: finish the step, save, say how to resume
    for epoch in range(run.start_epoch, run.epochs):
        _train_epoch(run, args, frames, d, epoch, bar, stop)
        if stop.requested:
            # The interrupted epoch runs again on resume (its step count carries on, so the schedule holds).
            if d.main:
                save(epoch - 1)
            break
        if d.main:
            run.metrics = validate(run.model, frames.val, args.beta, d.device, args.seed)
            run.history.append({"epoch": epoch + 1, "step": run.step, **run.metrics})
            log(f"epoch {epoch + 1}/{run.epochs} step {run.step}: "
                + ", ".join(f"{k} {v:.4f}" for k, v in run.metrics.items()) + f" ({time.time() - t0:.0f} s)",
                file=sys.stderr)
            save(epoch)
        if d.world > 1:
            dist.barrier()
        done = epoch + 1
        if args.stop_after is not None and done >= args.stop_after:
            break
    bar.close()
    stop.__exit__()
    if stop.requested:
        if d.main:
            print(f"stopped at step {run.step} of {run.total}; checkpoint saved: {ckpt_path} (step {run.step})\n"
                  f"resume with: {resume_command(argv, str(ckpt_path))}", file=sys.stderr, flush=True)
        if d.world > 1:
            dist.destroy_process_group()
        return stop.exit_code

    rc = 0
    if done < run.epochs:
        log(f"stopped after epoch {done} of {run.epochs}; continue with --resume", file=sys.stderr)
    elif d.main:
        rc = finish(run.model, args, argv, cfg, corpus, run.metrics, t0, exporter)
    if d.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return rc


def finish(model: FrameVAE, args, argv, cfg: StftConfig, corpus: Corpus, val_metrics: dict, t0: float,
           exporter: Exporter | None) -> int:
    """Held-out evaluation, final checkpoint metrics, export. Rank 0 only."""
    model = model.cpu().eval()
    sets = quality.split_by_category(corpus.heldout)
    if args.eval_seconds:
        for k, v in quality.heldout_clips(args.eval_seconds, quality.HELDOUT_SEED, cfg).items():
            sets.setdefault(k, []).extend(v)
    held = quality.evaluate(quality.torch_fn(model), args.kind, sets, cfg) if sets and not args.no_eval else {}
    metrics = {**{k: round(v, 4) for k, v in val_metrics.items()}, **held,
               "train_seconds": round(time.time() - t0, 1)}
    print("held-out metrics:\n" + quality.format_metrics(held), file=sys.stderr)
    if held:
        shipped, shipped_name = shipped_metrics(args.kind, sets, cfg)
        print(verdict(held, shipped, args.kind, shipped_name), file=sys.stderr, flush=True)
    ckpt_path = Path(args.checkpoint)
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        ckpt["metrics"] = metrics
        with atomic_path(ckpt_path) as tmp:
            torch.save(ckpt, tmp)
    if exporter is None:
        print(f"trained in {time.time() - t0:.0f} s; checkpoint {ckpt_path} (export it with 'audio-diffusion train')",
              file=sys.stderr)
        return 0
    desc = f"frame-wise MLP VAE, latent {args.latent}; trained with: {command_line(argv)}"
    path = exporter(model, args.out, kind=args.kind, training_data=corpus.description, metrics=metrics,
                    cfg=cfg, name=args.name, description=desc,
                    check_features=clip_features(corpus.val[:4], cfg, drop_silence=False))
    if path is None:
        return 1
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
