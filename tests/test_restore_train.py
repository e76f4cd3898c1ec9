"""A tiny denoiser training run learns something and exports as a loadable contract-v2 model."""

import pytest

pytest.importorskip("torch")


@pytest.mark.train
def test_tiny_training_lowers_the_loss_and_exports(tmp_path):
    from export.denoiser_export import export_trained
    from models import denoiser_train as T
    from realtime.engine.model import EffectModel

    args = T.parse_args(["--sequences", "12", "--seconds", "1.5", "--utterances", "12", "--music-seconds", "5",
                         "--steps", "60", "--batch", "6", "--chunk", "60", "--hidden", "32", "--layers", "1",
                         "--lr", "5e-3", "--max-minutes", "0"])
    model, summary = T.train(args, log=lambda m: None)
    untrained = T.StatefulDenoiser(hidden=32, layers=1)
    untrained.in_mean.copy_(model.in_mean)
    untrained.in_std.copy_(model.in_std)
    bank, val, _ = T.build_data(args, T.StftConfig(), log=lambda m: None)
    assert summary["steps"] == 60
    assert T.validate(model, val) < 0.8 * T.validate(untrained, val)
    path = export_trained(model, tmp_path / "tiny.onnx", summary, "tiny denoiser")
    loaded = EffectModel(path)
    assert loaded.info.contract_version == 2 and loaded.info.kind == "restoration"
