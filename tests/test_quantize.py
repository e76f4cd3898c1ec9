"""Static int8 quantisation (export/quantize.py) on real models, and the shipped int8 default model."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from export.quantize import QUANT_KEY, QuantizeError, calibration_frames, quantize_int8
from realtime.config import StftConfig
from realtime.engine.model import EffectModel
from realtime.paths import PRETRAINED

ROOT = PRETRAINED.parent.parent


@pytest.fixture(scope="module")
def calib():
    return calibration_frames(StftConfig(), seconds=2.0, frames=512)


def _alone_vs_batched(m: EffectModel, feats: np.ndarray, seed: int = 0) -> float:
    """Max |difference| between running each frame alone and all of them in one batch."""
    rng = np.random.default_rng(seed)
    n = len(feats)
    amount = rng.uniform(0, 1, (n, 1)).astype(np.float32)
    noise = rng.standard_normal((n, m.latent_dim)).astype(np.float32)
    batch, _ = m.run(feats, amount, noise)
    alone = np.concatenate([m.run(feats[i:i + 1], amount[i:i + 1], noise[i:i + 1])[0] for i in range(n)])
    return float(np.abs(alone - batch).max())


def test_restoration_models_calibrate_on_noisy_frames(calib):
    """A denoiser's calibration must contain the noise it removes: its quiet bins are raised by it."""
    noisy = calibration_frames(StftConfig(), seconds=2.0, frames=512, noisy=True)
    assert noisy.shape == calib.shape and np.isfinite(noisy).all()
    floor = np.log(1e-4)
    assert (noisy < floor).mean() < 0.5 * (calib < floor).mean()  # fewer near-silent bins
    again = calibration_frames(StftConfig(), seconds=2.0, frames=512, noisy=True)
    np.testing.assert_array_equal(noisy, again)  # seeded


def test_stateful_denoiser_quantises_with_its_states_and_log_domain_products_float(tmp_path):
    """Contract 2: calibration feeds the states; the ERB pooling of band powers (after Exp) and the gain
    spreading (after Sigmoid) stay float (quantised, they moved the output by 11 log units)."""
    pytest.importorskip("onnx")
    import onnx

    from export.quantize import log_domain_products
    from tests.test_restore import untrained_denoiser

    src = untrained_denoiser(tmp_path / "denoise-test.onnx")
    assert set(log_domain_products(onnx.load(str(src)))) == {"/MatMul", "/MatMul_1"}
    calib = calibration_frames(StftConfig(), seconds=2.0, frames=256, noisy=True)
    report = quantize_int8(src, tmp_path / "q.onnx", calib)
    assert EffectModel(tmp_path / "q.onnx").stateful
    assert report["mean_abs_diff"] < 0.1, report


def test_quantised_copy_loads_is_smaller_and_close(tp_model, calib, tmp_path):
    out = tmp_path / "q.onnx"
    report = quantize_int8(tp_model, out, calib)
    q = EffectModel(out, max_frames=64)  # the loader's contract probe passes (finite, frame-independent)
    assert q.info.metrics == EffectModel(tp_model).info.metrics
    assert report["int8_mb"] < report["float_mb"]
    assert report["mean_abs_diff"] < 0.05, report  # log-magnitude units (0.05 = 0.4 dB)
    assert np.isfinite(report["max_abs_diff"])
    # Fixed scales: a frame's output does not depend on the rest of the batch (up to the float rounding
    # of onnxruntime's MatMulIntegerToFloat, which this MatMul graph fuses into).
    assert _alone_vs_batched(q, calib[:24]) < 1e-5
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert "int8" in meta[QUANT_KEY]
    with pytest.raises(QuantizeError, match="already quantised"):
        quantize_int8(out, tmp_path / "qq.onnx", calib)


def test_shipped_v1_default_is_int8_and_frame_independent(calib):
    m = EffectModel(PRETRAINED / "default-v1.onnx", max_frames=64)
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(PRETRAINED / "default-v1.onnx")).metadata_props}
    assert QUANT_KEY in meta
    # QGemm: integer products, float parts elementwise: bit-identical whatever the batch.
    assert _alone_vs_batched(m, calib[:40]) == 0.0
    # Its stored metrics were re-measured for the int8 network and still beat the smoothing baseline.
    met = m.info.metrics
    assert met["lsd_db_speech"] < met["lsd_baseline_db_speech"]
    assert met["lsd_db_synthetic"] < met["lsd_baseline_db_synthetic"]


def test_torch_twin_of_an_int8_model_uses_its_dequantised_weights(calib):
    pytest.importorskip("torch", reason="torch is a training-only dependency")
    from realtime.tools.baselines import model_parity, torch_model_from_onnx

    path = PRETRAINED / "default-v1.onnx"
    module = torch_model_from_onnx(path)
    # Not bit-equal: the twin keeps float activations where the file quantises them to uint8.
    diff = model_parity(path, module, calib[:64], 32)
    assert 0.0 < diff < 1.0, diff


def test_quantize_cli_bad_input_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "realtime.cli", "quantize", str(tmp_path / "missing.onnx"),
                        "--out", str(tmp_path / "o.onnx")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "missing.onnx" in lines[0] and "not found" in lines[0], r.stderr
    assert not (tmp_path / "o.onnx").exists()
