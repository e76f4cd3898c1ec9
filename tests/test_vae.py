"""The frame-wise VAE: KL, reparameterisation, in-graph normalisation, the restoration mask."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.vae import FrameVAE, kl_divergence, kl_weight, lsd_features_db, vae_loss  # noqa: E402
from realtime.dsp.features import EPS  # noqa: E402


def _features(n: int = 32, bins: int = 257, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, bins, generator=g) * 10.0 - 9.0


def test_analytic_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mu = torch.tensor([[0.5, -1.2, 0.0, 2.0]])
    logvar = torch.tensor([[-0.5, 0.3, 0.0, -2.0]])
    std = torch.exp(0.5 * logvar)
    z = mu + std * torch.randn(400_000, 4)
    log_q = (-0.5 * ((z - mu) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(1)
    log_p = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(1)
    mc = float((log_q - log_p).mean())
    analytic = float(kl_divergence(mu, logvar).sum())
    assert analytic == pytest.approx(mc, abs=0.02)
    assert float(kl_divergence(torch.zeros(1, 3), torch.zeros(1, 3)).sum()) == 0.0


def test_kl_warmup_is_linear_then_flat():
    assert kl_weight(0, 1e-3, 100) == 0.0
    assert kl_weight(50, 1e-3, 100) == pytest.approx(5e-4)
    assert kl_weight(500, 1e-3, 100) == 1e-3
    assert kl_weight(3, 1e-3, 0) == 1e-3


def test_forward_shapes_and_amount_zero_decodes_mu():
    model = FrameVAE(257, 16).eval()
    f = _features()
    with torch.no_grad():
        out1, mu1 = model(f, torch.zeros(32, 1), torch.randn(32, 16))
        out2, mu2 = model(f, torch.zeros(32, 1), torch.randn(32, 16))
        out3, _ = model(f, torch.ones(32, 1), torch.randn(32, 16))
    assert out1.shape == (32, 257) and mu1.shape == (32, 16)
    assert torch.equal(out1, out2) and torch.equal(mu1, mu2)  # a = 0: the noise is ignored
    assert not torch.allclose(out1, out3)


def test_frame_gain_passes_through():
    """Adding a constant to a frame's log-magnitudes (a louder frame) shifts the output by it exactly."""
    model = FrameVAE(257, 8).eval()
    model.set_normalisation(_features(200, seed=1).numpy())
    f = _features()
    z = torch.zeros(32, 1), torch.zeros(32, 8)
    with torch.no_grad():
        out, mu = model(f, *z)
        out_loud, mu_loud = model(f + 2.5, *z)
    torch.testing.assert_close(out_loud, out + 2.5, atol=1e-4, rtol=0)
    torch.testing.assert_close(mu_loud, mu, atol=1e-4, rtol=0)


def test_normalisation_buffers_are_saved():
    model = FrameVAE(257, 8)
    model.set_normalisation(_features(100).numpy())
    state = model.state_dict()
    assert "bin_mean" in state and "bin_std" in state
    assert float(state["bin_std"].min()) > 0


def test_restoration_mask_never_adds_energy():
    model = FrameVAE(257, 8, kind="restoration").eval()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.normal_(0.0, 3.0)  # a wild decoder: the bound must hold whatever it outputs
        f = _features(64)
        out, _ = model(f, torch.rand(64, 1), torch.randn(64, 8))
    mag_in = torch.exp(f) - EPS
    mag_out = torch.exp(out) - EPS
    assert torch.all(mag_out <= mag_in * (1 + 1e-5) + 1e-9)
    assert torch.all(mag_out >= -1e-9)


@pytest.mark.parametrize("kind", ["diffusion", "restoration"])
def test_loss_is_finite_and_differentiable(kind):
    model = FrameVAE(257, 8, kind=kind)
    f = _features()
    parts = vae_loss(model, f, f - 0.1, 1e-3, free_bits=0.1)
    assert all(torch.isfinite(v) for v in parts.values())
    parts["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_feature_lsd_of_a_constant_offset():
    f = _features()
    assert float(lsd_features_db(f + 1.0, f)) == pytest.approx(20 / np.log(10), rel=1e-5)
