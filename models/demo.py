"""The demo clip of ``audio-diffusion demo``: a phrase of speech (when espeak-ng is installed) and a few
seeded synthetic instruments, held out from training (its own seed and texts)."""

from __future__ import annotations

import numpy as np

from models.synth import SAMPLE_RATE, espeak_available, speak, synthetic_clips

DEMO_TEXT = "Audio diffusion turns any sound into a moving cloud of its own timbre."


def demo_clip(seconds: float = 8.0, seed: int = 2026, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """A deterministic demo signal of about ``seconds`` length, peak -3 dBFS; returns ``(audio, rate)``."""
    parts = []
    if espeak_available():
        parts.append(speak(DEMO_TEXT, "en-us", 150, 50, sample_rate))
    parts += [c.audio for c in synthetic_clips(seconds, seed, sample_rate)]
    gap = np.zeros(int(0.25 * sample_rate), np.float32)
    x = np.concatenate([np.concatenate([p, gap]) for p in parts])[: int(seconds * sample_rate)]
    peak = float(np.max(np.abs(x))) or 1.0
    return (x * (10 ** (-3 / 20) / peak)).astype(np.float32), sample_rate
