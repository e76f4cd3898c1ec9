"""The pipelines the engine is compared with in ``python -m realtime.tools.bench`` (same input, same weights).

(a) is the engine itself (numba STFT, one onnxruntime call per block for all its frames). Here:

* (b) :class:`NumpyOrtPipeline`: plain-numpy streaming STFT (:class:`realtime.tools.microbench.NumpyStft`, a
  Python loop over frames) and one ``InferenceSession.run`` per frame: no numba, no batching, no IO binding.
* (c) :class:`TorchPipeline`: the pipeline a user writes first: the same numpy STFT and the PyTorch eager
  module per frame. The module is rebuilt from the ONNX file's own initializers (:func:`torch_model_from_onnx`),
  so (a), (b) and (c) run the very same weights. torch is imported only here, and only when (c) is built:
  the live host never needs it.

Both baselines keep the input phase, apply the model's magnitudes the engine's way and have the engine's
latency, so their outputs line up with the engine's sample for sample (:func:`model_parity` and the
benchmark check how closely).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from realtime.config import StftConfig
from realtime.dsp.features import EPS
from realtime.engine.contract import INPUT_AMOUNT, INPUT_FEATURES, INPUT_NOISE, OUTPUT_FEATURES
from realtime.engine.model import make_session_options
from realtime.tools.microbench import NumpyStft


def _apply_magnitudes(spec: np.ndarray, out_features: np.ndarray) -> np.ndarray:
    """New magnitudes from ``out_features`` with the input phase (what ``apply_features_into`` does)."""
    mag_in = np.abs(spec)
    mag = np.maximum(np.exp(np.minimum(out_features, 30.0)) - EPS, 0.0)
    return np.where(mag_in > 1e-20, spec * (mag / np.maximum(mag_in, 1e-20)), 0.0)


class _FramePipeline(NumpyStft):
    """Numpy streaming STFT calling ``self.run_frame`` on every frame's log-magnitude features.

    Parameters
    ----------
    cfg : StftConfig
    block_size : int
        Sets the latency the same way the engine's fixed block size does.
    latent_dim : int
    amount : float
        Diffusion amount fed with every frame.
    seed : int
        Seed of the (white, per-frame) noise: what a first implementation draws.
    """

    def __init__(self, cfg: StftConfig, block_size: int, latent_dim: int, amount: float, seed: int) -> None:
        super().__init__(cfg, block_size)
        self.latent_dim = latent_dim
        self.amount = np.full((1, 1), amount, np.float32)
        self.rng = np.random.default_rng(seed)

    def run_frame(self, features: np.ndarray, noise: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def transform(self, spec: np.ndarray) -> np.ndarray:
        features = np.log(np.abs(spec) + EPS).astype(np.float32)[None, :]
        noise = self.rng.standard_normal((1, self.latent_dim)).astype(np.float32)
        return _apply_magnitudes(spec, self.run_frame(features, noise)[0])


class NumpyOrtPipeline(_FramePipeline):
    """(b): numpy STFT + one plain ``InferenceSession.run`` per frame (same session options as the engine)."""

    def __init__(self, model_path: str | Path, cfg: StftConfig, block_size: int, latent_dim: int,
                 amount: float = 0.0, seed: int = 0) -> None:
        super().__init__(cfg, block_size, latent_dim, amount, seed)
        # one thread, like the engine: the comparison is per core, not per machine
        self.sess = ort.InferenceSession(str(model_path), make_session_options(), providers=["CPUExecutionProvider"])

    def run_frame(self, features: np.ndarray, noise: np.ndarray) -> np.ndarray:
        feeds = {INPUT_FEATURES: features, INPUT_AMOUNT: self.amount, INPUT_NOISE: noise}
        return self.sess.run([OUTPUT_FEATURES], feeds)[0]


class TorchPipeline(_FramePipeline):
    """(c): numpy STFT + the PyTorch eager module per frame (``torch.no_grad``, one intra-op thread)."""

    def __init__(self, module, cfg: StftConfig, block_size: int, latent_dim: int, amount: float = 0.0,
                 seed: int = 0) -> None:
        import torch

        super().__init__(cfg, block_size, latent_dim, amount, seed)
        torch.set_num_threads(1)  # same single core as (a) and (b); more threads only fight on 2 cores
        self.torch = torch
        self.module = module.eval()
        self.amount_t = torch.from_numpy(self.amount)

    def run_frame(self, features: np.ndarray, noise: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            out, _ = self.module(torch.from_numpy(features), self.amount_t, torch.from_numpy(noise))
        return out.numpy()


def torch_available() -> bool:
    """Whether (c) can be built (torch is an optional, training-only dependency)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _initializers(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The file's initializers by name, float32; in a quantised (QDQ) file each weight that a
    ``DequantizeLinear`` node expands is dequantised under that node's output name (its float name)."""
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "DequantizeLinear" and all(x in inits for x in node.input):
            q, scale = inits[node.input[0]].astype(np.float64), inits[node.input[1]].astype(np.float64)
            zero = inits[node.input[2]].astype(np.float64) if len(node.input) > 2 else np.zeros_like(scale)
            axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            if scale.ndim == 1 and q.ndim > 0:
                shape[axis] = -1
            w = ((q - zero.reshape(shape)) * scale.reshape(shape)).astype(np.float32)
            inits[node.output[0]] = w
            inits.setdefault(node.input[0].removesuffix("_quantized"), w)  # e.g. encoder.0.weight
    return inits, {p.key: p.value for p in proto.metadata_props}


def _linear_example_module(w_enc: np.ndarray, w_dec: np.ndarray):
    """torch twin of export/thirdparty_example.py's graph."""
    import torch

    class LinearCepstral(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("w_enc", torch.from_numpy(w_enc.copy()))
            self.register_buffer("w_dec", torch.from_numpy(w_dec.copy()))

        def forward(self, features, amount, noise):
            mu = (features - features.mean(dim=1, keepdim=True)) @ self.w_enc
            a = amount.clamp(0.0, 1.0)
            z = torch.sqrt(1.0 - a) * mu + torch.sqrt(a) * noise
            return features + (z - mu) @ self.w_dec, mu

    return LinearCepstral()


def torch_model_from_onnx(path: str | Path):
    """Rebuild the torch module of an ONNX model from the file's initializers.

    Supports :class:`models.vae.FrameVAE` exports (initializer names are the ``state_dict`` keys; the
    architecture is read off the weight shapes) and the linear example of export/thirdparty_example.py.

    Returns
    -------
    torch.nn.Module in eval mode, taking ``(features, amount, noise)`` and returning ``(out_features, mu)``.

    Raises
    ------
    ValueError
        For any other graph.
    """
    inits, meta = _initializers(path)
    if "encoder.0.weight" in inits:
        import torch

        from models.vae import FrameVAE

        enc = sorted((k for k in inits if k.startswith("encoder.") and k.endswith(".weight")),
                     key=lambda k: int(k.split(".")[1]))
        hidden = tuple(int(inits[k].shape[0]) for k in enc[:-1])
        n_bins = int(inits[enc[0]].shape[1])
        latent = int(inits[enc[-1]].shape[0]) // 2
        model = FrameVAE(n_bins, latent, hidden, meta.get("model_kind", "diffusion"))
        state = {k: torch.from_numpy(np.array(v)) for k, v in inits.items() if k in model.state_dict()}
        model.load_state_dict(state, strict=True)
        return model.eval()
    if "W_enc" in inits and "W_dec" in inits:
        return _linear_example_module(inits["W_enc"], inits["W_dec"]).eval()
    raise ValueError(f"{Path(path).name}: not a FrameVAE export nor the third-party example; "
                     "cannot rebuild a torch module from it")


def model_parity(path: str | Path, module, features: np.ndarray, latent_dim: int, seed: int = 0) -> float:
    """Max abs difference of ``out_features`` between onnxruntime and the torch ``module``.

    Checked on ``features`` at amount 0 and at random amounts with random noise.
    """
    import torch

    sess = ort.InferenceSession(str(path), make_session_options(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    n = features.shape[0]
    f = np.ascontiguousarray(features, np.float32)
    cases = [(np.zeros((n, 1), np.float32), np.zeros((n, latent_dim), np.float32)),
             (rng.uniform(0, 1, (n, 1)).astype(np.float32), rng.standard_normal((n, latent_dim)).astype(np.float32))]
    worst = 0.0
    with torch.no_grad():
        for amount, noise in cases:
            ref = sess.run([OUTPUT_FEATURES], {INPUT_FEATURES: f, INPUT_AMOUNT: amount, INPUT_NOISE: noise})[0]
            got, _ = module(torch.from_numpy(f), torch.from_numpy(amount), torch.from_numpy(noise))
            worst = max(worst, float(np.max(np.abs(got.numpy() - ref))))
    return worst
