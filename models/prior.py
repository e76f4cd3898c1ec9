"""The latent-diffusion effect with a learned causal prior (contract v2): envelope VAE + GRU denoiser + sampler.

Three parts, trained in turn (:mod:`models.train_prior`) and exported as one ONNX graph per call
(``export.onnx_export.export_prior``):

* :class:`EnvelopeVAE` - a frame-wise VAE whose encoder reads the whole log-magnitude frame (gain removed,
  bins standardised) and whose decoder returns the frame's **spectral envelope** as ``N_CEPS`` DCT
  ("cepstral") coefficients over the bins. The effect never decodes fine structure: it edits the input's
  envelope by the difference between the envelope decoded from the sampled latent and the one decoded from
  ``mu``, so harmonics, pitch and noise texture of the input stay (SOUND-NOTES: decoding fine structure is
  what lost the harmonics and most of the off-manifold distance). At amount 0 the edit is exactly zero.
* :class:`LatentPrior` - a small causal GRU over latent sequences: given the standardised latent noised to
  level ``a`` (variance preserving, ``z = sqrt(1-a) u + sqrt(a) eps``), the level, and the frame loudness,
  it predicts ``v = sqrt(1-a) eps - sqrt(a) u`` (so ``u_hat = sqrt(1-a) z - sqrt(a) v``, exact at ``a = 0``).
  Its hidden state is the temporal context; streamed, it is the contract-2 state.
* :class:`PriorEffect` - the exported graph: encode, SDEdit with ``K`` deterministic DDIM steps from level
  ``amount`` to 0 (one GRU, one state per step), guidance toward a target latent, per-dimension offset and
  scale, the contract-1 noise mix as ``latent_mode`` 1, freeze, the envelope edit, and the frame's energy
  restored to the input's (frame energy, not mean log-magnitude), gated so that silence stays silent.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from realtime.dsp.features import EPS

#: Envelope DCT coefficients 1..N_CEPS (a lifter of 16: SOUND-NOTES measured lower lifters closer to the data).
N_CEPS = 16
#: Loudness (log mean frame power, nepers) below which the envelope edit fades out: digital silence is
#: 2 * log(1e-5) = -23; a -60 dBFS sine is about -8.
GATE_LOUDNESS = -17.0
GATE_SLOPE = 1.5
#: The sampler's last step adds ``a ** SAMPLE_POWER * resid_std * noise`` (see :class:`PriorEffect`).
SAMPLE_POWER = 2.5


def envelope_basis(n_bins: int, n_ceps: int = N_CEPS) -> np.ndarray:
    """Orthonormal DCT-II rows ``q = 1..n_ceps`` over the bins, ``[n_ceps, n_bins]`` (no constant term)."""
    k = np.arange(n_bins)
    b = np.stack([np.cos(np.pi * q * (k + 0.5) / n_bins) for q in range(1, n_ceps + 1)])
    return (b / np.linalg.norm(b, axis=1, keepdims=True)).astype(np.float32)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


def loudness(features: Tensor) -> Tensor:
    """Log mean power of each frame (nepers), ``[N, 1]``: ``log(mean_k |X_k|^2)`` from log-magnitudes."""
    p = 2.0 * features
    m = p.max(dim=-1, keepdim=True).values
    return m + torch.log(torch.exp(p - m).mean(dim=-1, keepdim=True))


class EnvelopeVAE(nn.Module):
    """Frame-wise VAE: log-magnitude frame -> latent -> spectral envelope (DCT coefficients)."""

    def __init__(self, n_bins: int = 257, latent_dim: int = 16, hidden: tuple[int, ...] = (256, 128),
                 n_ceps: int = N_CEPS) -> None:
        super().__init__()
        self.n_bins, self.latent_dim, self.hidden, self.n_ceps = n_bins, latent_dim, tuple(hidden), n_ceps
        self.encoder = _mlp([n_bins, *hidden, 2 * latent_dim])
        self.decoder = _mlp([latent_dim, *reversed(hidden), n_ceps])
        self.register_buffer("bin_mean", torch.zeros(n_bins))
        self.register_buffer("bin_std", torch.ones(n_bins))
        self.register_buffer("basis", torch.from_numpy(envelope_basis(n_bins, n_ceps)))
        self.register_buffer("c_mean", torch.zeros(n_ceps))
        self.register_buffer("c_std", torch.ones(n_ceps))

    def hparams(self) -> dict:
        return {"n_bins": self.n_bins, "latent_dim": self.latent_dim, "hidden": list(self.hidden),
                "n_ceps": self.n_ceps}

    @torch.no_grad()
    def set_normalisation(self, features: np.ndarray) -> None:
        f = torch.as_tensor(np.asarray(features), dtype=torch.float32)
        shape = f - f.mean(dim=1, keepdim=True)
        self.bin_mean.copy_(shape.mean(dim=0))
        self.bin_std.copy_(shape.std(dim=0).clamp_min(1e-2))
        c = self.ceps(f)
        self.c_mean.copy_(c.mean(dim=0))
        self.c_std.copy_(c.std(dim=0).clamp_min(1e-3))

    def ceps(self, features: Tensor) -> Tensor:
        """The frame's envelope coefficients (the constant term is not part of the basis)."""
        return features @ self.basis.T

    def encode(self, features: Tensor) -> tuple[Tensor, Tensor]:
        x = (features - features.mean(dim=1, keepdim=True) - self.bin_mean) / self.bin_std
        h = self.encoder(x)
        return h[:, :self.latent_dim], h[:, self.latent_dim:].clamp(-12.0, 8.0)

    def decode(self, z: Tensor) -> Tensor:
        """Latent -> envelope coefficients ``[N, n_ceps]`` (de-standardised)."""
        return self.decoder(z) * self.c_std + self.c_mean

    def loss(self, features: Tensor, beta: float) -> dict[str, Tensor]:
        mu, logvar = self.encode(features)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        c = self.decode(z)
        recon = (((c - self.ceps(features)) / self.c_std) ** 2).mean()
        kl = (0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).mean(dim=0).sum()
        return {"loss": recon + beta * kl, "recon": recon, "kl": kl}


class LatentPrior(nn.Module):
    """Causal GRU denoiser over standardised latent sequences (v-prediction), conditioned on loudness."""

    def __init__(self, latent_dim: int = 16, hidden: int = 96, head: int = 128) -> None:
        super().__init__()
        self.latent_dim, self.hidden_size, self.head_size = latent_dim, hidden, head
        self.gru = nn.GRU(latent_dim + 2, hidden)  # [time, batch, features]; export: batch 1, time = frames
        self.head = _mlp([hidden + latent_dim + 1, head, latent_dim])
        self.register_buffer("lat_mean", torch.zeros(latent_dim))
        self.register_buffer("lat_std", torch.ones(latent_dim))
        self.register_buffer("loud_mean", torch.zeros(1))
        self.register_buffer("loud_std", torch.ones(1))
        #: Per-dimension spread of the clean latent around the prior's prediction from pure noise (measured after
        #: training): the sampler's last step adds sqrt(a) * resid_std * noise, a one-step ancestral sample,
        #: so amount 1 draws from the prior instead of returning its (too narrow) conditional mean.
        self.register_buffer("resid_std", torch.zeros(latent_dim))

    def hparams(self) -> dict:
        return {"latent_dim": self.latent_dim, "hidden": self.hidden_size, "head": self.head_size}

    def forward(self, z: Tensor, level: Tensor, loud: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``z`` ``[T, B, D]`` at noise ``level`` ``[T, B, 1]``, raw loudness ``[T, B, 1]`` -> ``(v, h_T)``."""
        cond = (loud - self.loud_mean) / self.loud_std
        y, h = self.gru(torch.cat([z, level, cond], dim=-1), h0)
        return self.head(torch.cat([y, z, level], dim=-1)), h


def ar1_noise(shape: tuple[int, int, int], rho: Tensor, gen: torch.Generator) -> Tensor:
    """Unit-variance AR(1) noise over axis 0 (time) with a per-sequence pole ``rho`` ``[B]`` (0 = white)."""
    t, b, d = shape
    w = torch.randn(shape, generator=gen)
    out = torch.empty(shape)
    r = rho.view(1, b, 1)
    k = torch.sqrt(1.0 - r ** 2)
    prev = w[0]
    out[0] = prev
    for i in range(1, t):
        prev = r[0] * prev + k[0] * w[i]
        out[i] = prev
    return out


@torch.no_grad()
def residual_std(prior: LatentPrior, u: Tensor, loud: Tensor, seed: int = 5) -> Tensor:
    """Per-dimension std of ``u - u_hat`` when the prior denoises pure (AR(1)-smooth) noise: what a one-step
    sample must add back to have the data's spread. ``u``/``loud`` ``[T, B, D]`` / ``[T, B, 1]``."""
    t, b, d = u.shape
    gen = torch.Generator().manual_seed(seed)
    eps = ar1_noise((t, b, d), torch.full((b,), 0.97), gen)
    v, _ = prior(eps, torch.ones(t, b, 1), loud)
    x0 = -v
    return (u - x0)[t // 4:].reshape(-1, d).std(dim=0)


def prior_loss(prior: LatentPrior, u: Tensor, loud: Tensor, gen: torch.Generator) -> Tensor:
    """v-prediction loss on standardised latent sequences ``u`` ``[T, B, D]`` with raw loudness ``[T, B, 1]``.

    Each sequence gets one level ``a`` (uniform, a quarter of them near 1: generation is what the prior is
    for) and noise that is white or AR(1)-smooth like the engine's (pole for 0.5..40 Hz at 375 frames/s).
    """
    t, b, d = u.shape
    a = torch.rand(b, generator=gen)
    hi = torch.rand(b, generator=gen) < 0.25
    a = torch.where(hi, 0.9 + 0.1 * torch.rand(b, generator=gen), a)
    rate = torch.exp(torch.empty(b).uniform_(math.log(0.5), math.log(40.0), generator=gen))
    rho = torch.exp(-2 * math.pi * rate / 375.0)
    rho = torch.where(torch.rand(b, generator=gen) < 0.2, torch.zeros(b), rho)
    eps = ar1_noise((t, b, d), rho, gen)
    al, sg = torch.sqrt(1 - a).view(1, b, 1), torch.sqrt(a).view(1, b, 1)
    z = al * u + sg * eps
    v_target = al * eps - sg * u
    v, _ = prior(z, a.view(1, b, 1).expand(t, b, 1), loud)
    return ((v - v_target) ** 2).mean()


def _folded_linear(lin: nn.Linear, w: Tensor, b: Tensor) -> nn.Linear:
    out = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        out.weight.copy_(w)
        out.bias.copy_(b)
    return out


class PriorEffect(nn.Module):
    """The exported contract-2 graph: encoder -> K-step prior sampler -> envelope edit, state per step.

    Built from trained parts with every normalisation folded into the weights (bin standardisation and the
    frame-gain removal into the first encoder layer, the latent standardisation into the encoder's last and
    the decoder's first layer, the loudness standardisation into the GRU's input weights): onnxruntime's cost
    at one frame per call is mostly per node, so fewer nodes is faster. The latent this graph shows (``mu``,
    ``z``, and what ``target``/``latent_offset`` refer to) is the standardised one (about unit variance).
    """

    def __init__(self, vae: EnvelopeVAE, prior: LatentPrior, steps: int = 2) -> None:
        super().__init__()
        self.steps = int(steps)
        self.latent_dim = d = vae.latent_dim
        self.n_bins = nb = vae.n_bins
        self.hidden = prior.hidden_size
        with torch.no_grad():
            m, s = prior.lat_mean.clone(), prior.lat_std.clone()
            # Encoder: x -> (x - mean(x) - bin_mean) / bin_std folded into layer 1.
            l1 = vae.encoder[0]
            w1 = l1.weight / vae.bin_std
            b1 = l1.bias - w1 @ vae.bin_mean
            w1 = w1 - w1.sum(dim=1, keepdim=True) / nb  # removes the frame mean (gain) inside the product
            enc = [_folded_linear(l1, w1, b1)] + list(vae.encoder)[1:-1]
            last = vae.encoder[-1]
            enc.append(_folded_linear(last, last.weight[:d] / s[:, None], (last.bias[:d] - m) / s))
            self.encoder = nn.Sequential(*enc)
            # Decoder: takes the standardised latent; its output difference times c_std through the basis.
            d1 = vae.decoder[0]
            dec = [_folded_linear(d1, d1.weight * s, d1.bias + d1.weight @ m)] + list(vae.decoder)[1:]
            self.decoder = nn.Sequential(*dec)
            self.register_buffer("env_basis", (vae.c_std[:, None] * vae.basis).clone())
            # GRU: the loudness input column standardised in its weights.
            self.gru = nn.GRU(d + 2, prior.hidden_size)
            self.gru.load_state_dict(prior.gru.state_dict())
            col = d + 1
            lm, ls = float(prior.loud_mean), float(prior.loud_std)
            self.gru.bias_ih_l0 -= self.gru.weight_ih_l0[:, col] * (lm / ls)
            self.gru.weight_ih_l0[:, col] /= ls
            self.head = prior.head
            self.register_buffer("resid_std", prior.resid_std.clone())

    @property
    def state_names(self) -> list[str]:
        return [f"gru{k}" for k in range(self.steps)]

    @property
    def state_shape(self) -> list[int]:
        return [1, 1, self.hidden]

    def forward(self, features: Tensor, amount: Tensor, noise: Tensor, latent_offset: Tensor, latent_scale: Tensor,
                target: Tensor, toward: Tensor, latent_mode: Tensor, freeze: Tensor,
                *states: Tensor) -> tuple[Tensor, ...]:
        mu = self.encoder(features)
        loud = torch.log(torch.exp(2.0 * features).mean(dim=-1, keepdim=True))  # features <= ~6: no overflow
        a = amount.clamp(0.0, 1.0)
        al, sg = torch.sqrt(1.0 - a), torch.sqrt(a)
        z0 = al * mu + sg * noise
        z = z0
        new_states = []
        for k in range(self.steps):
            if k:
                lv = a * (float(self.steps - k) / self.steps)
                al, sg = torch.sqrt(1.0 - lv), torch.sqrt(lv)
            else:
                lv = a
            y, h = self.gru(torch.cat([z, lv, loud], dim=-1).unsqueeze(1), states[k])
            new_states.append(h)
            v = self.head(torch.cat([y.squeeze(1), z, lv], dim=-1))
            x0 = al * z - sg * v
            x0 = x0 + toward * (target - x0)  # guidance toward the target latent, at every step
            if k == self.steps - 1:
                # One-step ancestral sample, faded in toward amount 1 (a ** SAMPLE_POWER, not sqrt(a)): at
                # moderate amounts the prior's prediction alone keeps the harmonics and the timbre on the data
                # (measured: FD and HNR at 0.5 twice as good), at 1 the added spread keeps generation varied.
                z = x0 + a ** SAMPLE_POWER * self.resid_std * noise
            else:
                nxt = a * (float(self.steps - k - 1) / self.steps)
                z = torch.sqrt(1.0 - nxt) * x0 + torch.sqrt(nxt) * (sg * z + al * v)
        z_mix = z0 + toward * (target - z0)  # the contract-1 mix (latent_mode 1), guided the same way
        zz = z + latent_mode * (z_mix - z)
        zz = zz * latent_scale + latent_offset
        zz = zz + freeze * (noise - zz)
        c_z, c_mu = self.decoder(torch.cat([zz, mu], dim=0)).chunk(2, dim=0)
        delta = (c_z - c_mu) @ self.env_basis
        gate = torch.sigmoid(GATE_SLOPE * (loud - GATE_LOUDNESS))
        # A gain on the input magnitude (not on magnitude + floor): bins at the floor stay there, so an edit
        # never fills the valleys between partials with the floor's energy.
        mag = torch.relu(torch.exp(features) - EPS)
        gain = gate * delta
        gain = gain + 0.5 * (loud - torch.log(torch.mean(mag * mag * torch.exp(2.0 * gain), dim=-1, keepdim=True)
                                              + EPS * EPS))  # the frame's energy stays the input's
        out = torch.log(mag * torch.exp(gain) + EPS)
        return (out, mu, zz, *new_states)
