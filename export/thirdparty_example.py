"""A contract-v1 effect model built without PyTorch: the template for third-party models.

Run ``python -m export.thirdparty_example out.onnx`` and then ``audio-diffusion info out.onnx``.

The "VAE" here is linear and untrained, but honest about the contract (docs/model-contract.md):

* encoder: remove the frame's mean log-magnitude (its gain), project the remaining spectral envelope on
  ``latent_dim`` smooth cosine shapes across the bins (a cepstrum), rotated by a random orthogonal
  matrix: ``mu = (features - mean(features)) @ W_enc``;
* diffusion: ``z = sqrt(1 - a) * mu + sqrt(a) * noise``;
* decoder: ``out_features = features + (z - mu) @ W_dec``, i.e. the input's envelope component is
  swapped for the diffused one and everything the latent does not describe passes through. At ``a = 0``
  the output equals the input; at ``a = 1`` the spectral envelope is random (or the held ``z`` when the
  engine freezes the latent).

Any framework works as long as the file has the same input/output names, shapes, dtypes and metadata.

:func:`build_stateful_proto` is the contract-2 (stateful) variant: the diffused part of the latent,
``z - mu``, passes through a one-pole recurrent smoother over the frames, ``s_t = c s_{t-1} + (1 - c) (z_t -
mu_t)``, built as an ONNX ``RNN`` with a linear ("Affine") activation over the frames axis (batch 1, the
frames as the sequence), its hidden state carried by the engine as ``state_in_smooth`` / ``state_out_smooth``
([1, 1, latent_dim], declared in the ``state_shapes`` metadata). Noise then moves the envelope smoothly in
time, whatever the noise rate. ``python -m export.thirdparty_example out.onnx --stateful``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from realtime.config import DEFAULT, StftConfig
from realtime.engine.contract import (
    FRAMES_AXIS,
    INPUT_AMOUNT,
    INPUT_FEATURES,
    INPUT_NOISE,
    OUTPUT_FEATURES,
    OUTPUT_MU,
    STATE_IN,
    STATE_OUT,
    build_metadata,
)
from realtime.fileio import write_bytes

#: Opset and IR version old enough for every onnxruntime the host accepts (>= 1.17).
OPSET = 17
IR_VERSION = 9
#: Latent units per unit of envelope: sets how far (in nepers) unit noise moves the envelope.
ENVELOPE_SCALE = 6.0



def _latent_mix_nodes() -> list:
    """The nodes both examples share: encode the gain-free envelope to ``mu``, then the contract-1 mix
    ``z = sqrt(1 - a) * mu + sqrt(a) * noise`` and its difference ``dz = z - mu`` (amount clipped to 0..1, so a
    stray value cannot make a NaN). Needs initialisers ``W_enc`` and ``one``."""
    return [
        helper.make_node("ReduceMean", [INPUT_FEATURES], ["gain"], axes=[1], keepdims=1),
        helper.make_node("Sub", [INPUT_FEATURES, "gain"], ["envelope"]),
        helper.make_node("MatMul", ["envelope", "W_enc"], [OUTPUT_MU]),
        helper.make_node("Clip", [INPUT_AMOUNT, "", "one"], ["a_hi"]),
        helper.make_node("Relu", ["a_hi"], ["a"]),
        helper.make_node("Sub", ["one", "a"], ["one_minus_a"]),
        helper.make_node("Sqrt", ["one_minus_a"], ["keep"]),
        helper.make_node("Sqrt", ["a"], ["mix"]),
        helper.make_node("Mul", ["keep", OUTPUT_MU], ["z_mu"]),
        helper.make_node("Mul", ["mix", INPUT_NOISE], ["z_noise"]),
        helper.make_node("Add", ["z_mu", "z_noise"], ["z"]),
        helper.make_node("Sub", ["z", OUTPUT_MU], ["dz"]),
    ]

def _weights(n_bins: int, latent_dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Encoder and decoder matrices: orthonormal cosine shapes across bins, randomly rotated."""
    k = np.arange(n_bins)
    basis = np.stack([np.cos(np.pi * (j + 1) * (k + 0.5) / n_bins) for j in range(latent_dim)])
    basis /= np.linalg.norm(basis, axis=1, keepdims=True)  # [latent_dim, n_bins], orthonormal rows
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((latent_dim, latent_dim)))
    w_enc = (basis.T @ q) / ENVELOPE_SCALE  # [n_bins, latent_dim]
    w_dec = (q.T @ basis) * ENVELOPE_SCALE  # [latent_dim, n_bins]; w_enc @ w_dec projects on the basis
    return w_enc.astype(np.float32), w_dec.astype(np.float32)


def build_thirdparty_proto(cfg: StftConfig = DEFAULT, latent_dim: int = 8, seed: int = 0,
                           name: str = "cepstral-diffusion-example") -> onnx.ModelProto:
    """The example model as an in-memory ``onnx.ModelProto`` (checked by ``onnx.checker``)."""
    n_bins = cfg.n_bins
    w_enc, w_dec = _weights(n_bins, latent_dim, seed)

    def io(name: str, width: int) -> onnx.ValueInfoProto:
        # The first axis is symbolic: the engine sends any number of frames (rows in time order).
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [FRAMES_AXIS, width])

    inits = [
        numpy_helper.from_array(w_enc, "W_enc"),
        numpy_helper.from_array(w_dec, "W_dec"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    nodes = [
        *_latent_mix_nodes(),
        helper.make_node("MatMul", ["dz", "W_dec"], ["delta"]),
        helper.make_node("Add", [INPUT_FEATURES, "delta"], [OUTPUT_FEATURES]),
    ]
    graph = helper.make_graph(
        nodes, name,
        inputs=[io(INPUT_FEATURES, n_bins), io(INPUT_AMOUNT, 1), io(INPUT_NOISE, latent_dim)],
        outputs=[io(OUTPUT_FEATURES, n_bins), io(OUTPUT_MU, latent_dim)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="audio-diffusion-host/export/thirdparty_example")
    model.ir_version = IR_VERSION
    props = build_metadata(
        kind="diffusion", cfg=cfg, latent_dim=latent_dim, name=name,
        training_data=f"none (untrained linear cepstral projection, seed {seed})",
        producer=f"export/thirdparty_example.py (onnx.helper, onnx {onnx.__version__})",
        added_delay_samples=0,
        description="Swaps the spectral envelope for a diffused one; a template for third-party models.",
    )
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    return model


def build_thirdparty_model(path: str | Path, cfg: StftConfig = DEFAULT, latent_dim: int = 8,
                           seed: int = 0) -> Path:
    """Write the example model to ``path`` and return the path."""
    path = Path(path)
    write_bytes(path, build_thirdparty_proto(cfg, latent_dim, seed).SerializeToString())
    return path


#: Pole of the stateful example's smoother per frame (0.9 at 375 frames/s: a time constant of about 27 ms).
SMOOTH_POLE = 0.9
SMOOTH_STATE = "smooth"


def build_stateful_proto(cfg: StftConfig = DEFAULT, latent_dim: int = 8, seed: int = 0, pole: float = SMOOTH_POLE,
                         name: str = "smoothed-cepstral-diffusion-example") -> onnx.ModelProto:
    """The contract-2 example: the linear cepstral model with its latent offset smoothed by a carried state."""
    n_bins = cfg.n_bins
    w_enc, w_dec = _weights(n_bins, latent_dim, seed)
    d = latent_dim
    state_shape = [1, 1, d]

    def io(name: str, width: int) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [FRAMES_AXIS, width])

    inits = [
        numpy_helper.from_array(w_enc, "W_enc"),
        numpy_helper.from_array(w_dec, "W_dec"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        # RNN weights: W (input) [1, d, d] = (1 - c) I, R (recurrence) [1, d, d] = c I; the "Affine" activation
        # with alpha 1, beta 0 is the identity, so h_t = (1 - c) x_t + c h_{t-1} exactly.
        numpy_helper.from_array(((1.0 - pole) * np.eye(d, dtype=np.float32))[None], "W_rnn"),
        numpy_helper.from_array((pole * np.eye(d, dtype=np.float32))[None], "R_rnn"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array([-1, d], np.int64), "rows_d"),
    ]
    nodes = [
        *_latent_mix_nodes(),
        # [frames, d] -> [frames (sequence), 1 (batch), d]; the RNN runs the frames in time order.
        helper.make_node("Unsqueeze", ["dz", "axis1"], ["dz_seq"]),
        helper.make_node("RNN", ["dz_seq", "W_rnn", "R_rnn", "", "", STATE_IN + SMOOTH_STATE],
                         ["dz_smooth_seq", STATE_OUT + SMOOTH_STATE], hidden_size=d, activations=["Affine"],
                         activation_alpha=[1.0], activation_beta=[0.0]),
        helper.make_node("Reshape", ["dz_smooth_seq", "rows_d"], ["dz_smooth"]),
        helper.make_node("MatMul", ["dz_smooth", "W_dec"], ["delta"]),
        helper.make_node("Add", [INPUT_FEATURES, "delta"], [OUTPUT_FEATURES]),
    ]
    state = [helper.make_tensor_value_info(STATE_IN + SMOOTH_STATE, TensorProto.FLOAT, state_shape)]
    state_out = [helper.make_tensor_value_info(STATE_OUT + SMOOTH_STATE, TensorProto.FLOAT, state_shape)]
    graph = helper.make_graph(
        nodes, name,
        inputs=[io(INPUT_FEATURES, n_bins), io(INPUT_AMOUNT, 1), io(INPUT_NOISE, latent_dim)] + state,
        outputs=[io(OUTPUT_FEATURES, n_bins), io(OUTPUT_MU, latent_dim)] + state_out,
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="audio-diffusion-host/export/thirdparty_example")
    model.ir_version = IR_VERSION
    props = build_metadata(
        kind="diffusion", cfg=cfg, latent_dim=latent_dim, name=name,
        training_data=f"none (untrained linear cepstral projection, seed {seed})",
        producer=f"export/thirdparty_example.py (onnx.helper, onnx {onnx.__version__})",
        added_delay_samples=0, state_shapes={SMOOTH_STATE: state_shape},
        description="Contract 2 example: the diffused envelope offset is smoothed in time by a carried RNN state.",
    )
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    return model


def build_stateful_model(path: str | Path, cfg: StftConfig = DEFAULT, latent_dim: int = 8, seed: int = 0,
                         pole: float = SMOOTH_POLE) -> Path:
    """Write the stateful (contract-2) example to ``path`` and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(build_stateful_proto(cfg, latent_dim, seed, pole), str(path))
    return path


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    target = args[0] if args else "thirdparty_example.onnx"
    out = build_stateful_model(target) if "--stateful" in sys.argv else build_thirdparty_model(target)
    print(f"wrote {out}")
