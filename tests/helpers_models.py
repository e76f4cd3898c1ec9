"""Builders of good, bad and "fault" ONNX model files for tests (onnx.helper only, no PyTorch).

Each ``build_*`` function writes one ``.onnx`` file at ``path`` and returns the path. All start from
the conforming example of :mod:`export.thirdparty_example` (a linear cepstral "VAE", 48 kHz, n_fft 512,
hop 128, latent_dim 8 unless told otherwise) and break one thing.

Good
    :func:`build_good` - the third-party example itself.

Bad (``EffectModel`` must refuse them with a one-line ``ModelError``; :data:`BAD_MODELS` maps a case
name to ``(builder, words the message must contain)``)
    truncated file, random bytes, empty file, no metadata, one key missing, contract version 99,
    unknown model kind, bad feature type, wrong input name, wrong n_bins, int64 input, wrong sample
    rate / n_fft / hop, NaN output, rank-3 input, fixed frames axis, latent_dim metadata disagreeing
    with the noise input, ``mu`` with the wrong width at run time, frames that leak into each other,
    a stateful ``state_in``/``state_out`` model.

Fault models (load fine, misbehave at run time; for the engine's reliability tests)
    Each fault is toggled per frame by the ``amount`` input, so a test switches it on and off by
    moving the amount knob, with no model reload. The load-time probe uses amounts up to
    :data:`realtime.engine.model.PROBE_MAX_AMOUNT` (0.5), so the threshold must be >= 0.5.

    * :func:`build_nan_fault` - ``out_features`` (and optionally ``mu``) rows are NaN where
      ``amount > threshold``, exact pass-through of the good model elsewhere.
    * :func:`build_inf_fault` - the same with +Inf.
    * :func:`build_slow_fault` - when any row has ``amount > threshold`` the call first runs
      ``iterations`` dense n_bins x n_bins mat-vec products (a ``Loop``), so it becomes slow (about
      5 us per iteration on the dev VM); outputs are unchanged, so only deadlines are hit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.thirdparty_example import build_thirdparty_model, build_thirdparty_proto
from realtime.config import DEFAULT, StftConfig
from realtime.engine.contract import INPUT_AMOUNT, INPUT_FEATURES, OUTPUT_FEATURES, OUTPUT_MU

# -- proto surgery ---------------------------------------------------------------------------------


def _save(model: onnx.ModelProto, path: str | Path) -> Path:
    path = Path(path)
    onnx.save_model(model, str(path))
    return path


def _set_meta(model: onnx.ModelProto, **changes: str | None) -> onnx.ModelProto:
    """Set metadata keys (``None`` deletes the key)."""
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    del model.metadata_props[:]
    helper.set_model_props(model, props)
    return model


def _rename_uses(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Make every node that reads tensor ``old`` read ``new`` instead."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def _reroute_output(model: onnx.ModelProto, output: str) -> str:
    """Rename the producer of graph output ``output`` to ``<output>_pre``; the caller adds nodes making it."""
    pre = f"{output}_pre"
    for node in model.graph.node:
        for i, name in enumerate(node.output):
            if name == output:
                node.output[i] = pre
    _rename_uses(model.graph, output, pre)
    return pre


def _const(model: onnx.ModelProto, name: str, value: np.ndarray) -> str:
    model.graph.initializer.append(numpy_helper.from_array(value, name))
    return name


def _base(cfg: StftConfig = DEFAULT, latent_dim: int = 8) -> onnx.ModelProto:
    return build_thirdparty_proto(cfg, latent_dim, seed=0)


# -- good ------------------------------------------------------------------------------------------


def build_good(path: str | Path, cfg: StftConfig = DEFAULT, latent_dim: int = 8) -> Path:
    """The conforming third-party example model."""
    return build_thirdparty_model(path, cfg, latent_dim)


# -- bad: files ------------------------------------------------------------------------------------


def build_truncated(path: str | Path) -> Path:
    """The good model cut in the middle of its weights."""
    data = _base().SerializeToString()
    Path(path).write_bytes(data[: len(data) // 2])
    return Path(path)


def build_random_bytes(path: str | Path) -> Path:
    Path(path).write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return Path(path)


def build_empty(path: str | Path) -> Path:
    Path(path).write_bytes(b"")
    return Path(path)


# -- bad: metadata ---------------------------------------------------------------------------------


def build_with_metadata(path: str | Path, **changes: str | None) -> Path:
    """The good model with metadata keys changed (``None`` removes a key)."""
    return _save(_set_meta(_base(), **changes), path)


def build_no_metadata(path: str | Path) -> Path:
    model = _base()
    del model.metadata_props[:]
    return _save(model, path)


def build_missing_key(path: str | Path, key: str = "hop") -> Path:
    return build_with_metadata(path, **{key: None})


def build_contract_99(path: str | Path) -> Path:
    return build_with_metadata(path, contract_version="99")


def build_wrong_sample_rate(path: str | Path, sample_rate: int = 44100) -> Path:
    return build_with_metadata(path, sample_rate=str(sample_rate))


# -- bad: graph ------------------------------------------------------------------------------------


def build_wrong_input_name(path: str | Path, old: str = INPUT_FEATURES, new: str = "spectrum") -> Path:
    model = _base()
    for arg in model.graph.input:
        if arg.name == old:
            arg.name = new
    _rename_uses(model.graph, old, new)
    return _save(model, path)


def build_wrong_n_bins(path: str | Path, n_fft: int = 256) -> Path:
    """A graph for ``n_fft`` (129 bins) whose metadata claims the engine's 512."""
    model = build_thirdparty_proto(StftConfig(n_fft=n_fft, hop=n_fft // 4), 8)
    return _save(_set_meta(model, n_fft=str(DEFAULT.n_fft), hop=str(DEFAULT.hop)), path)


def build_int64_input(path: str | Path) -> Path:
    """``features`` declared int64 (cast to float inside, so onnxruntime loads it)."""
    model = _base()
    for arg in model.graph.input:
        if arg.name == INPUT_FEATURES:
            arg.type.tensor_type.elem_type = TensorProto.INT64
    _rename_uses(model.graph, INPUT_FEATURES, "features_f")
    cast = helper.make_node("Cast", [INPUT_FEATURES], ["features_f"], to=TensorProto.FLOAT)
    model.graph.node.insert(0, cast)
    return _save(model, path)


def build_rank3_input(path: str | Path) -> Path:
    """``features`` declared ``[frames, 1, n_bins]`` (reshaped to rank 2 inside)."""
    model = _base()
    for arg in model.graph.input:
        if arg.name == INPUT_FEATURES:
            dims = arg.type.tensor_type.shape.dim
            dims.insert(1, onnx.TensorShapeProto.Dimension(dim_value=1))
    _rename_uses(model.graph, INPUT_FEATURES, "features_2d")
    shape = _const(model, "shape_2d", np.array([-1, DEFAULT.n_bins], np.int64))
    model.graph.node.insert(0, helper.make_node("Reshape", [INPUT_FEATURES, shape], ["features_2d"]))
    return _save(model, path)


def build_fixed_frames(path: str | Path, frames: int = 1) -> Path:
    """Every input/output with a static first axis (the classic export without dynamic axes)."""
    model = _base()
    for arg in list(model.graph.input) + list(model.graph.output):
        arg.type.tensor_type.shape.dim[0].Clear()
        arg.type.tensor_type.shape.dim[0].dim_value = frames
    return _save(model, path)


def build_latent_mismatch(path: str | Path) -> Path:
    """Metadata says latent_dim 16, the graph's noise and mu are 8 wide."""
    return build_with_metadata(path, latent_dim="16")


def build_mu_wrong_width_at_run_time(path: str | Path) -> Path:
    """``mu`` computed 3 wide through a data-dependent Slice, so no static check can tell: only the probe."""
    model = _base()
    pre = _reroute_output(model, OUTPUT_MU)  # the decoder keeps reading the full-width tensor
    three = _const(model, "three", np.array([3.0], np.float32))
    zero = _const(model, "zero_f", np.array(0.0, np.float32))
    start, axis = _const(model, "s0", np.array([0], np.int64)), _const(model, "ax1", np.array([1], np.int64))
    model.graph.node.extend([
        # end = 3 + 0 * max(amount): a value onnxruntime cannot fold at load time.
        helper.make_node("ReduceMax", [INPUT_AMOUNT], ["a_max"], keepdims=0),
        helper.make_node("Mul", ["a_max", zero], ["a_zero"]),
        helper.make_node("Add", [three, "a_zero"], ["end_f"]),
        helper.make_node("Cast", ["end_f"], ["end"], to=TensorProto.INT64),
        helper.make_node("Slice", [pre, start, "end", axis], [OUTPUT_MU]),
    ])
    for arg in model.graph.output:
        if arg.name == OUTPUT_MU:
            arg.type.tensor_type.shape.dim[1].Clear()
            arg.type.tensor_type.shape.dim[1].dim_param = "latent"
    return _save(model, path)


def build_nan_output(path: str | Path) -> Path:
    """``out_features`` always NaN."""
    return build_nan_fault(path, threshold=-1.0)


def build_frame_mixing(path: str | Path) -> Path:
    """Adds a tenth of the batch mean to every frame: output depends on the other frames in the call."""
    model = _base()
    pre = _reroute_output(model, OUTPUT_FEATURES)
    model.graph.node.extend([
        helper.make_node("ReduceMean", [INPUT_FEATURES], ["batch_mean"], axes=[0], keepdims=1),
        helper.make_node("Mul", ["batch_mean", _const(model, "tenth", np.array(0.1, np.float32))], ["leak"]),
        helper.make_node("Add", [pre, "leak"], [OUTPUT_FEATURES]),
    ])
    return _save(model, path)


def build_stateful(path: str | Path) -> Path:
    """A model with the reserved ``state_in``/``state_out`` pair (not supported by contract 1)."""
    model = _base()
    model.graph.input.append(helper.make_tensor_value_info("state_in", TensorProto.FLOAT, ["frames", 4]))
    model.graph.output.append(helper.make_tensor_value_info("state_out", TensorProto.FLOAT, ["frames", 4]))
    model.graph.node.append(helper.make_node("Identity", ["state_in"], ["state_out"]))
    return _save(model, path)


# -- fault models ----------------------------------------------------------------------------------


def _value_fault(path: str | Path, value: float, threshold: float, outputs: tuple[str, ...],
                 cfg: StftConfig, latent_dim: int) -> Path:
    model = _base(cfg, latent_dim)
    bad = _const(model, "fault_value", np.array(value, np.float32))
    zero = _const(model, "fault_zero", np.array(0.0, np.float32))
    thr = _const(model, "fault_threshold", np.array(threshold, np.float32))
    model.graph.node.extend([
        helper.make_node("Greater", [INPUT_AMOUNT, thr], ["fault_on"]),  # [frames, 1], per frame
        helper.make_node("Where", ["fault_on", bad, zero], ["fault_add"]),
    ])
    for out in outputs:
        pre = _reroute_output(model, out)
        model.graph.node.append(helper.make_node("Add", [pre, "fault_add"], [out]))
    return _save(model, path)


def build_nan_fault(path: str | Path, threshold: float = 0.5, outputs: tuple[str, ...] = (OUTPUT_FEATURES,),
                    cfg: StftConfig = DEFAULT, latent_dim: int = 8) -> Path:
    """Rows of ``outputs`` are NaN exactly where ``amount > threshold`` (per frame)."""
    return _value_fault(path, float("nan"), threshold, outputs, cfg, latent_dim)


def build_inf_fault(path: str | Path, threshold: float = 0.5, outputs: tuple[str, ...] = (OUTPUT_FEATURES,),
                    cfg: StftConfig = DEFAULT, latent_dim: int = 8) -> Path:
    """Rows of ``outputs`` are +Inf exactly where ``amount > threshold`` (per frame)."""
    return _value_fault(path, float("inf"), threshold, outputs, cfg, latent_dim)


def build_slow_fault(path: str | Path, threshold: float = 0.5, iterations: int = 200,
                     cfg: StftConfig = DEFAULT, latent_dim: int = 8) -> Path:
    """Same outputs as the good model, but slow (``iterations`` mat-vecs) when any amount > threshold."""
    model = _base(cfg, latent_dim)
    n = cfg.n_bins
    w = (np.random.default_rng(1).standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
    body = helper.make_graph(
        [helper.make_node("MatMul", ["v_in", "W_slow"], ["v_mm"]),
         helper.make_node("Tanh", ["v_mm"], ["v_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "slow_body",
        inputs=[helper.make_tensor_value_info("iter", TensorProto.INT64, []),
                helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1, n])],
        outputs=[helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1, n])],
    )
    _const(model, "W_slow", w)
    thr = _const(model, "slow_threshold", np.array(threshold, np.float32))
    many = _const(model, "slow_many", np.array(iterations, np.int64))
    none = _const(model, "slow_none", np.array(0, np.int64))
    true = _const(model, "slow_true", np.array(True))
    v0 = _const(model, "slow_v0", np.full((1, n), 0.1, np.float32))
    pre = _reroute_output(model, OUTPUT_FEATURES)
    model.graph.node.extend([
        helper.make_node("ReduceMax", [INPUT_AMOUNT], ["amount_max"], keepdims=0),
        helper.make_node("Greater", ["amount_max", thr], ["slow_on"]),
        helper.make_node("Where", ["slow_on", many, none], ["slow_trips"]),
        helper.make_node("Loop", ["slow_trips", true, v0], ["slow_v"], body=body),
        # 0 * (finite value): ties the loop into the output so the optimiser cannot drop it.
        helper.make_node("ReduceSum", ["slow_v"], ["slow_sum"], keepdims=0),
        helper.make_node("Mul", ["slow_sum", _const(model, "slow_zero", np.array(0.0, np.float32))],
                         ["slow_nothing"]),
        helper.make_node("Add", [pre, "slow_nothing"], [OUTPUT_FEATURES]),
    ])
    return _save(model, path)


# -- the table the tests iterate -------------------------------------------------------------------

#: case -> (builder(path) -> Path, words the ModelError message must contain, case-insensitive)
BAD_MODELS: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "truncated": (build_truncated, ("cannot load", "truncated")),
    "random_bytes": (build_random_bytes, ("cannot load", "not an onnx")),
    "empty": (build_empty, ("empty",)),
    "no_metadata": (build_no_metadata, ("missing metadata", "contract_version")),
    "missing_hop": (build_missing_key, ("missing metadata", "'hop'")),
    "contract_99": (build_contract_99, ("unsupported contract version 99", "supports 1")),
    "unknown_kind": (lambda p: build_with_metadata(p, model_kind="reverb"), ("model_kind", "reverb")),
    "feature_type": (lambda p: build_with_metadata(p, feature_type="mel80"), ("feature_type", "mel80")),
    "sample_rate_text": (lambda p: build_with_metadata(p, sample_rate="48k"), ("sample_rate", "integer")),
    "metrics_not_json": (lambda p: build_with_metadata(p, metrics="{oops"), ("metrics", "json")),
    "wrong_input_name": (build_wrong_input_name, ("wrong input names", "'spectrum'", "'features'")),
    "wrong_n_bins": (build_wrong_n_bins, ("'features'", "129 columns", "n_bins 257")),
    "int64": (build_int64_input, ("'features'", "int64", "float32")),
    "wrong_sample_rate": (build_wrong_sample_rate, ("44100 hz", "48000 hz", "run the engine at 44100")),
    "wrong_n_fft": (lambda p: build_with_metadata(p, n_fft="1024"), ("n_fft 1024", "n_fft 512")),
    "wrong_hop": (lambda p: build_with_metadata(p, hop="256"), ("hop 256", "hop 128")),
    "nan_output": (build_nan_output, ("nan/inf", "out_features")),
    "rank3": (build_rank3_input, ("'features'", "rank 3")),
    "fixed_frames": (build_fixed_frames, ("fixed frames axis", "dynamic")),
    "latent_mismatch": (build_latent_mismatch, ("'noise'", "latent_dim 16")),
    "mu_width_runtime": (build_mu_wrong_width_at_run_time, ("'mu'", "shape [8, 3]", "[8, 8]")),
    "frame_mixing": (build_frame_mixing, ("independently",)),
    "stateful": (build_stateful, ("state_in", "stateful", "not supported")),
}


def build_bad(case: str, directory: str | Path) -> Path:
    """Write the bad model ``case`` of :data:`BAD_MODELS` into ``directory``."""
    return BAD_MODELS[case][0](Path(directory) / f"{case}.onnx")


__all__ = [name for name in dir() if name.startswith("build_")] + ["BAD_MODELS"]
