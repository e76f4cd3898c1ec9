"""A stateful, causal denoiser: a GRU over ERB-band features predicting bounded gains (torch; training only).

Per STFT frame (48 kHz, n_fft 512, hop 128; raw features ``f = log(|X| + 1e-5)``)::

    log ERB-band powers (32 bands) + log magnitudes of the lowest bins (``n_low``: 32, 0-2.9 kHz; shipped 96)
      -> fixed standardisation -> Linear + ReLU -> GRU (2 layers, carried state) -> two heads:
         band gains  sigmoid, 32 bands, spread over the 257 bins by linear interpolation
         fine gains  sigmoid, per bin for the lowest bins (where mains hum and speech fundamentals share
                     bins: a band gain alone cannot notch a hum harmonic between two voice harmonics)
    gain = band gain * fine gain, in [0, 1]: the model can only remove energy
    gain = max(gain, floor(amount)): ``amount`` is the attenuation limit (0: floor 1 = bypass, 1: no limit)
    out_features = f + log(gain)

No look-ahead: output frame t depends on frames <= t and the state (0 samples of added latency).
The GRU's state is explicit (``h`` in, ``h`` out) so the engine can carry it between calls (contract v2).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

N_ERB = 32
N_LOW = 32
#: Smallest gain the graph emits (-120 dB): log(0) would be -inf.
MIN_GAIN = 1e-6
#: Time constant of the running-mean normalisation (s) and the offset that keeps its inputs positive.
NORM_TAU_S = 1.0
EMA_OFFSET = 40.0
#: Width of ``mu``: the mean log gain of 8 groups of 4 ERB bands (a summary the GUI can show).
SUMMARY_DIM = 8


def erb_edges(n_bins: int, sample_rate: int, n_bands: int = N_ERB) -> np.ndarray:
    """Bin edges of ``n_bands`` ERB-spaced bands over ``n_bins`` bins (each band at least one bin)."""
    nyq = sample_rate / 2
    erb = lambda f: 21.4 * np.log10(1 + 0.00437 * f)  # noqa: E731
    inv = lambda e: (10 ** (e / 21.4) - 1) / 0.00437  # noqa: E731
    freqs = inv(np.linspace(erb(0.0), erb(nyq), n_bands + 1))
    edges = np.round(freqs / nyq * (n_bins - 1)).astype(int)
    edges[0], edges[-1] = 0, n_bins
    for i in range(1, n_bands + 1):  # at least one bin per band, pushing the rest up
        edges[i] = max(edges[i], edges[i - 1] + 1)
    for i in range(n_bands - 1, 0, -1):  # and keep the top edge at n_bins
        edges[i] = min(edges[i], edges[i + 1] - 1)
    return edges


def erb_matrices(n_bins: int, sample_rate: int, n_bands: int = N_ERB) -> tuple[np.ndarray, np.ndarray]:
    """``(pool [n_bins, n_bands], spread [n_bands, n_bins])``: band means of bin powers, and the linear
    interpolation of band gains (placed at band centres) back to bins."""
    edges = erb_edges(n_bins, sample_rate, n_bands)
    pool = np.zeros((n_bins, n_bands), np.float32)
    centres = np.zeros(n_bands)
    for b in range(n_bands):
        lo, hi = edges[b], edges[b + 1]
        pool[lo:hi, b] = 1.0 / (hi - lo)
        centres[b] = 0.5 * (lo + hi - 1)
    spread = np.zeros((n_bands, n_bins), np.float32)
    for k in range(n_bins):
        if k <= centres[0]:
            spread[0, k] = 1.0
        elif k >= centres[-1]:
            spread[-1, k] = 1.0
        else:
            j = int(np.searchsorted(centres, k, side="right")) - 1
            w = (k - centres[j]) / (centres[j + 1] - centres[j])
            spread[j, k], spread[j + 1, k] = 1.0 - w, w
    return pool, spread


def amount_floor(amount: torch.Tensor) -> torch.Tensor:
    """Gain floor for ``amount`` in [0, 1]: 1 at 0 (bypass), 10^(-3a) (-60 dB per unit) minus a small
    linear term that makes it exactly 0 at 1 (no limit). Attenuation limit = -20 log10(floor) dB."""
    a = amount.clamp(0.0, 1.0)
    return torch.exp(-3.0 * math.log(10.0) * a) - 1e-3 * a


class StatefulDenoiser(nn.Module):
    """GRU band-gain denoiser with a fine low-bin stage (see the module docstring).

    Parameters
    ----------
    n_bins, sample_rate : int
        STFT bins (257) and rate (48000) the ERB bank is laid out for.
    hidden : int
        GRU width.
    layers : int
        GRU layers.
    """

    kind = "restoration"

    def __init__(self, n_bins: int = 257, sample_rate: int = 48_000, hidden: int = 128, layers: int = 2,
                 n_erb: int = N_ERB, n_low: int = N_LOW, latent_dim: int = SUMMARY_DIM, hop: int = 128) -> None:
        super().__init__()
        self.n_bins, self.sample_rate, self.hidden, self.layers = n_bins, sample_rate, hidden, layers
        self.n_erb, self.n_low, self.latent_dim, self.hop = n_erb, n_low, latent_dim, hop
        pool, spread = erb_matrices(n_bins, sample_rate, n_erb)
        self.register_buffer("pool", torch.from_numpy(pool))
        self.register_buffer("spread", torch.from_numpy(spread))
        n_in = n_erb + n_low
        self.register_buffer("in_mean", torch.zeros(n_in))
        self.register_buffer("in_std", torch.ones(n_in))
        # Running-mean normalisation (DeepFilterNet's, tau 1 s): an exponential moving average of the inputs,
        # written as a ReLU RNN with fixed diagonal weights so that it exports as one ONNX RNN node whose
        # state the engine carries. The inputs are offset to stay positive (ReLU = identity there); an extra
        # constant channel of 1 accumulates 1 - alpha^t, which removes the zero initial state's bias.
        alpha = math.exp(-hop / (sample_rate * NORM_TAU_S))
        self.ema = nn.RNN(n_in + 1, n_in + 1, nonlinearity="relu", bias=False)
        with torch.no_grad():
            self.ema.weight_ih_l0.copy_(torch.eye(n_in + 1) * (1.0 - alpha))
            self.ema.weight_hh_l0.copy_(torch.eye(n_in + 1) * alpha)
        self.ema.requires_grad_(False)
        self.enc = nn.Linear(2 * n_in, hidden)
        self.gru = nn.GRU(hidden, hidden, num_layers=layers)
        self.band_head = nn.Linear(hidden, n_erb)
        self.fine_head = nn.Linear(hidden, n_low)
        with torch.no_grad():  # start near identity: gains close to 1
            self.band_head.bias.fill_(2.0)
            self.fine_head.bias.fill_(4.0)
        group = n_erb // latent_dim
        summ = torch.zeros(n_erb, latent_dim)
        for j in range(latent_dim):
            summ[j * group:(j + 1) * group, j] = 1.0 / group
        self.register_buffer("summ", summ)

    def state_shapes(self) -> dict[str, tuple[int, int, int]]:
        """Shapes of the carried states at batch 1: the GRU's and the running mean's."""
        return {"gru": (self.layers, 1, self.hidden), "norm": (1, 1, self.n_erb + self.n_low + 1)}

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.zeros(self.layers, batch, self.hidden), torch.zeros(1, batch, self.n_erb + self.n_low + 1))

    def inputs(self, features: torch.Tensor) -> torch.Tensor:
        """Network inputs ``[..., n_erb + n_low]`` from raw features ``[..., n_bins]`` (before standardising)."""
        power = torch.exp(2.0 * features)
        band = torch.log(power @ self.pool + 1e-10)
        return torch.cat([band, features[..., : self.n_low]], dim=-1)

    def set_normalisation(self, raw_inputs: torch.Tensor) -> None:
        """Set the fixed standardisation from a sample of :meth:`inputs` rows ``[N, n_in]``."""
        with torch.no_grad():
            self.in_mean.copy_(raw_inputs.mean(0))
            self.in_std.copy_(raw_inputs.std(0).clamp_min(1e-3))

    def gains(self, features: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unlimited gains ``[T, B, n_bins]``, band log-gains ``[T, B, n_erb]`` and the new state.

        ``features``: ``[T, B, n_bins]`` (time first), ``h``: ``[layers, B, hidden]``.
        """
        h_gru, h_norm = h
        raw = self.inputs(features)
        x = (raw - self.in_mean) / self.in_std
        one = torch.ones_like(raw[..., :1])
        acc, h_norm_out = self.ema(torch.cat([raw + EMA_OFFSET, one], dim=-1), h_norm)
        mean = acc[..., :-1] / acc[..., -1:].clamp_min(1e-6) - EMA_OFFSET
        rel = (raw - mean) / self.in_std
        y, h_gru_out = self.gru(torch.relu(self.enc(torch.cat([x, rel], dim=-1))), h_gru)
        band = torch.sigmoid(self.band_head(y))
        fine = torch.sigmoid(self.fine_head(y))
        g = band @ self.spread
        g = torch.cat([g[..., : self.n_low] * fine, g[..., self.n_low:]], dim=-1)
        return g, torch.log(band.clamp_min(MIN_GAIN)), (h_gru_out, h_norm_out)

    def forward(self, features: torch.Tensor, amount: torch.Tensor, noise: torch.Tensor, state_gru: torch.Tensor,
                state_norm: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The exported graph: ``features [F, n_bins]``, ``amount [F, 1]``, ``noise [F, latent]`` (unused;
        kept by the contract) and the states -> ``out_features``, ``mu``, the new states."""
        g, log_band, (h_gru, h_norm) = self.gains(features.unsqueeze(1), (state_gru, state_norm))
        g, log_band = g.squeeze(1), log_band.squeeze(1)
        g = torch.maximum(g, amount_floor(amount).clamp_min(MIN_GAIN))
        out = features + torch.log(g)
        mu = log_band @ self.summ + 0.0 * noise
        return out, mu, h_gru, h_norm

    def widened(self, n_low: int, sample: torch.Tensor) -> StatefulDenoiser:
        """A copy with the fine stage over ``n_low`` (> current) bins that computes what this one does.

        The new bins' inputs enter with zero weights and their fine gains start at ``sigmoid(8)`` (-0.003 dB),
        so fine-tuning starts from this model's behaviour; ``sample`` (raw features ``[..., n_bins]``) sets the
        new inputs' standardisation.
        """
        if n_low <= self.n_low:
            raise ValueError(f"widened: n_low {n_low} is not above {self.n_low}")
        hp = {**self.hparams(), "n_low": n_low}
        new = StatefulDenoiser(**hp)
        old_in, new_in = self.n_erb + self.n_low, self.n_erb + n_low
        # column i of the old input vector -> its place in the new one (x then rel, each erb then low bins)
        cols = torch.tensor([part * new_in + i for part in (0, 1) for i in range(old_in)])
        reshaped = ("ema.", "enc.weight", "fine_head", "in_mean", "in_std")  # set below, or by the constructor
        sd = {k: v for k, v in self.state_dict().items() if not k.startswith(reshaped)}
        missing = new.load_state_dict(sd, strict=False).missing_keys
        assert all(k.startswith(reshaped) for k in missing), missing
        with torch.no_grad():
            new.set_normalisation(new.inputs(sample).reshape(-1, new_in))
            new.in_mean[:old_in] = self.in_mean
            new.in_std[:old_in] = self.in_std
            new.enc.weight.zero_()
            new.enc.weight[:, cols] = self.enc.weight
            new.fine_head.weight.zero_()
            new.fine_head.bias.fill_(8.0)
            new.fine_head.weight[: self.n_low] = self.fine_head.weight
            new.fine_head.bias[: self.n_low] = self.fine_head.bias
        return new

    def hparams(self) -> dict:
        return {"n_bins": self.n_bins, "sample_rate": self.sample_rate, "hidden": self.hidden,
                "layers": self.layers, "n_erb": self.n_erb, "n_low": self.n_low, "latent_dim": self.latent_dim,
                "hop": self.hop}
