"""Export round trip: tiny training -> ONNX -> onnxruntime matches torch; metadata per contract v1."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from export import onnx_export  # noqa: E402
from export import pipeline as train  # noqa: E402
from models import quality  # noqa: E402
from realtime.engine.contract import INPUT_NAMES, OUTPUT_NAMES, REQUIRED_METADATA, parse_metadata  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tiny.onnx"
    argv = ["--minutes", "0.25", "--steps", "40", "--batch", "128", "--latent", "8", "--deterministic",
            "--no-progress", "--out", str(out)]
    assert train.main(argv) == 0
    model, ckpt = onnx_export.load_checkpoint(out.with_suffix(".pt"))
    return out, model, ckpt


def test_onnx_matches_torch_and_has_metadata(trained):
    path, model, ckpt = trained
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert not list(path.parent.glob("*.data"))  # single file, no external weights
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [onnx_export.OPSET]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert set(REQUIRED_METADATA) <= set(meta)
    info = parse_metadata(meta)
    assert info.kind == "diffusion" and info.latent_dim == 8 and info.added_delay_samples == 0
    assert meta["producer"].startswith("audio-diffusion-host ")
    assert "lsd_db_synthetic" in json.loads(meta["metrics"])
    for arg in [*proto.graph.input, *proto.graph.output]:
        assert arg.type.tensor_type.shape.dim[0].dim_param == "frames"
    assert [i.name for i in proto.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in proto.graph.output] == list(OUTPUT_NAMES)

    frames = onnx_export.real_frames(ckpt and onnx_export.StftConfig(**ckpt["cfg"]), seconds=0.5)
    assert onnx_export.parity(model, path, frames) <= onnx_export.PARITY_TOL
    # batch sizes the engine uses, through a session with all graph optimisations
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for n in (1, 3, 8):
        f = frames[:n]
        feeds = {"features": f, "amount": np.full((n, 1), 0.3, np.float32),
                 "noise": np.ones((n, 8), np.float32)}
        got = sess.run(None, feeds)
        with torch.no_grad():
            ref = model(*(torch.from_numpy(v) for v in feeds.values()))
        for r, g in zip(ref, got, strict=True):
            assert np.max(np.abs(r.numpy() - g)) <= 1e-4


def test_the_engine_loader_accepts_it(trained):
    model_mod = pytest.importorskip("realtime.engine.model")
    m = model_mod.EffectModel(trained[0])
    assert m.info.kind == "diffusion" and m.latent_dim == 8


def test_export_cli_from_checkpoint(trained, tmp_path, capsys):
    path = trained[0]
    out = tmp_path / "again.onnx"
    assert onnx_export.main([str(path.with_suffix(".pt")), "--out", str(out), "--name", "Again"]) == 0
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["name"] == "Again" and meta["model_kind"] == "diffusion"
    assert onnx_export.main([str(tmp_path / "missing.pt"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().startswith("error: cannot read checkpoint")


def test_restoration_export(tmp_path):
    from models.vae import FrameVAE
    from realtime.config import DEFAULT

    model = FrameVAE(DEFAULT.n_bins, 4, (32, 16), kind="restoration")
    with torch.no_grad():
        # tiny masks (logits near -12): where onnxruntime's Sigmoid kernel lost relative precision
        model.decoder[-1].bias.fill_(-12.0)
    path = onnx_export.export_onnx(model, tmp_path / "r.onnx", kind="restoration", training_data="test",
                                   metrics=None, cfg=DEFAULT)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["model_kind"] == "restoration"
    with pytest.raises(onnx_export.ExportError):
        onnx_export.export_onnx(model, tmp_path / "x.onnx", kind="diffusion", training_data="t", metrics=None,
                                cfg=DEFAULT)


def test_quality_cli_runs(trained, capsys):
    assert quality.main([str(trained[0]), "--seconds", "2", "--json", "--png", "none"]) == 0
    report = json.loads(capsys.readouterr().out)
    amounts = [row["amount"] for row in report["rows"]]
    assert amounts == sorted(amounts) and amounts[0] == 0.0 and len(amounts) >= 2
    assert all(np.isfinite(row["lsd_db"]) and np.isfinite(row["level_p95_db"]) for row in report["rows"])
