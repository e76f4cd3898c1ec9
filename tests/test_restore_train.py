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
    assert T.validate(model, val)[0] < 0.8 * T.validate(untrained, val)[0]
    path = export_trained(model, tmp_path / "tiny.onnx", summary, "tiny denoiser")
    loaded = EffectModel(path)
    assert loaded.info.contract_version == 2 and loaded.info.kind == "restoration"


@pytest.mark.train
def test_keep_loss_counts_only_cuts_of_bins_the_clean_sound_dominates():
    import torch

    from models import denoiser_train as T

    g = torch.Generator().manual_seed(0)
    S = torch.complex(torch.randn(20, 2, 257, generator=g), torch.randn(20, 2, 257, generator=g))
    N = torch.zeros_like(S)
    N[:, :, 100:] = S[:, :, 100:] * 10.0  # the top bins are noise-dominated, the low ones clean
    X = S + N
    ones = torch.ones(20, 2, 257)
    assert float(T.keep_loss(ones, X, S)) == 0.0
    cut_noise = ones.clone()
    cut_noise[:, :, 100:] = 1e-3
    assert float(T.keep_loss(cut_noise, X, S)) == 0.0  # removing noise costs nothing here
    cut_clean = ones.clone()
    cut_clean[:, :, :100] = 0.5
    assert float(T.keep_loss(cut_clean, X, S)) > 0.2
    # per-item weights: an item weighted 0 is free to lose its clean sound
    assert float(T.keep_loss(cut_clean, X, S, weight=torch.tensor([0.0, 0.0]))) == 0.0
    assert float(T.loss_fn(cut_clean, X, S, keep=torch.tensor([1.0, 0.0]))) > float(T.loss_fn(cut_clean, X, S))


@pytest.mark.train
def test_widened_fine_stage_starts_from_the_narrow_models_gains():
    import torch

    from models.denoiser import StatefulDenoiser

    torch.manual_seed(0)
    narrow = StatefulDenoiser(hidden=16, layers=1, n_low=8)
    with torch.no_grad():
        for p in narrow.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn_like(p))
    feats = torch.randn(30, 2, 257) - 3.0
    wide = narrow.widened(24, feats)
    assert wide.n_low == 24 and wide.fine_head.out_features == 24
    with torch.no_grad():
        a, _, _ = narrow.gains(feats, narrow.initial_state(2))
        b, _, _ = wide.gains(feats, wide.initial_state(2))
    # the new bins' fine gains start at sigmoid(8): under 0.003 dB from the narrow model's
    assert float((torch.log(a) - torch.log(b)).abs().max()) < 4e-4
    with pytest.raises(ValueError):
        wide.widened(24, feats)


@pytest.mark.train
def test_missing_init_checkpoint_is_one_line_error_before_any_data(tmp_path):
    from models import denoiser_train as T

    with pytest.raises(SystemExit) as exc:
        T.train(T.parse_args(["--init", str(tmp_path / "nope.pt")]), log=lambda m: None)
    assert "no such checkpoint" in str(exc.value) and "\n" not in str(exc.value)
