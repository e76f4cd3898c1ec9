"""The one definition of the STFT used by training, export and the engine.

Every module that frames audio imports :class:`StftConfig` from here; windows are built from it by
:func:`realtime.dsp.windows.make_windows`. Nothing else may hard-code a sample rate, FFT size or hop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

SAMPLE_RATE = 48_000
N_FFT = 512
HOP = 128

#: Default block of the live stream (2.67 ms at 48 kHz).
LIVE_BLOCK = 128
#: Default block of offline file processing: 64 frames per model call, where onnxruntime's per-call cost
#: is spread thin (about 5x the real-time factor of 128-sample blocks). Its output differs from a live
#: stream's by float rounding only (a few 1e-7: vectorised float kernels round batch tails differently);
#: ``LIVE_BLOCK`` equals the default live stream bit for bit.
OFFLINE_BLOCK = 8192

#: Window modes. ``sqrt_hann``: symmetric sqrt-Hann analysis and synthesis (best frequency resolution).
#: ``low_latency``: asymmetric analysis/synthesis pair (Mauler & Martin 2007) whose synthesis window is
#: only ``2 * hop`` long, so the algorithmic latency is about ``2 * hop`` instead of ``n_fft``.
WINDOW_MODES = ("sqrt_hann", "low_latency")
#: Phase look-ahead settings, in frames (fixed when an engine starts, like the window mode): 1 holds each
#: frame back one hop so the ``auto`` phase can refine it with the next frame in view (RTISI-LA), for
#: ``hop`` more samples of latency in every phase mode.
LOOKAHEADS = (0, 1)

#: Feature floor added to the STFT magnitude before the log (realtime/dsp/features.py computes the features;
#: the constants live here, on the ground floor, so the contract check needs no numba).
EPS = 1e-5
#: Name written into model metadata; a model declaring any other feature type is rejected.
FEATURE_TYPE = "log_magnitude_eps1e-05"


@dataclass(frozen=True)
class StftConfig:
    """STFT parameters shared by training, export and the streaming engine.

    Parameters
    ----------
    sample_rate : int
        Audio rate in Hz.
    n_fft : int
        Frame (and FFT) length in samples.
    hop : int
        Frame advance in samples; ``n_fft`` must be a multiple of it.
    window : str
        One of :data:`WINDOW_MODES`.
    """

    sample_rate: int = SAMPLE_RATE
    n_fft: int = N_FFT
    hop: int = HOP
    window: str = "sqrt_hann"

    def __post_init__(self) -> None:
        if self.window not in WINDOW_MODES:
            raise ValueError(f"unknown window mode {self.window!r}; use one of {', '.join(WINDOW_MODES)}")
        if self.hop <= 0 or self.n_fft <= 0 or self.n_fft % self.hop:
            raise ValueError(f"n_fft ({self.n_fft}) must be a positive multiple of hop ({self.hop})")
        if self.window == "sqrt_hann" and self.n_fft < 2 * self.hop:
            raise ValueError("sqrt_hann needs n_fft >= 2 * hop for perfect reconstruction")
        if self.window == "low_latency" and self.n_fft < 4 * self.hop:
            raise ValueError("low_latency needs n_fft >= 4 * hop")

    @property
    def n_bins(self) -> int:
        """Number of rfft bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    @property
    def synthesis_len(self) -> int:
        """Length of the non-zero tail of the synthesis window (what sets the latency)."""
        return self.n_fft if self.window == "sqrt_hann" else 2 * self.hop

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT = StftConfig()
