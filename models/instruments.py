"""Sampled instruments for the built-in corpus: deterministic MIDI phrases rendered through a General MIDI
SoundFont with fluidsynth (``pyfluidsynth`` + Debian ``fluidsynth`` and ``timgm6mb-soundfont``).

Phrases (scales, chords, arpeggios, sustained notes) across registers and velocities are drawn from a seeded
generator, so the same seed gives the same audio. Each family (piano, strings, brass, woodwinds, guitars,
organ, choir, percussion) has training programs and separate held-out programs (:data:`FAMILIES`), so the
held-out set is new instruments, not only new phrases. Without fluidsynth or a SoundFont,
:func:`instrument_clips` returns no clips and :func:`missing` says what is missing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from models.synth import Clip
from realtime.config import SAMPLE_RATE

log = logging.getLogger(__name__)

#: SoundFonts looked for, first found wins (Debian paths).
SOUNDFONTS = ("/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/share/sounds/sf2/MuseScore_General.sf2",
              "/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
#: family -> (training GM programs, held-out GM programs, lowest MIDI note, highest MIDI note).
#: Percussion uses the drum channel (program numbers unused; notes are GM drum keys).
FAMILIES: dict[str, tuple[tuple[int, ...], tuple[int, ...], int, int]] = {
    "piano": ((0, 2, 4, 6), (1, 5), 28, 96),
    "strings": ((40, 42, 48, 45), (41, 49), 36, 91),
    "brass": ((56, 57, 60, 61), (58, 62), 40, 82),
    "woodwinds": ((71, 73, 68, 65), (70, 72), 48, 93),
    "guitars": ((24, 25, 27, 33), (26, 34), 35, 84),
    "organ": ((19, 16, 17), (18, 20), 36, 88),
    "choir": ((52, 54), (53,), 45, 81),
    "percussion": ((11, 12, 13), (8, 14), 48, 96),  # tuned percussion (vibes, marimba...) plus drum kits
}
DRUM_KEYS = (35, 36, 38, 40, 42, 44, 46, 49, 51, 41, 45, 48, 50, 39, 54, 56, 75)
PHRASES = ("scale", "chord", "arpeggio", "sustained")
#: Peak level range of a rendered clip (dBFS); the SoundFont renders near -28 dBFS, so clips are normalised.
LEVEL_DB = (-30.0, -1.0)


def soundfont() -> Path | None:
    """The first General MIDI SoundFont found, or None."""
    return next((Path(p) for p in SOUNDFONTS if Path(p).is_file()), None)


def missing() -> str:
    """What is missing for rendering instruments ('' when everything is there)."""
    try:
        import fluidsynth  # noqa: F401
    except Exception:  # ImportError, or OSError when libfluidsynth is absent
        return ("pyfluidsynth/libfluidsynth (apt-get install fluidsynth; pip install pyfluidsynth) not available")
    if soundfont() is None:
        return "no General MIDI SoundFont (apt-get install timgm6mb-soundfont)"
    return ""


def _phrase(rng: np.random.Generator, lo: int, hi: int, drums: bool) -> tuple[list[tuple[float, float, int, int]],
                                                                           float]:
    """Notes ``(start s, duration s, key, velocity)`` of one phrase and its length in seconds."""
    kind = PHRASES[int(rng.integers(len(PHRASES)))]
    beat = float(rng.uniform(0.12, 0.4))
    vel = int(rng.integers(35, 121))
    notes: list[tuple[float, float, int, int]] = []
    if drums:
        for i in range(int(rng.integers(6, 16))):
            key = DRUM_KEYS[int(rng.integers(len(DRUM_KEYS)))]
            notes.append((i * beat, 0.1, key, int(np.clip(vel + rng.integers(-25, 26), 20, 127))))
        return notes, len(notes) * beat + 0.6
    root = int(rng.integers(lo, max(lo + 1, hi - 14)))
    major = (0, 2, 4, 5, 7, 9, 11, 12)
    minor = (0, 2, 3, 5, 7, 8, 10, 12)
    steps = major if rng.random() < 0.5 else minor
    chord = (0, 4, 7, 12) if steps is major else (0, 3, 7, 12)
    if kind == "scale":
        seq = list(steps) + list(steps[-2::-1]) if rng.random() < 0.5 else list(steps)
        for i, s in enumerate(seq):
            notes.append((i * beat, beat * 0.95, root + s, int(np.clip(vel + rng.integers(-12, 13), 20, 127))))
        length = len(seq) * beat
    elif kind == "chord":
        dur = float(rng.uniform(0.8, 2.5))
        for s in chord[:int(rng.integers(3, 5))]:
            notes.append((0.0, dur, root + s, vel))
        length = dur
    elif kind == "arpeggio":
        reps = int(rng.integers(2, 4))
        for i in range(4 * reps):
            notes.append((i * beat * 0.6, beat * 0.9, root + chord[i % 4], vel))
        length = 4 * reps * beat * 0.6 + beat
    else:
        dur = float(rng.uniform(1.0, 3.0))
        notes.append((0.0, dur, root + int(rng.integers(0, 12)), vel))
        length = dur
    return notes, length + 0.5  # release tail


def _render(synth, sfid: int, program: int, drums: bool, notes, length: float, sr: int) -> np.ndarray:
    """Render one phrase on channel 0 (or the drum channel 9) to mono float32."""
    ch = 9 if drums else 0
    synth.program_select(ch, sfid, 128 if drums else 0, 0 if drums else program)
    events = sorted([(t, 1, key, v) for t, d, key, v in notes] + [(t + d, 0, key, 0) for t, d, key, v in notes])
    total = int(length * sr)
    out = np.zeros(total, np.float32)
    pos = 0
    for t, on, key, v in events + [(length, -1, 0, 0)]:
        n = min(int(t * sr), total) - pos
        if n > 0:
            s = np.asarray(synth.get_samples(n), np.float32).reshape(-1, 2).mean(axis=1)
            out[pos:pos + n] = s / 32768.0
            pos += n
        if on == 1:
            synth.noteon(ch, key, v)
        elif on == 0:
            synth.noteoff(ch, key)
    # Let the previous phrase's tail die away before the next one (not recorded).
    synth.get_samples(int(0.5 * sr))
    return out


def instrument_clips(seconds: float, seed: int, sample_rate: int = SAMPLE_RATE, heldout: bool = False,
                     families: tuple[str, ...] | None = None) -> list[Clip]:
    """Rendered phrases, families in turn, until ``seconds`` of audio (``[]`` when fluidsynth is missing).

    ``heldout`` picks each family's held-out programs (never used for training). Clip kinds are
    ``inst-<family>``. Same arguments, same audio.
    """
    if seconds <= 0 or missing():
        return []
    import fluidsynth

    fams = families or tuple(FAMILIES)
    synth = fluidsynth.Synth(samplerate=float(sample_rate))
    # Reverb and chorus off: dry notes (the room is not part of the instrument), and no tail carried over.
    for setting in ("synth.reverb.active", "synth.chorus.active"):
        try:
            synth.setting(setting, 0)
        except Exception:  # older libfluidsynth: keep its defaults
            pass
    sfid = synth.sfload(str(soundfont()))
    clips: list[Clip] = []
    total = 0
    i = 0
    rng = np.random.default_rng([seed, 11, int(heldout)])
    while total < seconds * sample_rate and i < 100_000:
        fam = fams[i % len(fams)]
        train_p, held_p, lo, hi = FAMILIES[fam]
        progs = held_p if heldout else train_p
        drums = fam == "percussion" and rng.random() < 0.4
        program = progs[int(rng.integers(len(progs)))]
        notes, length = _phrase(rng, lo, hi, drums)
        audio = _render(synth, sfid, program, drums, notes, length, sample_rate)
        peak = float(np.abs(audio).max())
        i += 1
        if peak < 1e-5:
            continue
        audio *= 10.0 ** (rng.uniform(*LEVEL_DB) / 20.0) / peak
        clips.append(Clip(f"inst-{fam}", audio.astype(np.float32)))
        total += audio.size
    synth.delete()
    return clips
