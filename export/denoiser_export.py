"""Export :class:`models.denoiser.StatefulDenoiser` as a contract-v2 (stateful) ONNX model, and verify it.

Graph: inputs ``features [frames, 257]``, ``amount [frames, 1]``, ``noise [frames, 8]`` (unused by the
network, kept by the contract) and ``state_in_gru [layers, 1, hidden]``; outputs ``out_features``, ``mu`` and
``state_out_gru``. The frames axis is the GRU's sequence axis (batch 1), so one call over N frames equals N
one-frame calls with the state carried; :func:`check_streaming` verifies that on real frames after export,
as does the engine's v2 loader.

``audio-diffusion train-denoiser`` (this module's :func:`main`) trains with :mod:`models.denoiser_train` and
exports here (models never import export).
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import numpy as np

from export.onnx_export import OPSET, PRODUCER, ExportError, export_or_report, real_frames, set_metadata
from realtime import __version__
from realtime.config import StftConfig
from realtime.engine import contract as C

#: torch vs onnxruntime, and one call vs frame-by-frame calls: max abs difference allowed of the linear gains
#: (``exp(out - features)``; the log of a gain near -120 dB magnifies rounding meaninglessly) and of the states.
PARITY_TOL = 1e-4


def metadata(model, *, cfg: StftConfig, name: str, training_data: str, description: str,
             metrics: dict | None) -> dict[str, str]:
    """Contract-v2 metadata, built and checked by the contract module (the states' names and shapes)."""
    shapes = {k: list(v) for k, v in model.state_shapes().items()}
    return C.build_metadata(kind="restoration", cfg=cfg, latent_dim=model.latent_dim, name=name,
                            training_data=training_data, producer=PRODUCER, description=description,
                            metrics=metrics, state_shapes=shapes, contract_version=2)


def export_denoiser(model, out_path: str | Path, *, training_data: str, name: str, description: str = "",
                    metrics: dict | None = None, cfg: StftConfig | None = None) -> Path:
    """Write ``model`` as a stateful ONNX file and check it (onnx.checker, torch parity, streaming).

    Raises
    ------
    ExportError
        If a check fails.
    """
    import onnx
    import torch

    cfg = cfg or StftConfig()
    out_path = Path(out_path)
    meta = metadata(model, cfg=cfg, name=name, training_data=training_data, description=description, metrics=metrics)
    model = model.cpu().eval()
    names = list(model.state_shapes())
    example = (torch.randn(3, model.n_bins) - 4.0, torch.full((3, 1), 1.0), torch.zeros(3, model.latent_dim),
               *model.initial_state())
    inputs = [*C.INPUT_NAMES, *(f"state_in_{k}" for k in names)]
    outputs = [*C.OUTPUT_NAMES, *(f"state_out_{k}" for k in names)]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, example, buf, input_names=inputs, output_names=outputs,
                          dynamic_axes={n: {0: C.FRAMES_AXIS} for n in (*C.INPUT_NAMES, *C.OUTPUT_NAMES)},
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    got = [i.name for i in proto.graph.input]
    if got != inputs:
        raise ExportError(f"exported inputs {got}, expected {inputs} (an unused input was dropped?)")
    set_metadata(proto, meta)
    proto.producer_name, proto.producer_version = "audio-diffusion-host", __version__
    proto.doc_string = f"Audio Diffusion Host restoration model, contract v2 (stateful GRU). {description}".strip()
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ExportError(f"onnx.checker rejected the export: {' '.join(str(exc).split())}") from None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(proto.SerializeToString())
    feats = real_frames(cfg)[:200]
    diff = parity(model, out_path, feats)
    if not diff <= PARITY_TOL:
        raise ExportError(f"{out_path.name}: onnxruntime differs from torch by {diff:.3g} (> {PARITY_TOL:g})")
    sdiff = check_streaming(out_path, feats)
    if not sdiff <= PARITY_TOL:
        raise ExportError(f"{out_path.name}: one call over {len(feats)} frames differs from frame-by-frame calls "
                          f"by {sdiff:.3g}")
    return out_path


def _session(path: str | Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_stream(sess, feats: np.ndarray, amount: float = 1.0,
               frames_per_call: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run ``feats`` through a session in calls of ``frames_per_call`` frames (all at once when ``None``),
    carrying the states; returns ``(out_features, final states concatenated flat)``."""
    states = {i.name[len("state_in_"):]: np.zeros(i.shape, np.float32) for i in sess.get_inputs()
              if i.name.startswith("state_in_")}
    out_names = [C.OUTPUT_FEATURES, *(f"state_out_{k}" for k in states)]
    latent = [i.shape[1] for i in sess.get_inputs() if i.name == C.INPUT_NOISE][0]
    n = len(feats)
    step = frames_per_call or max(n, 1)
    outs = []
    for s in range(0, n, step):
        f = np.ascontiguousarray(feats[s:s + step], np.float32)
        k = len(f)
        feeds = {C.INPUT_FEATURES: f, C.INPUT_AMOUNT: np.full((k, 1), amount, np.float32),
                 C.INPUT_NOISE: np.zeros((k, latent), np.float32)}
        feeds.update({f"state_in_{name}": v for name, v in states.items()})
        out, *new = sess.run(out_names, feeds)
        states = dict(zip(states, new, strict=True))
        outs.append(out)
    flat = np.concatenate([v.ravel() for v in states.values()])
    return (np.concatenate(outs) if outs else np.zeros((0, feats.shape[1]), np.float32)), flat


def parity(model, path: str | Path, feats: np.ndarray) -> float:
    """Max abs difference of ``out_features`` and the state between torch and onnxruntime."""
    import torch

    with torch.no_grad():
        n = len(feats)
        t_out, _, *t_h = model(torch.from_numpy(feats), torch.ones(n, 1), torch.zeros(n, model.latent_dim),
                               *model.initial_state())
    o_out, o_h = run_stream(_session(path), feats)
    t_flat = np.concatenate([t.numpy().ravel() for t in t_h])
    return max(gain_diff(o_out, t_out.numpy(), feats), float(np.abs(o_h - t_flat).max()))


def gain_diff(a: np.ndarray, b: np.ndarray, feats: np.ndarray) -> float:
    """Max abs difference of the linear gains two outputs apply to ``feats``."""
    return float(np.abs(np.exp(a.astype(np.float64) - feats) - np.exp(b.astype(np.float64) - feats)).max())


def check_streaming(path: str | Path, feats: np.ndarray) -> float:
    """Max abs difference between one call over all frames and one call per frame (state carried)."""
    sess = _session(path)
    whole, h1 = run_stream(sess, feats)
    single, h2 = run_stream(sess, feats, frames_per_call=1)
    return max(gain_diff(whole, single, feats), float(np.abs(h1 - h2).max()))


def export_trained(model, out: str | Path, summary: dict, name: str) -> Path | None:
    """The exporter :func:`models.denoiser_train.main` calls: ``None`` after a one-line error."""
    desc = ("Stateful causal denoiser (GRU over ERB bands + fine low-bin gains); amount = attenuation limit "
            "(0 bypass, 0.5 -30 dB, 1 no limit); 0 samples of look-ahead.")
    path = export_or_report(export_denoiser, model, out, training_data=summary["training_data"], name=name,
                            description=desc,
                            metrics={k: summary[k] for k in ("steps", "train_seconds", "val_loss") if k in summary})
    if path is None:
        return None
    print(f"exported opset {OPSET} (contract v2, stateful): {path}", file=sys.stderr)
    return path


def main(argv: list[str] | None = None) -> int:
    """``audio-diffusion train-denoiser``: train (models.denoiser_train), then export here."""
    from models import denoiser_train

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--from-checkpoint" in argv:  # export a saved checkpoint again: --from-checkpoint CKPT --out OUT [--name N]
        get = lambda flag, default=None: argv[argv.index(flag) + 1] if flag in argv else default  # noqa: E731
        model, summary = denoiser_train.load_checkpoint(get("--from-checkpoint"))
        name = get("--name", "Denoise (speech and music over realistic noise)")
        return 0 if export_trained(model, get("--out", "models/pretrained/denoise.onnx"), summary, name) else 1
    return denoiser_train.main(argv, exporter=export_trained)


if __name__ == "__main__":
    raise SystemExit(main())
