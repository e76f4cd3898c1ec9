"""Export a :class:`models.vae.FrameVAE` to a single-file ONNX model (contract v1) and verify it.

Opset :data:`OPSET` (17) with the TorchScript-based exporter (``dynamo=False``): it writes one
self-contained file, and the graph uses only standard operators (Gemm, Erf for GELU, Exp, Log, Sqrt,
Clip, ReduceMean and elementwise arithmetic) that every onnxruntime >= 1.14 runs. After export the
file is checked three ways: ``onnx.checker``, metadata through :func:`realtime.engine.contract.parse_metadata`,
and onnxruntime (graph optimisations ``ORT_ENABLE_ALL``) against torch on random and real frames,
max abs difference <= :data:`PARITY_TOL`.
"""

from __future__ import annotations

import argparse
import io
import sys
import warnings
from pathlib import Path

import numpy as np

from realtime import __version__
from realtime.config import StftConfig
from realtime.engine.contract import (
    FRAMES_AXIS,
    INPUT_NAMES,
    OUTPUT_FEATURES,
    OUTPUT_NAMES,
    ModelError,
    build_metadata,
    parse_metadata,
)
from realtime.fileio import write_bytes

OPSET = 17
PARITY_TOL = 1e-4
PRODUCER = f"audio-diffusion-host {__version__}"


class ExportError(RuntimeError):
    """The exported file failed a check (one-line message)."""


def export_or_report(export_fn, *args, **kwargs) -> Path | None:
    """``export_fn(*args, **kwargs)``, or ``None`` after printing its :class:`ExportError` as one line (what a
    training command hands its exporter: training keeps its checkpoint, the user reads why the export failed)."""
    try:
        return export_fn(*args, **kwargs)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _example_inputs(n_bins: int, latent: int, frames: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    # log-magnitudes from the floor (log 1e-5 = -11.5) up to loud bins
    feats = torch.rand(frames, n_bins, generator=g) * 14.0 - 11.5
    amount = torch.rand(frames, 1, generator=g)
    noise = torch.randn(frames, latent, generator=g)
    return feats, amount, noise


def random_frames(model, frames: int, seed: int):
    """Random frames drawn around the model's own training statistics, with random gains.

    Far out-of-distribution frames (e.g. uniform noise over the whole feature range) drive the hidden
    activations to hundreds, where float32 GEMM rounding differs between torch and onnxruntime by more
    than the tolerance without meaning anything; :func:`parity` only checks those for finiteness.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    shape = model.bin_mean + model.bin_std * torch.randn(frames, model.n_bins, generator=g)
    gain = torch.rand(frames, 1, generator=g) * 8.0 - 9.0
    amount = torch.rand(frames, 1, generator=g)
    noise = torch.randn(frames, model.latent_dim, generator=g)
    return (shape + gain).float(), amount, noise


def real_frames(cfg: StftConfig, seconds: float = 1.5) -> np.ndarray:
    """Log-magnitude frames of a few synthetic clips (and speech when espeak-ng exists) for parity checks."""
    from models.data import clip_features
    from models.synth import HELDOUT_TEXTS, synthetic_clips

    clips = synthetic_clips(seconds, 7, cfg.sample_rate)
    try:
        from models.synth import speech_clips

        clips += speech_clips(0.5, 7, cfg.sample_rate, HELDOUT_TEXTS)
    except Exception:  # speech is a bonus for this check, never a reason to fail an export
        pass
    return clip_features(clips, cfg, drop_silence=False)


def parity(model, path: str | Path, features: np.ndarray | None = None, seed: int = 0) -> float:
    """Max abs difference between torch and onnxruntime (ORT_ENABLE_ALL) outputs.

    Checks random frames (:func:`random_frames`) with random amount/noise, and ``features`` (real frames)
    at amount 0 and at random amounts. Wide uniform random frames must give finite outputs (returns inf
    otherwise).
    """
    import onnxruntime as ort
    import torch

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    wild = _example_inputs(model.n_bins, model.latent_dim, 64, seed)
    got = sess.run(list(OUTPUT_NAMES), dict(zip(INPUT_NAMES, (t.numpy() for t in wild), strict=True)))
    if not all(np.isfinite(o).all() for o in got):
        return float("inf")
    with torch.no_grad():
        cases = [random_frames(model, 64, seed)]
    if features is not None and len(features):
        f = torch.from_numpy(np.ascontiguousarray(features, np.float32))
        _, amount, noise = random_frames(model, f.shape[0], seed + 1)
        cases += [(f, torch.zeros_like(amount), torch.zeros_like(noise)), (f, amount, noise)]
    worst = 0.0
    model.eval()
    with torch.no_grad():
        for f, a, n in cases:
            ref = model(f, a, n)
            got = sess.run(list(OUTPUT_NAMES), {INPUT_NAMES[0]: f.numpy(), INPUT_NAMES[1]: a.numpy(),
                                                INPUT_NAMES[2]: n.numpy()})
            for r, o in zip(ref, got, strict=True):
                worst = max(worst, float(np.max(np.abs(r.numpy() - o))))
    return worst


def export_onnx(model, out_path: str | Path, *, kind: str, training_data: str, metrics: dict | None,
                cfg: StftConfig, name: str | None = None, description: str = "",
                check_features: np.ndarray | None = None) -> Path:
    """Write ``model`` as a contract-v1 ONNX file and verify it.

    Parameters
    ----------
    model : models.vae.FrameVAE
        Moved to CPU (a copy is not made: the caller's model ends up on CPU in eval mode).
    out_path : str or Path
    kind : {"diffusion", "restoration"}
    training_data : str
        Provenance summary stored in metadata.
    metrics : dict, optional
        Evaluation numbers, stored as JSON.
    cfg : StftConfig
        The STFT the model was trained with.
    name : str, optional
        Display name (default: the file stem).
    description : str
    check_features : ndarray, optional
        Real frames for the parity check; default: frames of a short synthetic clip.

    Returns
    -------
    Path of the written file.

    Raises
    ------
    ExportError
        If ``onnx.checker``, the metadata or the parity check fails.
    """
    import onnx
    import torch

    out_path = Path(out_path)
    if model.kind != kind:
        raise ExportError(f"model is a {model.kind} model but kind={kind!r} was requested")
    if model.n_bins != cfg.n_bins:
        raise ExportError(f"model has {model.n_bins} bins but cfg (n_fft {cfg.n_fft}) gives {cfg.n_bins}")
    try:
        meta = build_metadata(kind=kind, cfg=cfg, latent_dim=model.latent_dim, name=name or out_path.stem,
                              training_data=training_data, producer=PRODUCER, description=description,
                              metrics=metrics)
    except ModelError as exc:
        raise ExportError(f"bad metadata: {exc}") from None
    model = model.cpu().eval()
    example = _example_inputs(model.n_bins, model.latent_dim, 2, 0)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of dynamo; it is the one that writes a single
        # plain file at opset 17, so silence the notice rather than the user
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, buf, input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                          dynamic_axes={n: {0: FRAMES_AXIS} for n in (*INPUT_NAMES, *OUTPUT_NAMES)},
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    set_metadata(proto, meta)
    proto.producer_name, proto.producer_version = "audio-diffusion-host", __version__
    proto.doc_string = f"Audio Diffusion Host {kind} model, contract v1. {description}".strip()
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ExportError(f"onnx.checker rejected the export: {' '.join(str(exc).split())}") from None
    write_bytes(out_path, proto.SerializeToString())  # one file, weights inline (no external data)
    parse_metadata({p.key: p.value for p in onnx.load(str(out_path)).metadata_props}, out_path)
    if check_features is None:
        check_features = real_frames(cfg)
    diff = parity(model, out_path, check_features)
    if not np.isfinite(diff):
        raise ExportError(f"{out_path.name}: onnxruntime gives NaN/Inf on random frames")
    if not diff <= PARITY_TOL:
        raise ExportError(f"{out_path.name}: onnxruntime differs from torch by {diff:.3g} "
                          f"(> {PARITY_TOL:g}) on {OUTPUT_FEATURES}/mu")
    return out_path


PRIOR_INPUTS = ("features", "amount", "noise", "latent_offset", "latent_scale", "target", "toward", "latent_mode",
                "freeze")


def export_prior(effect, out_path: str | Path, *, training_data: str, metrics: dict | None = None,
                 name: str | None = None, description: str = "", cfg: StftConfig | None = None) -> Path:
    """Write a :class:`models.prior.PriorEffect` as one contract-2 ONNX graph (GRU state per sampler step) and
    verify it: ``onnx.checker``, metadata, onnxruntime against torch, and the engine's loader (its v2 probe).

    Raises
    ------
    ExportError
        When a check fails.
    """
    import onnx
    import torch

    from realtime.engine.contract import OUTPUT_MU, OUTPUT_Z, STATE_IN, STATE_OUT
    from realtime.engine.model import EffectModel

    cfg = cfg or StftConfig()
    out_path = Path(out_path)
    effect = effect.cpu().eval()
    d, nb = effect.latent_dim, effect.n_bins
    shape = effect.state_shape
    states = {n: shape for n in effect.state_names}
    try:
        meta = build_metadata(kind="diffusion", cfg=cfg, latent_dim=d, name=name or out_path.stem,
                              training_data=training_data, producer=PRODUCER, description=description,
                              metrics=metrics, state_shapes=states)
    except ModelError as exc:
        raise ExportError(f"bad metadata: {exc}") from None

    def example(frames: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        feats = (torch.from_numpy(real_frames(cfg)[:frames]) if seed == 0
                 else torch.rand(frames, nb, generator=g) * 12 - 11.5)
        return (feats, torch.rand(frames, 1, generator=g), torch.randn(frames, d, generator=g),
                0.3 * torch.randn(frames, d, generator=g), 1 + 0.2 * torch.randn(frames, d, generator=g),
                torch.randn(frames, d, generator=g), torch.rand(frames, 1, generator=g),
                (torch.rand(frames, 1, generator=g) > 0.5).float(), torch.zeros(frames, 1),
                *[0.1 * torch.randn(*shape, generator=g) for _ in states])

    in_names = list(PRIOR_INPUTS) + [STATE_IN + n for n in states]
    out_names = [OUTPUT_FEATURES, OUTPUT_MU, OUTPUT_Z] + [STATE_OUT + n for n in states]
    dyn = {n: {0: FRAMES_AXIS} for n in list(PRIOR_INPUTS) + out_names[:3]}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(effect, example(3, 1), buf, input_names=in_names, output_names=out_names,
                          dynamic_axes=dyn, opset_version=OPSET, dynamo=False, do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    set_metadata(proto, meta)
    proto.producer_name, proto.producer_version = "audio-diffusion-host", __version__
    proto.doc_string = f"Audio Diffusion Host diffusion model with a learned prior, contract v2. {description}"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ExportError(f"onnx.checker rejected the export: {' '.join(str(exc).split())}") from None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(proto.SerializeToString())
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for frames, seed in ((8, 0), (5, 2), (1, 3)):
        ex = example(frames, seed)
        with torch.no_grad():
            ref = effect(*ex)
        got = sess.run(out_names, {n: t.numpy() for n, t in zip(in_names, ex, strict=True)})
        for r, o in zip(ref, got, strict=True):
            worst = max(worst, float(np.max(np.abs(r.numpy() - o))))
    if not worst <= 10 * PARITY_TOL:
        raise ExportError(f"{out_path.name}: onnxruntime differs from torch by {worst:.3g}")
    try:
        EffectModel(out_path, cfg)
    except ModelError as exc:
        raise ExportError(f"the engine's loader rejects the export: {exc}") from None
    return out_path


def set_metadata(proto, props: dict[str, str]) -> None:
    """Replace an ONNX model's ``metadata_props`` with ``props`` (strings, as the contract defines them)."""
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def load_checkpoint(path: str | Path):
    """Rebuild the model from a training checkpoint: ``(model, checkpoint_dict)``."""
    import torch

    from models.vae import FrameVAE

    ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    model = FrameVAE(**ckpt["hparams"])
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def main(argv: list[str] | None = None) -> int:
    """``audio-diffusion export CHECKPOINT --out PATH.onnx``: export a training checkpoint."""
    p = argparse.ArgumentParser(prog="audio-diffusion export", description=main.__doc__)
    p.add_argument("checkpoint", help="checkpoint written by `audio-diffusion train` (--checkpoint)")
    p.add_argument("--out", required=True, help="output .onnx path")
    p.add_argument("--name", default=None, help="display name (default: the file stem)")
    p.add_argument("--description", default="")
    args = p.parse_args(argv)
    try:
        model, ckpt = load_checkpoint(args.checkpoint)
    except Exception as exc:
        print(f"error: cannot read checkpoint {args.checkpoint}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    cfg = StftConfig(**ckpt["cfg"])
    try:
        path = export_onnx(model, args.out, kind=model.kind, training_data=ckpt.get("training_data", "unknown"),
                           metrics=ckpt.get("metrics") or None, cfg=cfg, name=args.name,
                           description=args.description)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, opset {OPSET})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
