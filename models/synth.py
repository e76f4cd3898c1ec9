"""Deterministic synthetic training corpus: tones, plucks, bells, noise, hits, chords and espeak-ng speech.

The same ``seed`` always gives bit-identical audio (every clip draws from its own child of one
``numpy.random.SeedSequence``, and espeak-ng is deterministic for fixed arguments), so a training run can
be reproduced without shipping any audio.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import soundfile as sf
import soxr

from realtime.config import SAMPLE_RATE

#: Sentences spoken into the training split. Held-out evaluation uses :data:`HELDOUT_TEXTS` only.
TRAIN_TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "A large size in stockings is hard to sell.",
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
    "Her purse was full of useless trash.",
    "The wide road shimmered in the hot sun.",
    "Sixty seven, forty two, nine hundred and five.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese.",
    "We also need a small plastic snake and a big toy frog for the kids.",
    "She can scoop these things into three red bags, and we will go meet her.",
    "When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow.",
    "Thirty three thousand people watched the match on a windy Thursday evening.",
    "Is this the right way to the station, or should we turn left at the bridge?",
    "Whisper softly, then shout loudly: volume changes everything.",
    "Zebras, giraffes and chimpanzees share the savanna with shy antelopes.",
    "Measure twice and cut once, said the carpenter with a sharp chisel.",
    "The echo of footsteps faded down the long empty corridor.",
)
HELDOUT_TEXTS = (
    "A gentle breeze carried the smell of pine across the valley.",
    "Fifteen yellow balloons drifted slowly over the village square.",
    "Could you check whether the kettle has boiled yet?",
    "The orchestra tuned their instruments before the concert began.",
    "Bright sparks flew from the grinder in the workshop.",
    "Nobody expected the quiet student to win the chess tournament.",
)
#: espeak-ng voice+variant names that ship with the espeak-ng package (no mbrola needed).
VOICES = ("en-us", "en-gb", "en-us+f2", "en-us+f3", "en-gb+f4", "en+m3", "en+m7", "en-gb-scotland",
          "en-us+klatt2", "en+f5", "en-029", "en-gb-x-rp+m2")


@dataclass(frozen=True)
class Clip:
    """One mono clip of the corpus.

    Attributes
    ----------
    kind : str
        Generator name (``tone``, ``pluck``, ``bell``, ``noise``, ``hit``, ``chord``, ``speech``, ``file``).
    audio : ndarray, float32, shape (samples,)
    """

    kind: str
    audio: np.ndarray


def _envelope(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Attack-decay-sustain-release envelope with random times, length ``n``."""
    a = int(sr * rng.uniform(0.002, 0.15))
    d = int(sr * rng.uniform(0.02, 0.4))
    r = int(sr * rng.uniform(0.02, 0.5))
    s = rng.uniform(0.3, 1.0)
    env = np.full(n, s)
    a, d, r = min(a, n // 3), min(d, n // 3), min(r, n // 3)
    env[:a] = np.linspace(0.0, 1.0, a, endpoint=False)
    env[a:a + d] = np.linspace(1.0, s, d, endpoint=False)
    env[n - r:] *= np.linspace(1.0, 0.0, r)
    return env


def _harmonic(f0: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Harmonic tone with vibrato, random spectral tilt and odd/even balance."""
    t = np.arange(n) / sr
    vib = rng.uniform(0.0, 0.012) * np.sin(2 * np.pi * rng.uniform(4.0, 7.0) * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f0 * (1.0 + vib)) / sr
    n_harm = max(1, min(40, int(0.45 * sr / (f0 * 1.02))))
    tilt = rng.uniform(0.6, 2.0)
    even = rng.uniform(0.0, 1.0)
    out = np.zeros(n)
    for h in range(1, n_harm + 1):
        amp = h ** -tilt * (even if h % 2 == 0 else 1.0)
        out += amp * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    return out


def tone(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Harmonic tone (60-1500 Hz) with vibrato and an ADSR envelope."""
    f0 = float(np.exp(rng.uniform(np.log(60.0), np.log(1500.0))))
    return _harmonic(f0, n, sr, rng) * _envelope(n, sr, rng)


def chord(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Three or four harmonic tones on a random triad or seventh chord."""
    root = float(np.exp(rng.uniform(np.log(80.0), np.log(500.0))))
    shapes = ((0, 4, 7), (0, 3, 7), (0, 4, 7, 11), (0, 3, 7, 10), (0, 5, 7), (0, 4, 7, 10))
    shape = shapes[rng.integers(len(shapes))]
    out = sum(_harmonic(root * 2 ** (s / 12), n, sr, rng) for s in shape)
    return out * _envelope(n, sr, rng)


@numba.njit(cache=True)
def _karplus_strong(excitation: np.ndarray, period: int, decay: float, n: int) -> np.ndarray:
    # A scalar feedback loop: numba keeps it at C speed (numpy cannot vectorise the recursion).
    out = np.zeros(n)
    buf = excitation.copy()
    idx = 0
    prev = 0.0
    for i in range(n):
        cur = buf[idx]
        out[i] = cur
        buf[idx] = decay * 0.5 * (cur + prev)
        prev = cur
        idx += 1
        if idx == period:
            idx = 0
    return out


def pluck(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Karplus-Strong plucked string (70-1200 Hz)."""
    f0 = float(np.exp(rng.uniform(np.log(70.0), np.log(1200.0))))
    period = max(2, int(round(sr / f0)))
    excitation = rng.uniform(-1.0, 1.0, period)
    # A brighter or darker pluck: pre-smooth the excitation by a random amount.
    k = int(rng.integers(1, 6))
    excitation = np.convolve(excitation, np.ones(k) / k, mode="same")
    return _karplus_strong(excitation, period, float(rng.uniform(0.990, 0.9995)), n)


def bell(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """FM bell: inharmonic carrier/modulator ratio, decaying modulation index."""
    t = np.arange(n) / sr
    fc = float(np.exp(rng.uniform(np.log(150.0), np.log(2000.0))))
    ratio = rng.choice([1.4, 1.414, 2.76, 3.5, 1.21, 0.707])
    decay = rng.uniform(0.5, 3.0)
    index = rng.uniform(1.0, 8.0) * np.exp(-t * decay * 1.5)
    mod = index * np.sin(2 * np.pi * fc * ratio * t)
    return np.sin(2 * np.pi * fc * t + mod) * np.exp(-t * decay)


def _shaped_noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """White noise through a random smooth spectral envelope (band-pass, tilt and peaks)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    centre = np.exp(rng.uniform(np.log(100.0), np.log(15000.0)))
    width = rng.uniform(0.3, 3.0)  # octaves
    gain = np.exp(-0.5 * (np.log2((f + 1.0) / centre) / width) ** 2)
    gain *= (f + 50.0) ** rng.uniform(-1.0, 0.2)
    return np.fft.irfft(spec * gain, n)


def noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Filtered noise with an envelope (wind, hiss, rumble)."""
    return _shaped_noise(n, sr, rng) * _envelope(n, sr, rng)


def hits(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A pattern of percussive hits: noise bursts and pitch-dropping kicks with exponential decays."""
    out = np.zeros(n)
    pos = 0
    while pos < n:
        length = min(n - pos, int(sr * rng.uniform(0.08, 0.6)))
        t = np.arange(length) / sr
        decay = np.exp(-t * rng.uniform(8.0, 60.0))
        if rng.random() < 0.5:
            f = rng.uniform(40.0, 120.0) * (1.0 + rng.uniform(1.0, 4.0) * np.exp(-t * 30.0))
            burst = np.sin(2 * np.pi * np.cumsum(f) / sr)
        else:
            burst = _shaped_noise(length, sr, rng)
            burst /= np.max(np.abs(burst)) + 1e-12
        out[pos:pos + length] += burst * decay * rng.uniform(0.3, 1.0)
        pos += length + int(sr * rng.uniform(0.0, 0.3))
    return out


GENERATORS: dict[str, Callable[[int, int, np.random.Generator], np.ndarray]] = {
    "tone": tone, "pluck": pluck, "bell": bell, "noise": noise, "hit": hits, "chord": chord,
}


def _normalise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Peak-normalise to a random level between -30 and -1 dBFS (the model must see many levels)."""
    peak = float(np.max(np.abs(x)))
    if peak <= 0.0 or not np.isfinite(peak):
        return np.zeros_like(x, dtype=np.float32)
    return (x * (10 ** (rng.uniform(-30.0, -1.0) / 20) / peak)).astype(np.float32)


def synthetic_clips(seconds: float, seed: int, sample_rate: int = SAMPLE_RATE) -> list[Clip]:
    """Instrument-like clips, cycling through :data:`GENERATORS`, until ``seconds`` of audio.

    Parameters
    ----------
    seconds : float
        Total duration to generate.
    seed : int
        Same seed, same audio.
    sample_rate : int

    Returns
    -------
    list of Clip
    """
    clips: list[Clip] = []
    total = 0
    names = list(GENERATORS)
    children = np.random.SeedSequence([seed, 1]).spawn(1 << 14)
    i = 0
    while total < seconds * sample_rate and i < len(children):
        rng = np.random.default_rng(children[i])
        kind = names[i % len(names)]
        # short clips: many distinct pitches and timbres per minute matter more than long notes
        n = int(sample_rate * rng.uniform(0.2, 0.8))
        clips.append(Clip(kind, _normalise(GENERATORS[kind](n, sample_rate, rng), rng)))
        total += n
        i += 1
    return clips


def espeak_available() -> bool:
    """Whether the ``espeak-ng`` binary is on PATH."""
    return shutil.which("espeak-ng") is not None


def speak(text: str, voice: str, speed: int, pitch: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Render ``text`` with espeak-ng and resample it (soxr) to ``sample_rate``; float32 mono."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), text],
                       check=True, capture_output=True, timeout=60)
        audio, sr = sf.read(path, dtype="float64", always_2d=True)
    audio = audio.mean(axis=1)
    if sr != sample_rate:
        audio = soxr.resample(audio, sr, sample_rate, quality="HQ")
    return audio.astype(np.float32)


def speech_clips(seconds: float, seed: int, sample_rate: int = SAMPLE_RATE,
                 texts: tuple[str, ...] = TRAIN_TEXTS) -> list[Clip]:
    """espeak-ng speech with random voices, speeds and pitches until ``seconds`` of audio.

    Returns an empty list when espeak-ng is not installed (the corpus is then synthetic only).
    """
    if not espeak_available() or seconds <= 0:
        return []
    clips: list[Clip] = []
    total = 0
    children = np.random.SeedSequence([seed, 2]).spawn(4096)
    for i, child in enumerate(children):
        if total >= seconds * sample_rate:
            break
        rng = np.random.default_rng(child)
        text = texts[i % len(texts)]
        voice = VOICES[int(rng.integers(len(VOICES)))]
        audio = speak(text, voice, int(rng.integers(120, 220)), int(rng.integers(20, 80)), sample_rate)
        clips.append(Clip("speech", _normalise(audio, rng)))
        total += audio.size
    return clips


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS pink (1/f power) noise, shaped in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    k = np.arange(spec.size, dtype=np.float64)
    k[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(k), n)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-20)


def add_noise(clean: np.ndarray, snr_db: float, color: str, rng: np.random.Generator) -> np.ndarray:
    """``clean`` plus white or pink noise scaled to ``snr_db`` (over the whole clip); float32.

    Parameters
    ----------
    clean : ndarray, shape (samples,)
    snr_db : float
    color : {"white", "pink"}
    rng : numpy Generator
    """
    n = clean.size
    if color == "white":
        nz = rng.standard_normal(n)
    elif color == "pink":
        nz = pink_noise(n, rng)
    else:
        raise ValueError(f"unknown noise colour {color!r}; use 'white' or 'pink'")
    p_clean = float(np.mean(clean.astype(np.float64) ** 2))
    p_noise = float(np.mean(nz ** 2))
    scale = np.sqrt(p_clean / (p_noise * 10 ** (snr_db / 10))) if p_noise > 0 else 0.0
    return (clean + scale * nz).astype(np.float32)
