"""Frame-wise VAE on STFT log-magnitude frames, with the normalisation inside the module.

One row in, one row out, no state: the exported graph sees raw ``log(|X| + 1e-5)`` features (what
:func:`realtime.dsp.features.log_magnitude` computes) and returns raw features, so the host never needs the
training statistics. Inside:

1. frame gain ``g = mean_k f[k]`` is removed (the network models spectral *shape*; loudness passes
   through untouched, which is what a per-frame effect should do),
2. bins are standardised with training statistics stored as buffers,
3. encoder MLP -> ``(mu, logvar)``; ``z = sqrt(1 - a) * mu + sqrt(a) * noise`` (variance preserving,
   ``a = 0`` decodes ``mu``),
4. decoder MLP -> standardised shape, de-standardised and the gain added back (``diffusion``), or a
   sigmoid gain mask in [0, 1] on the input magnitude (``restoration``: it can only remove energy).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from realtime.dsp.features import EPS

KINDS = ("diffusion", "restoration")
#: Exponent of the compressed-magnitude loss used for restoration (|X|^0.3 beat log-MSE in a probe).
COMPRESS = 0.3


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class FrameVAE(nn.Module):
    """MLP VAE over one STFT frame.

    Parameters
    ----------
    n_bins : int
        Feature width (``cfg.n_bins``).
    latent_dim : int
    hidden : tuple of int
        Encoder hidden widths; the decoder mirrors them.
    kind : {"diffusion", "restoration"}
    """

    def __init__(self, n_bins: int = 257, latent_dim: int = 16, hidden: tuple[int, ...] = (256, 128),
                 kind: str = "diffusion") -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown model kind {kind!r}; use one of {', '.join(KINDS)}")
        self.n_bins, self.latent_dim, self.hidden, self.kind = n_bins, latent_dim, tuple(hidden), kind
        self.encoder = _mlp([n_bins, *hidden, 2 * latent_dim])
        self.decoder = _mlp([latent_dim, *reversed(hidden), n_bins])
        self.register_buffer("bin_mean", torch.zeros(n_bins))
        self.register_buffer("bin_std", torch.ones(n_bins))
        if kind == "restoration":
            # Start near "pass everything" (mask ~0.88): an untrained denoiser should do little harm.
            nn.init.constant_(self.decoder[-1].bias, 2.0)

    def hparams(self) -> dict:
        """Constructor arguments (stored in checkpoints to rebuild the model)."""
        return {"n_bins": self.n_bins, "latent_dim": self.latent_dim, "hidden": list(self.hidden),
                "kind": self.kind}

    @torch.no_grad()
    def set_normalisation(self, features: np.ndarray | Tensor) -> None:
        """Store per-bin mean and std of gain-removed training ``features`` ``[frames, n_bins]``."""
        f = torch.as_tensor(np.asarray(features), dtype=torch.float32)
        shape = f - f.mean(dim=1, keepdim=True)
        self.bin_mean.copy_(shape.mean(dim=0))
        # floor: a bin that never varies would otherwise blow up to inf after standardising
        self.bin_std.copy_(shape.std(dim=0).clamp_min(1e-2))

    def _standardise(self, features: Tensor) -> tuple[Tensor, Tensor]:
        gain = features.mean(dim=1, keepdim=True)
        return (features - gain - self.bin_mean) / self.bin_std, gain

    def encode(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Raw features ``[N, n_bins]`` -> ``(mu, logvar)`` each ``[N, latent_dim]``."""
        x, _ = self._standardise(features)
        h = self.encoder(x)
        mu, logvar = h[:, : self.latent_dim], h[:, self.latent_dim:]
        # bounded log-variance keeps exp() finite early in training; irrelevant once trained
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, z: Tensor, features: Tensor) -> Tensor:
        """Latent ``z`` (plus the input frame's gain / magnitude) -> raw output features."""
        y = self.decoder(z)
        if self.kind == "restoration":
            # sigmoid(y) = exp(min(y, 0)) / (1 + exp(-|y|)), written out: onnxruntime's Sigmoid kernel is
            # accurate only in absolute terms, which for tiny masks moves the output log-magnitude by
            # ~1e-3 (parity failure); Exp keeps relative precision, and neither exp can overflow
            mask = torch.exp(torch.clamp(y, max=0.0)) / (1.0 + torch.exp(-torch.abs(y)))
            mag = (torch.exp(features) - EPS).clamp_min(0.0)
            return torch.log(mask * mag + EPS)
        gain = features.mean(dim=1, keepdim=True)
        return y * self.bin_std + self.bin_mean + gain

    def forward(self, features: Tensor, amount: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        """The exported graph (model contract v1).

        Parameters
        ----------
        features : Tensor ``[N, n_bins]``, raw log-magnitudes
        amount : Tensor ``[N, 1]``, diffusion amount in [0, 1]
        noise : Tensor ``[N, latent_dim]``, unit-variance noise

        Returns
        -------
        out_features : Tensor ``[N, n_bins]``
        mu : Tensor ``[N, latent_dim]``
        """
        mu, _ = self.encode(features)
        a = amount.clamp(0.0, 1.0)
        z = torch.sqrt(1.0 - a) * mu + torch.sqrt(a) * noise
        return self.decode(z, features), mu

    def sample(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Training pass with the reparameterisation trick: ``(out_features, mu, logvar)``."""
        mu, logvar = self.encode(features)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.decode(z, features), mu, logvar


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """Analytic KL(N(mu, exp(logvar)) || N(0, I)) per dimension, ``[N, latent]`` (nats)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def kl_weight(step: int, beta: float, warmup_steps: int) -> float:
    """Linear KL warm-up from 0 to ``beta`` over ``warmup_steps`` (avoids early posterior collapse)."""
    if warmup_steps <= 0:
        return beta
    return beta * min(1.0, step / warmup_steps)


def reconstruction_loss(kind: str, out: Tensor, target: Tensor, inputs: Tensor) -> Tensor:
    """Mean reconstruction error.

    ``diffusion``: MSE of log-magnitudes (directly the quantity log-spectral distance measures).
    ``restoration``: MSE of magnitudes compressed by ``|X|^0.3``, each frame scaled by the noisy frame's
    gain first so loud and quiet clips weigh alike.
    """
    if kind == "diffusion":
        return (out - target).pow(2).mean()
    scale = torch.exp(-inputs.mean(dim=1, keepdim=True))
    m_out = (torch.exp(out) - EPS).clamp_min(0.0) * scale
    m_ref = (torch.exp(target) - EPS).clamp_min(0.0) * scale
    # +1e-6 keeps the gradient of x^0.3 finite at 0
    return ((m_out + 1e-6).pow(COMPRESS) - (m_ref + 1e-6).pow(COMPRESS)).pow(2).mean()


def vae_loss(model: FrameVAE, inputs: Tensor, targets: Tensor, kl_w: float,
             free_bits: float = 0.0) -> dict[str, Tensor]:
    """ELBO-style loss: reconstruction + ``kl_w`` * KL.

    Parameters
    ----------
    model : FrameVAE
    inputs, targets : Tensor ``[N, n_bins]``
        Raw features in and expected out (the same tensor for a diffusion/autoencoding model).
    kl_w : float
        Current KL weight (see :func:`kl_weight`).
    free_bits : float
        Minimum KL per latent dimension (batch mean, nats) below which it is not penalised; 0 disables.

    Returns
    -------
    dict with ``loss``, ``recon``, ``kl`` (KL summed over dims, mean over frames).
    """
    out, mu, logvar = model.sample(inputs)
    recon = reconstruction_loss(model.kind, out, targets, inputs)
    kl_dims = kl_divergence(mu, logvar).mean(dim=0)
    kl = kl_dims.sum()
    penalised = kl_dims.clamp_min(free_bits).sum() if free_bits > 0 else kl
    return {"loss": recon + kl_w * penalised, "recon": recon, "kl": kl}


def lsd_features_db(out: Tensor, target: Tensor) -> Tensor:
    """Log-spectral distance in dB straight on log-magnitude features (a cheap validation proxy)."""
    per_frame = (out - target).pow(2).mean(dim=1).sqrt()
    return (20.0 / math.log(10.0)) * per_frame.mean()
