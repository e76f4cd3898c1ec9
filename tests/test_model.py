"""EffectModel: every bad model is refused with a one-line ModelError; good and fault models run."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.config import DEFAULT, StftConfig
from realtime.dsp.features import log_magnitude
from realtime.engine.contract import ModelError
from realtime.engine.model import EffectModel, describe, measure_inference, probe_features
from tests.helpers_models import (
    BAD_MODELS,
    build_bad,
    build_good,
    build_inf_fault,
    build_nan_fault,
    build_slow_fault,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def good(model_dir):
    return build_good(model_dir / "good.onnx")


def load_error(path, cfg=DEFAULT) -> str:
    with pytest.raises(ModelError) as exc:
        EffectModel(path, cfg)
    msg = str(exc.value)
    assert "\n" not in msg and len(msg) < 400, msg
    return msg


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_bad_model_gives_specific_one_line_error(case, model_dir):
    msg = load_error(build_bad(case, model_dir)).lower()
    for word in BAD_MODELS[case][1]:
        assert word.lower() in msg, (case, msg)
    assert msg.startswith(f"{case}.onnx: ")


def test_missing_file_and_directory(tmp_path):
    assert "model file not found" in load_error(tmp_path / "nope.onnx")
    assert "not a file" in load_error(tmp_path)


def test_graph_onnxruntime_rejects_is_not_called_corrupt(good, tmp_path):
    import onnx

    model = onnx.load(str(good))
    model.graph.node[0].op_type = "NoSuchOp"
    onnx.save_model(model, str(tmp_path / "badop.onnx"))
    msg = load_error(tmp_path / "badop.onnx")
    assert "cannot load the graph" in msg and "corrupt" not in msg


def rand_inputs(n: int, latent_dim: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    feats = log_magnitude(rng.standard_normal((n, 257)) + 1j * rng.standard_normal((n, 257)))
    amount = rng.uniform(0, 1, (n, 1)).astype(np.float32)
    noise = rng.standard_normal((n, latent_dim)).astype(np.float32)
    return feats, amount, noise


def test_thirdparty_model_loads_and_runs(good):
    m = EffectModel(good, DEFAULT)
    assert (m.n_bins, m.latent_dim, m.info.kind, m.window_mismatch) == (257, 8, "diffusion", False)
    assert m.info.added_delay_samples == 0 and m.info.path == good
    feats, amount, noise = rand_inputs(16)
    out, mu = m.run(feats, amount, noise)
    assert out.shape == (16, 257) and mu.shape == (16, 8)
    assert out.dtype == mu.dtype == np.float32
    assert np.isfinite(out).all() and np.isfinite(mu).all()
    # amount 0 reconstructs the input exactly (the example decodes z - mu); amount 1 changes it.
    out0, _ = m.run(feats, np.zeros_like(amount), noise)
    np.testing.assert_allclose(out0, feats, atol=1e-4)
    out1, _ = m.run(feats, np.ones_like(amount), noise)
    assert np.abs(out1 - feats).mean() > 0.1


def test_batch_equals_single_frames_for_both_paths(good):
    m = EffectModel(good, DEFAULT, max_frames=16)
    feats, amount, noise = rand_inputs(16, seed=3)
    out, mu = m.run(feats, amount, noise)
    m.features_in[:], m.amount_in[:], m.noise_in[:] = feats, amount, noise
    b_out, b_mu = m.run_buffered(16)
    np.testing.assert_allclose(b_out, out, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(b_mu, mu, rtol=1e-6, atol=1e-6)
    for f in range(16):
        o, u = m.run(feats[f:f + 1], amount[f:f + 1], noise[f:f + 1])
        np.testing.assert_allclose(o, out[f:f + 1], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(u, mu[f:f + 1], rtol=1e-5, atol=1e-5)


def test_views_of_preallocated_buffers_and_zero_frames(good):
    m = EffectModel(good, DEFAULT, max_frames=8)
    buf_f, buf_a, buf_n = (np.zeros((8, w), np.float32) for w in (257, 1, 8))
    buf_f[:] = probe_features(DEFAULT, 8)[0]
    for n in range(9):
        out, mu = m.run(buf_f[:n], buf_a[:n], buf_n[:n])
        assert out.shape == (n, 257) and mu.shape == (n, 8)
        b_out, b_mu = m.run_buffered(n)
        assert b_out.shape == (n, 257) and b_mu.shape == (n, 8)
    with pytest.raises(ValueError, match="max_frames"):
        m.run(np.zeros((9, 257), np.float32), np.zeros((9, 1), np.float32), np.zeros((9, 8), np.float32))
    with pytest.raises(ValueError, match="max_frames"):
        m.run_buffered(9)


def test_buffered_outputs_are_reused_views(good):
    m = EffectModel(good, DEFAULT, max_frames=4)
    m.warm_up()
    a, _ = m.run_buffered(4)
    b, _ = m.run_buffered(2)
    assert np.shares_memory(a, b)


def test_engine_cfg_none_serves_the_model_and_window_mode_may_differ(model_dir):
    ll = StftConfig(n_fft=1024, hop=256, window="low_latency")
    path = build_good(model_dir / "ll.onnx", ll, latent_dim=4)
    m = EffectModel(path)
    assert m.cfg == ll and m.n_bins == 513 and m.latent_dim == 4 and not m.window_mismatch
    m2 = EffectModel(path, StftConfig(n_fft=1024, hop=256, window="sqrt_hann"))
    assert m2.window_mismatch and "model: low_latency" in repr(m2)
    assert "n_fft 1024" in load_error(path, DEFAULT)


@pytest.mark.parametrize("builder", [build_nan_fault, build_inf_fault])
def test_value_faults_toggle_per_frame_with_amount(builder, model_dir):
    path = builder(model_dir / f"{builder.__name__}.onnx", outputs=("out_features", "mu"))
    m = EffectModel(path, DEFAULT)  # loads: the probe stays at amount <= 0.5
    feats, _, noise = rand_inputs(4)
    amount = np.array([[0.0], [0.7], [0.5], [1.0]], np.float32)
    out, mu = m.run(feats, amount, noise)
    assert np.isfinite(out).all(axis=1).tolist() == [True, False, True, False]
    assert np.isfinite(mu).all(axis=1).tolist() == [True, False, True, False]
    ref, _ = EffectModel(build_good(model_dir / "ref.onnx"), DEFAULT).run(feats, amount, noise)
    np.testing.assert_array_equal(out[[0, 2]], ref[[0, 2]])


def test_slow_fault_keeps_outputs(model_dir, good):
    m = EffectModel(build_slow_fault(model_dir / "slow.onnx", iterations=20), DEFAULT)
    ref = EffectModel(good, DEFAULT)
    feats, _, noise = rand_inputs(3)
    for a in (0.2, 0.9):
        amount = np.full((3, 1), a, np.float32)
        expected = ref.run(feats, amount, noise)[0]
        np.testing.assert_allclose(m.run(feats, amount, noise)[0], expected, atol=1e-6)


def test_measure_and_describe(good, model_dir):
    m = EffectModel(good, DEFAULT)
    t = measure_inference(m, frames=(1, 8), repeats=20, warmup=2)
    assert set(t) == {1, 8}
    assert all(v["median_us"] > 0 and v["p99_us"] >= v["median_us"] for v in t.values())
    text = describe(good, repeats=20)
    for word in ("contract check: OK", "cepstral-diffusion-example", "training_data", "1 frame: median",
                 "8 frames: median", "us/frame"):
        assert word in text
    bad = describe(build_bad("contract_99", model_dir), repeats=20)
    assert "contract check: ERROR:" in bad and "unsupported contract version 99" in bad
    assert "contract_version:" in bad  # metadata is still listed
    assert "ERROR" in describe(build_bad("truncated", model_dir))
    assert "window:" in describe(good, StftConfig(window="low_latency"), repeats=20)
