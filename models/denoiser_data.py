"""Clean material and noise beds for training and evaluating the denoiser, deterministic from seeds.

Clean: espeak-ng speech (training voices and :data:`models.synth.TRAIN_TEXTS`; evaluation uses
:data:`EVAL_VOICES` and :data:`models.synth.HELDOUT_TEXTS`, never seen in training), optionally reverberated,
plus synthetic music (tones, plucks, bells, chords from :mod:`models.synth`) that must come out unchanged,
plus the user's own clean folder. Noise: the families of :mod:`models.noises` plus the user's noise folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models import noises as N
from models.synth import HELDOUT_TEXTS, TRAIN_TEXTS, VOICES, espeak_available, speak, synthetic_clips

#: Voices of held-out speech (none of them in :data:`models.synth.VOICES`).
EVAL_VOICES = ("en-us+f4", "en-gb-x-rp", "en-us-nyc", "en+m5", "en-gb-x-gbclan+f1", "en+m2")
#: Synthetic generators that count as music (kept clean); "noise" and "hit" clips are noise-like.
MUSIC_KINDS = ("tone", "pluck", "bell", "chord")


@dataclass
class Sequence_:
    """One training/evaluation sequence: a clean signal and a unit-RMS noise bed of the same length."""

    clean: np.ndarray
    noise: np.ndarray
    family: str
    speech: bool


def speech_utterances(split: str, count: int, seed: int, sr: int) -> list[np.ndarray]:
    """``count`` espeak-ng utterances (float64) of ``split`` ("train" or "eval"); empty without espeak-ng."""
    if not espeak_available():
        return []
    voices, texts = (VOICES, TRAIN_TEXTS) if split == "train" else (EVAL_VOICES, HELDOUT_TEXTS)
    out = []
    for i, child in enumerate(np.random.SeedSequence([seed, 11]).spawn(count)):
        rng = np.random.default_rng(child)
        voice = voices[int(rng.integers(len(voices)))]
        text = texts[i % len(texts)]
        out.append(speak(text, voice, int(rng.integers(120, 210)), int(rng.integers(20, 80)), sr).astype(np.float64))
    return out


def music_clips(seconds: float, seed: int, sr: int) -> list[np.ndarray]:
    """Synthetic music clips (no noise-like kinds), float64."""
    return [c.audio.astype(np.float64) for c in synthetic_clips(seconds, seed, sr) if c.kind in MUSIC_KINDS]


def assemble(pieces: Sequence[np.ndarray], n: int, sr: int, rng: np.random.Generator,
             gap_s: tuple[float, float] = (0.05, 0.8), start: bool = False) -> np.ndarray:
    """``n`` samples of random ``pieces`` one after another with random gaps (pauses the model must hear);
    with ``start`` the first piece begins at the first sample."""
    out = np.zeros(n)
    pos = 0 if start else int(sr * rng.uniform(0.0, gap_s[1]))
    while pos < n:
        p = pieces[int(rng.integers(len(pieces)))]
        p = p * 10 ** (rng.uniform(-8.0, 0.0) / 20) / (np.sqrt(np.mean(p ** 2)) + 1e-12)
        end = min(n, pos + p.size)
        out[pos:end] += p[: end - pos]
        pos = end + int(sr * rng.uniform(*gap_s))
    return out


def make_sequences(count: int, seconds: float, seed: int, sr: int, *, speech: Sequence[np.ndarray],
                   music: Sequence[np.ndarray], talkers: Sequence[np.ndarray], families: Sequence[str],
                   noise_pool: Sequence[np.ndarray] = (), music_share: float = 0.15,
                   reverb_share: float = 0.4, start_share: float = 0.0) -> list[Sequence_]:
    """``count`` sequences of clean material over a noise bed (one family, sometimes a second one mixed in).

    The clean part is speech (reverberated with probability ``reverb_share``) or, with probability
    ``music_share``, music; with probability ``start_share`` it begins at the first sample (most beds do:
    without such sequences, whatever sounds from the very start is noise to the model, and a recording that
    opens on a held note loses it). A third of the beds come from ``noise_pool`` (real recordings) when given.
    """
    n = int(seconds * sr)
    fams = [f for f in families if f not in N.NEEDS_SPEECH or talkers]
    out = []
    for child in np.random.SeedSequence([seed, 12]).spawn(count):
        rng = np.random.default_rng(child)
        is_music = not speech or (music and rng.random() < music_share)
        start = start_share > 0.0 and rng.random() < start_share
        clean = assemble(music if is_music else speech, n, sr, rng, (0.0, 0.3) if is_music else (0.05, 0.8), start)
        if not is_music and rng.random() < reverb_share:
            clean = N.reverberate(clean, sr, rng)
        if noise_pool and rng.random() < 1 / 3:
            fam, bed = "file", N.cut_noise(noise_pool, n, rng)
        else:
            fam = fams[int(rng.integers(len(fams)))]
            bed = N.make_noise(fam, n, sr, rng, talkers)
            if rng.random() < 0.3:
                other = fams[int(rng.integers(len(fams)))]
                bed = N.unit_rms(bed + 10 ** (rng.uniform(-12.0, -3.0) / 20) * N.make_noise(other, n, sr, rng, talkers))
        bed = N.random_timing(bed, sr, rng)
        out.append(Sequence_(clean.astype(np.float32), N.unit_rms(bed).astype(np.float32), fam, not is_music))
    return out
