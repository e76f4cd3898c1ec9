"""Training data: audio folders or the synthetic corpus, cut into segments, split, and turned into frames.

Splits are made on segments (not frames) so that neighbouring, nearly identical STFT frames never land on
both sides of a split. The synthetic corpus gets its held-out split from a different seed and from
sentences never spoken in training (:data:`models.synth.HELDOUT_TEXTS`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from models import instruments
from models.synth import HELDOUT_TEXTS, Clip, add_noise, speech_clips, synthetic_clips
from realtime.config import StftConfig
from realtime.dsp.features import log_magnitude
from realtime.dsp.stft import stft
from realtime.fileio import AUDIO_EXTENSIONS  # the one list of formats (process, train, quality, docs)

log = logging.getLogger(__name__)

#: Frames whose mean log-magnitude is below this are digital silence: dropped from training.
SILENCE_FEATURE = -10.5
#: Share of the synthetic corpus that is espeak-ng speech (when espeak-ng is installed).
SPEECH_SHARE = 0.4
#: Share of the built-in corpus that is SoundFont-rendered instruments (when fluidsynth and a GM SoundFont
#: are installed; otherwise the synthetic generators fill it).
INSTRUMENT_SHARE = 0.35
#: Restoration training noise: SNR range (dB) and colours.
SNR_RANGE_DB = (-5.0, 20.0)
NOISE_COLORS = ("white", "pink")


class NoAudioError(RuntimeError):
    """No usable audio was found where training data was expected (one-line message)."""


@dataclass
class Corpus:
    """Clips split three ways.

    Attributes
    ----------
    train, val, heldout : list of Clip
    description : str
        One-line provenance summary (goes into the model's ``training_data`` metadata).
    """

    train: list[Clip]
    val: list[Clip]
    heldout: list[Clip] = field(default_factory=list)
    description: str = ""


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read one file with soundfile, mix to mono, resample with soxr; float32.

    Raises
    ------
    Exception
        Whatever soundfile raises for an unreadable file, or ValueError for an empty/non-finite one.
    """
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if audio.size == 0:
        raise ValueError("no samples")
    mono = audio.mean(axis=1)
    if not np.all(np.isfinite(mono)):
        raise ValueError("non-finite samples")
    if sr != sample_rate:
        mono = soxr.resample(mono, sr, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def load_folder(folder: str | Path, sample_rate: int) -> list[Clip]:
    """Every readable audio file under ``folder`` (recursive, sorted), mono at ``sample_rate``.

    Unreadable files are skipped with one one-line warning each (logger ``models.data``).

    Raises
    ------
    NoAudioError
        When the folder does not exist or holds no usable audio.
    """
    root = Path(folder)
    if not root.is_dir():
        raise NoAudioError(f"training data folder {str(root)!r} does not exist; pass --data DIR or synthetic")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    clips = []
    for path in files:
        try:
            clips.append(Clip("file", load_audio(path, sample_rate)))
        except Exception as exc:  # any decoder failure means "skip this file"
            reason = " ".join(str(exc).split()) or type(exc).__name__
            log.warning("skipping unreadable audio file %s: %s", path, reason)
    if not clips:
        exts = "/".join(e.lstrip(".") for e in AUDIO_EXTENSIONS)
        raise NoAudioError(f"no usable audio in {str(root)!r} ({len(files)} {exts} file(s) found, none "
                           "readable); add audio files or use --data synthetic")
    return clips


def segment(clips: list[Clip], seconds: float, sample_rate: int) -> list[Clip]:
    """Cut clips into pieces of at most ``seconds`` (the last piece of a clip may be shorter)."""
    n = max(1, int(seconds * sample_rate))
    return [Clip(c.kind, c.audio[i:i + n]) for c in clips for i in range(0, c.audio.size, n)
            if c.audio[i:i + n].size >= sample_rate // 10]


def split(clips: list[Clip], seed: int, fractions: tuple[float, ...]) -> list[list[Clip]]:
    """Shuffle ``clips`` (seeded) and cut them into groups of the given fractions (the rest goes last)."""
    order = np.random.default_rng([seed, 3]).permutation(len(clips))
    out, start = [], 0
    for frac in fractions:
        take = max(1, int(round(frac * len(clips)))) if len(clips) > len(fractions) else 0
        out.append([clips[i] for i in order[start:start + take]])
        start += take
    out.append([clips[i] for i in order[start:]])
    return out


def synthetic_corpus(minutes: float, seed: int, cfg: StftConfig, speech: bool = True,
                     instruments_: bool = True) -> Corpus:
    """Synthetic instruments, SoundFont-rendered instruments (35 %) and espeak-ng speech (40 %) when available.

    Validation is 10 % of the training material; the held-out split (about 15 % of ``minutes``, at least
    20 s) comes from another seed, unseen sentences and instrument programs never used in training.
    What is missing (espeak-ng, fluidsynth/SoundFont) is left out with a warning and named in the description.
    """
    seconds = 60.0 * minutes
    n_speech = SPEECH_SHARE * seconds if speech else 0.0
    why_no_inst = instruments.missing() if instruments_ else "not asked for"
    n_inst = INSTRUMENT_SHARE * seconds if not why_no_inst else 0.0
    inst = instruments.instrument_clips(n_inst, seed, cfg.sample_rate)
    clips = synthetic_clips(seconds - n_speech - n_inst, seed, cfg.sample_rate)
    talk = speech_clips(n_speech, seed, cfg.sample_rate)
    if speech and not talk:
        log.warning("espeak-ng not found: training without speech")
    if instruments_ and why_no_inst:
        log.warning("sampled instruments left out of the corpus: %s", why_no_inst)
    val, train = split(segment(clips + inst + talk, 2.0, cfg.sample_rate), seed, (0.1,))
    held_s = max(20.0, 0.15 * seconds)
    other = seed + 1_000_003
    held_inst = INSTRUMENT_SHARE * held_s if inst else 0.0
    held = synthetic_clips(held_s * (1 - SPEECH_SHARE) - held_inst, other, cfg.sample_rate)
    held += instruments.instrument_clips(held_inst, other, cfg.sample_rate, heldout=True)
    held += speech_clips(held_s * SPEECH_SHARE if talk else 0.0, other, cfg.sample_rate, HELDOUT_TEXTS)
    what = "synthetic tones/plucks/FM bells/filtered noise/hits/chords"
    if inst:
        sf2 = instruments.soundfont()
        what += (f" + General MIDI instruments (piano/strings/brass/woodwinds/guitars/organ/choir/percussion "
                 f"phrases rendered with fluidsynth from {sf2.name if sf2 else '?'}; held-out programs separate)")
    elif instruments_:
        what += f" (sampled instruments left out: {why_no_inst})"
    if talk:
        what += " + espeak-ng speech"
    terms = ("SoundFont samples under the SoundFont's licence (TimGM6mb: GPL-2)" if inst
             else "no recorded audio, no licence terms")
    desc = f"{what}, {minutes:g} min generated by models.synth/models.instruments (seed {seed}); {terms}"
    return Corpus(train, val, held, desc)


def folder_corpus(folder: str | Path, seed: int, cfg: StftConfig) -> Corpus:
    """Audio files from ``folder`` cut into 2 s segments and split 80/10/10 (train/val/held-out)."""
    clips = load_folder(folder, cfg.sample_rate)
    segs = segment(clips, 2.0, cfg.sample_rate)
    if len(segs) < 3:
        raise NoAudioError(f"only {len(segs)} segment(s) of audio in {str(folder)!r}; need at least 3 "
                           "(about 6 s of audio)")
    val, held, train = split(segs, seed, (0.1, 0.1))
    minutes = sum(c.audio.size for c in clips) / cfg.sample_rate / 60
    return Corpus(train, val, held, f"{len(clips)} audio file(s) from {Path(folder).name}, {minutes:.1f} min")


def build_corpus(data: str, minutes: float, seed: int, cfg: StftConfig) -> Corpus:
    """``data`` is ``"synthetic"`` or a folder of audio files."""
    if data == "synthetic":
        return synthetic_corpus(minutes, seed, cfg)
    return folder_corpus(data, seed, cfg)


def clip_features(clips: list[Clip], cfg: StftConfig, drop_silence: bool = True) -> np.ndarray:
    """Log-magnitude STFT frames of all clips stacked, ``[frames, n_bins]`` float32."""
    feats = [log_magnitude(stft(c.audio, cfg)) for c in clips if c.audio.size >= cfg.hop]
    if not feats:
        return np.zeros((0, cfg.n_bins), dtype=np.float32)
    out = np.concatenate(feats)
    if drop_silence:
        out = out[out.mean(axis=1) > SILENCE_FEATURE]
    return np.ascontiguousarray(out)


def noisy_pairs(clips: list[Clip], cfg: StftConfig, rng: np.random.Generator,
                snr_range: tuple[float, float] = SNR_RANGE_DB) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) log-magnitude frame pairs: each clip gets noise of a random colour and SNR.

    Noise is added to the waveform before the STFT, so noisy and clean frames are exactly aligned and the
    noise interacts with the signal the way it does live.
    """
    noisy, clean = [], []
    for c in clips:
        if c.audio.size < cfg.hop:
            continue
        color = NOISE_COLORS[int(rng.integers(len(NOISE_COLORS)))]
        y = add_noise(c.audio, float(rng.uniform(*snr_range)), color, rng)
        clean.append(log_magnitude(stft(c.audio, cfg)))
        noisy.append(log_magnitude(stft(y, cfg)))
    if not clean:
        empty = np.zeros((0, cfg.n_bins), dtype=np.float32)
        return empty, empty
    x, y = np.concatenate(noisy), np.concatenate(clean)
    keep = y.mean(axis=1) > SILENCE_FEATURE
    return np.ascontiguousarray(x[keep]), np.ascontiguousarray(y[keep])
