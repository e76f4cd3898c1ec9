"""What ``train`` checks before it starts, how it stops on Ctrl-C, and what it tells you at the end.

- :func:`check_args`: every number in range (one-line :class:`TrainArgError` naming the option), the output
  folders writable, before any data is built.
- :func:`check_resume`: a checkpoint that does not fit the command (another ``--latent``, ``--hidden``, ``--kind``,
  ``--window``...) is refused, saying which setting differs and what the checkpoint has.
- :class:`StopRequest`: Ctrl-C / SIGTERM set a flag the training loop reads after each step, so it stops between
  steps, saves a checkpoint and prints the exact command that resumes.
- :func:`verdict`: the new model's held-out reconstruction LSD beside the 8-bin smoothing baseline and the shipped
  model's, on the same files, and plainly whether the new model is better.
"""

from __future__ import annotations

import math
import shlex
import signal
import sys
from pathlib import Path

from realtime.errors import UserError


class TrainArgError(UserError):
    """A training option that cannot work (one line)."""


_RANGES = {  # option: (attribute, lo, hi, integer)
    "--epochs": ("epochs", 1, 1_000_000, True), "--steps": ("steps", 1, 10**9, True),
    "--latent": ("latent", 1, 4096, True), "--batch": ("batch", 1, 10**7, True),
    "--lr": ("lr", 1e-9, 10.0, False), "--beta": ("beta", 0.0, 100.0, False),
    "--kl-warmup": ("kl_warmup", 0.0, 1.0, False), "--free-bits": ("free_bits", 0.0, 100.0, False),
    "--minutes": ("minutes", 0.01, 10_000.0, False), "--threads": ("threads", 1, 1024, True),
    "--eval-seconds": ("eval_seconds", 0.0, 100_000.0, False), "--stop-after": ("stop_after", 1, 1_000_000, True),
}


def check_args(args) -> None:
    """Raise :class:`TrainArgError` for an out-of-range option or an output that cannot be written."""
    for flag, (attr, lo, hi, _integer) in _RANGES.items():
        v = getattr(args, attr, None)
        if v is None:
            continue
        if not (isinstance(v, (int, float)) and math.isfinite(v) and lo <= v <= hi):
            raise TrainArgError(f"{flag} {v}: give a value from {lo:g} to {hi:g}")
    hidden = getattr(args, "hidden", ())
    if not hidden or any(h < 1 or h > 65536 for h in hidden):
        raise TrainArgError(f"--hidden {','.join(map(str, hidden))}: give comma-separated widths from 1 to 65536")
    from realtime.fileio import check_writable

    try:
        check_writable(args.out)
        check_writable(args.checkpoint)
    except UserError as exc:
        raise TrainArgError(str(exc)) from None


def parse_hidden(text: str) -> tuple[int, ...]:
    """``"256,128"`` -> ``(256, 128)``; :class:`TrainArgError` for anything else."""
    try:
        return tuple(int(h) for h in str(text).split(",") if h.strip())
    except ValueError:
        raise TrainArgError(f"--hidden {text!r}: give comma-separated whole numbers, e.g. 256,128") from None


# Settings a checkpoint must share with the command that resumes it: (option, checkpoint field).
_MUST_MATCH = (("--latent", "latent"), ("--hidden", "hidden"), ("--kind", "kind"), ("--window", "window"),
               ("--batch", "batch"))


def load_checkpoint(path: Path):
    """``torch.load`` with a one-line error for a file that is not a checkpoint."""
    import torch

    if path.is_dir():
        raise TrainArgError(f"checkpoint {path} is a folder; give the .pt file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - pickle/zip errors of many kinds
        raise TrainArgError(f"{path}: not a training checkpoint ({type(exc).__name__}); give the .pt that "
                            "'audio-diffusion train' wrote, or leave out --resume") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "hparams" not in ckpt:
        raise TrainArgError(f"{path}: not a training checkpoint (no model state); leave out --resume")
    return ckpt


def check_resume(ckpt: dict, args, path: Path) -> None:
    """Refuse a checkpoint written with other settings: say which differs and what the checkpoint has."""
    saved = dict(ckpt.get("args", {}))
    hp = ckpt.get("hparams", {})
    saved.setdefault("latent", hp.get("latent_dim"))
    saved.setdefault("hidden", hp.get("hidden"))
    saved.setdefault("kind", hp.get("kind"))
    diffs = []
    for flag, key in _MUST_MATCH:
        have, want = saved.get(key), getattr(args, key, None)
        if have is None or want is None:
            continue
        if key == "hidden":
            have, want = ",".join(map(str, have)), ",".join(map(str, want))
        if str(have) != str(want):
            diffs.append(f"{flag} {want} here, {have} in the checkpoint")
    if diffs:
        raise TrainArgError(f"cannot resume from {path}: {'; '.join(diffs)}; rerun with the checkpoint's settings "
                            "or start afresh without --resume")


class StopRequest:
    """Ctrl-C (SIGINT) and SIGTERM ask the training loop to stop after the current step (see module doc)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old = {}

    def __enter__(self) -> StopRequest:
        import threading

        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def _handler(self, signum, frame) -> None:
        if self.signum is not None:  # a second Ctrl-C: the user means it
            raise KeyboardInterrupt
        self.signum = signum
        print("\nstopping after this step; saving a checkpoint (Ctrl-C again to quit at once)", file=sys.stderr,
              flush=True)

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 143 if self.signum == signal.SIGTERM else 130


def resume_command(argv: list[str] | None, checkpoint: str) -> str:
    """The exact command that continues this run from ``checkpoint``."""
    words = list(sys.argv[1:] if argv is None else argv)
    if "--resume" not in words:
        words.append("--resume")
    if "--checkpoint" not in words:
        words += ["--checkpoint", checkpoint]
    return "audio-diffusion train " + shlex.join(words)


def _sets_mean(metrics: dict, prefix: str) -> dict[str, float]:
    return {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix)}


def verdict(held: dict[str, float], shipped: dict[str, float] | None, kind: str, shipped_name: str) -> str:
    """Lines comparing the new model with the smoothing baseline and the shipped model, and the verdict."""
    if kind == "restoration":
        new, ship = _sets_mean(held, "snri_0db_"), _sets_mean(shipped or {}, "snri_0db_")
        lines = ["held-out denoising, SNR improvement at 0 dB input (dB, higher is better):",
                 f"  {'set':<10} {'new model':>10} {'shipped ' + shipped_name:>16}"]
        better = []
        for s, v in sorted(new.items()):
            sv = ship.get(s)
            lines.append(f"  {s:<10} {v:>10.2f} {sv if sv is not None else float('nan'):>16.2f}")
            if sv is not None:
                better.append(v > sv)
        word = "better" if better and all(better) else "not better"
        lines.append(f"verdict: the new model is {word} than the shipped {shipped_name} "
                     f"({sum(better)} of {len(better)} sets)" if better else
                     f"verdict: no shipped {shipped_name} to compare with")
        return "\n".join(lines)
    new, base = _sets_mean(held, "lsd_db_"), _sets_mean(held, "lsd_baseline_db_")
    ship = _sets_mean(shipped or {}, "lsd_db_")
    lines = ["held-out reconstruction LSD (dB, lower is better), same files for all three:",
             f"  {'set':<10} {'new model':>10} {'8-bin smoothing':>16} {'shipped ' + shipped_name:>16}"]
    beats_base, beats_ship = [], []
    for s, v in sorted(new.items()):
        b, sv = base.get(s, float("nan")), ship.get(s)
        lines.append(f"  {s:<10} {v:>10.2f} {b:>16.2f} {sv if sv is not None else float('nan'):>16.2f}")
        beats_base.append(v < b)
        if sv is not None:
            beats_ship.append(v < sv)
    if not new:
        return "verdict: no held-out evaluation (--no-eval)"
    parts = [f"{'beats' if all(beats_base) else 'does not beat'} the smoothing baseline "
             f"({sum(beats_base)} of {len(beats_base)} sets)"]
    if beats_ship:
        parts.append(f"{'is better' if all(beats_ship) else 'is not better'} than the shipped {shipped_name} "
                     f"({sum(beats_ship)} of {len(beats_ship)} sets)")
    better = all(beats_base) and (all(beats_ship) if beats_ship else True)
    lines.append(f"verdict: the new model {' and '.join(parts)}: "
                 f"{'better' if better else 'NOT better'}" + ("" if better else "; keep the shipped model"))
    return "\n".join(lines)


def shipped_metrics(kind: str, sets, cfg) -> tuple[dict[str, float] | None, str]:
    """The shipped model of this ``kind`` (default / denoise) evaluated on ``sets`` (None when absent or
    made for another STFT)."""
    from models import quality
    from realtime.engine.contract import parse_metadata
    from realtime.paths import resolve_model

    name = "denoise" if kind == "restoration" else "default"
    path = resolve_model(name)
    if not path.is_file():
        return None, name
    fn, meta = quality.onnx_fn(path)
    try:
        if parse_metadata(meta, path).stft_config() != cfg:
            return None, name
    except Exception:  # noqa: BLE001 - a shipped model that does not parse: nothing to compare
        return None, name
    return quality.evaluate(fn, kind, sets, cfg), name
