"""Corpus generation and audio loading."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from models import synth
from models.data import NoAudioError, clip_features, load_folder, noisy_pairs, segment, split
from realtime.config import DEFAULT


def test_synthetic_corpus_is_deterministic_and_sane():
    a = synth.synthetic_clips(8.0, seed=3)
    b = synth.synthetic_clips(8.0, seed=3)
    c = synth.synthetic_clips(8.0, seed=4)
    assert [x.kind for x in a] == [x.kind for x in b]
    assert all(np.array_equal(x.audio, y.audio) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0].audio, c[0].audio)
    assert sum(x.audio.size for x in a) >= 8.0 * DEFAULT.sample_rate
    for clip in a:
        assert clip.audio.dtype == np.float32 and np.isfinite(clip.audio).all()
        assert 0.02 < np.abs(clip.audio).max() <= 0.9


@pytest.mark.skipif(not synth.espeak_available(), reason="espeak-ng not installed")
def test_speech_is_deterministic_and_48k():
    a = synth.speech_clips(2.0, seed=1)
    b = synth.speech_clips(2.0, seed=1)
    assert a and all(np.array_equal(x.audio, y.audio) for x, y in zip(a, b, strict=True))
    assert a[0].kind == "speech" and a[0].audio.size > DEFAULT.sample_rate  # a sentence lasts > 1 s


def test_add_noise_hits_the_requested_snr():
    rng = np.random.default_rng(0)
    clean = np.sin(np.arange(48000) * 0.05).astype(np.float32)
    for color in ("white", "pink"):
        noisy = synth.add_noise(clean, 5.0, color, rng)
        err = noisy.astype(np.float64) - clean
        assert 10 * np.log10(np.sum(clean.astype(np.float64) ** 2) / np.sum(err ** 2)) == pytest.approx(5.0, abs=0.01)


def test_loader_mixes_resamples_and_skips_garbage(tmp_path, caplog):
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1) * 0.3
    sf.write(tmp_path / "tone.wav", stereo, 44100)
    sf.write(tmp_path / "tone2.flac", stereo[:, 0], 44100)
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00not really a wave file at all")
    (tmp_path / "notes.txt").write_text("not audio, not even looked at")
    with caplog.at_level(logging.WARNING, logger="models.data"):
        clips = load_folder(tmp_path, DEFAULT.sample_rate)
    assert len(clips) == 2
    assert clips[0].audio.ndim == 1 and abs(clips[0].audio.size - 48000) <= 1
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "broken.wav" in warnings[0] and "\n" not in warnings[0]


def test_loader_raises_clear_error_on_garbage_only(tmp_path, caplog):
    (tmp_path / "a.wav").write_bytes(b"garbage")
    (tmp_path / "b.ogg").write_bytes(b"\x00" * 100)
    with caplog.at_level(logging.WARNING, logger="models.data"):
        with pytest.raises(NoAudioError) as info:
            load_folder(tmp_path, DEFAULT.sample_rate)
    msg = str(info.value)
    assert "no usable audio" in msg and "\n" not in msg
    assert len(caplog.records) == 2
    with pytest.raises(NoAudioError, match="does not exist"):
        load_folder(tmp_path / "missing", DEFAULT.sample_rate)


def test_segments_split_and_features():
    clips = synth.synthetic_clips(6.0, seed=0)
    segs = segment(clips, 1.0, DEFAULT.sample_rate)
    assert all(s.audio.size <= DEFAULT.sample_rate for s in segs)
    val, train = split(segs, 0, (0.2,))
    assert len(val) + len(train) == len(segs) and val
    feats = clip_features(train, DEFAULT)
    assert feats.shape[1] == DEFAULT.n_bins and feats.dtype == np.float32 and np.isfinite(feats).all()
    noisy, clean = noisy_pairs(train[:3], DEFAULT, np.random.default_rng(0))
    assert noisy.shape == clean.shape and noisy.shape[0] > 0


def test_instruments_are_deterministic_with_separate_heldout_programs():
    from models import instruments
    if instruments.missing():
        pytest.skip(instruments.missing())
    a = instruments.instrument_clips(6.0, seed=2)
    b = instruments.instrument_clips(6.0, seed=2)
    held = instruments.instrument_clips(6.0, seed=2, heldout=True)
    assert a and all(np.array_equal(x.audio, y.audio) for x, y in zip(a, b, strict=True))
    assert {c.kind for c in a} <= {f"inst-{f}" for f in instruments.FAMILIES}
    assert not np.array_equal(a[0].audio, held[0].audio)
    for clip in a + held:
        assert clip.audio.dtype == np.float32 and np.isfinite(clip.audio).all()
        assert 0.02 < np.abs(clip.audio).max() <= 0.9
    train_p = {p for t, _h, _lo, _hi in instruments.FAMILIES.values() for p in t}
    held_p = {p for _t, h, _lo, _hi in instruments.FAMILIES.values() for p in h}
    assert not train_p & held_p


def test_corpus_without_fluidsynth_says_what_it_left_out(monkeypatch, caplog):
    from models import data, instruments
    monkeypatch.setattr(instruments, "missing", lambda: "no fluidsynth (test)")
    with caplog.at_level(logging.WARNING, logger="models.data"):
        corpus = data.synthetic_corpus(0.2, 0, DEFAULT, speech=False)
    assert "left out" in corpus.description and "no fluidsynth (test)" in corpus.description
    assert not any(c.kind.startswith("inst-") for c in corpus.train + corpus.heldout)
    assert any("left out" in r.getMessage() for r in caplog.records)
