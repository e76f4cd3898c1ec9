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
    build_metadata,
)
from realtime.fileio import write_bytes

#: Opset and IR version old enough for every onnxruntime the host accepts (>= 1.17).
OPSET = 17
IR_VERSION = 9
#: Latent units per unit of envelope: sets how far (in nepers) unit noise moves the envelope.
ENVELOPE_SCALE = 6.0


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
        helper.make_node("ReduceMean", [INPUT_FEATURES], ["gain"], axes=[1], keepdims=1),
        helper.make_node("Sub", [INPUT_FEATURES, "gain"], ["envelope"]),
        helper.make_node("MatMul", ["envelope", "W_enc"], [OUTPUT_MU]),
        # z = sqrt(1 - a) * mu + sqrt(a) * noise; amount is clipped so a stray value cannot make a NaN.
        helper.make_node("Clip", [INPUT_AMOUNT, "", "one"], ["a_hi"]),
        helper.make_node("Relu", ["a_hi"], ["a"]),
        helper.make_node("Sub", ["one", "a"], ["one_minus_a"]),
        helper.make_node("Sqrt", ["one_minus_a"], ["keep"]),
        helper.make_node("Sqrt", ["a"], ["mix"]),
        helper.make_node("Mul", ["keep", OUTPUT_MU], ["z_mu"]),
        helper.make_node("Mul", ["mix", INPUT_NOISE], ["z_noise"]),
        helper.make_node("Add", ["z_mu", "z_noise"], ["z"]),
        helper.make_node("Sub", ["z", OUTPUT_MU], ["dz"]),
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


if __name__ == "__main__":
    out = build_thirdparty_model(sys.argv[1] if len(sys.argv) > 1 else "thirdparty_example.onnx")
    print(f"wrote {out}")
