"""Files are never lost (#17 items 1-2) and formats are kept (#17 items 3-4), through the real CLI."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.test_cli import ROOT, assert_one_line_error, run_cli


def _tone(path: Path, seconds: float = 1.0, sr: int = 44100, channels: int = 2, subtype: str = "PCM_16") -> Path:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    data = np.stack([x * (1 - 0.3 * c) for c in range(channels)], axis=1)
    sf.write(path, data, sr, subtype=subtype)
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- item 1: the output is never the input ---------------------------------------------------------------

@pytest.mark.parametrize("kind", ["same", "symlink", "hardlink", "dotted"])
@pytest.mark.slow  # real CLI subprocesses
def test_output_that_is_the_input_is_refused(tmp_path, tp_model, kind):
    src = _tone(tmp_path / "in.wav")
    before = src.read_bytes()
    out = {"same": src, "dotted": tmp_path / "." / "in.wav", "symlink": tmp_path / "link.wav",
           "hardlink": tmp_path / "hard.wav"}[kind]
    if kind == "symlink":
        out.symlink_to(src)
    elif kind == "hardlink":
        os.link(src, out)
    r = run_cli("process", str(src), str(out), "--model", str(tp_model))
    assert_one_line_error(r, "is the input", "never overwritten")
    assert src.read_bytes() == before


# --- item 2: atomic writes, checks before the work -------------------------------------------------------

@contextlib.contextmanager
def _mounted_tmpfs(path: Path, options: str):
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


@contextlib.contextmanager
def _readonly_dir(path: Path):
    if os.geteuid() != 0:  # chmod is enough for a normal user
        path.mkdir()
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    with _mounted_tmpfs(path, "ro,size=64k") as p:  # root writes through chmod: a read-only mount
        yield p


@pytest.mark.slow  # real CLI subprocesses
def test_readonly_folder_is_a_one_line_error_before_processing(tmp_path, tp_model):
    src = _tone(tmp_path / "in.wav")
    with _readonly_dir(tmp_path / "ro") as ro:
        t0 = time.monotonic()
        r = run_cli("process", str(src), str(ro / "out.wav"), "--model", str(tp_model))
        assert_one_line_error(r, "cannot write to folder", str(ro))
        # The demo and a preset save say the same, first.
        assert_one_line_error(run_cli("demo", "--out-dir", str(ro / "sub")), "cannot create output folder")
        assert_one_line_error(run_cli("demo", "--out-dir", str(ro)), "cannot write to folder")
        assert time.monotonic() - t0 < 60


@pytest.mark.slow  # real CLI subprocesses
def test_full_disk_leaves_the_previous_file_and_no_partial_file(tmp_path, tp_model):
    src = _tone(tmp_path / "in.wav", seconds=2.0)
    with _mounted_tmpfs(tmp_path / "small", "size=64k") as small:
        for name in ("out.wav", "out.flac"):
            (small / name).write_bytes(b"previous")
            r = run_cli("process", str(src), str(small / name), "--model", str(tp_model))
            assert_one_line_error(r, name)
            assert (small / name).read_bytes() == b"previous"
            assert _leftovers(small) == []


def test_injected_write_error_and_ctrl_c_while_writing_keep_the_previous_file(tmp_path, monkeypatch):
    """The writer fails (or Ctrl-C arrives) after half the file is on disk: the old file stays, no temp."""
    from realtime.errors import OutputFileError
    from realtime.io import offline
    from realtime.io.offline import OutputFormat, write_audio

    target = tmp_path / "out.wav"
    target.write_bytes(b"previous")
    real_write = sf.write

    for exc in (RuntimeError("Error writing file"), KeyboardInterrupt()):
        def half_then_fail(file, data, *a, _exc=exc, **k):
            real_write(file, data[: len(data) // 2], *a, **k)
            raise _exc

        monkeypatch.setattr(sf, "write", half_then_fail)
        y = np.zeros((48000, 1), np.float32)
        with pytest.raises((OutputFileError, KeyboardInterrupt)):
            write_audio(target, y, OutputFormat("WAV", 48000, "PCM_16", 1))
        assert target.read_bytes() == b"previous"
        assert _leftovers(tmp_path) == []
    monkeypatch.setattr(sf, "write", real_write)
    write_audio(target, np.zeros((10, 1), np.float32), OutputFormat("WAV", 48000, "PCM_16", 1))
    assert sf.info(str(target)).frames == 10
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # like a plain open, not mkstemp's 0600
    assert offline  # imported module is the real one


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.slow  # real CLI subprocesses
def test_signal_mid_file_stops_cleanly_and_writes_nothing(tmp_path, sig, code):
    """Ctrl-C or SIGTERM during a long process: exit 130/143, a summary line, no traceback, the previous
    output untouched, no temporary file left."""
    # 10 minutes at 128-sample blocks: over 10 s of processing even at 60x real time (measured 21-25x)
    src = _tone(tmp_path / "long.wav", seconds=600.0, sr=48000, channels=1, subtype="FLOAT")
    out = tmp_path / "out.wav"
    out.write_bytes(b"previous")
    p = subprocess.Popen([sys.executable, "-m", "realtime.cli", "process", str(src), str(out), "--blocksize", "128"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3.0)  # past the imports and model load (about 1 s): inside the block loop
    assert p.poll() is None, p.communicate()
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=30)
    assert p.returncode == code, (p.returncode, stderr)
    assert "Traceback" not in stderr and "leaked" not in stderr
    assert "was not written" in stdout + stderr
    assert out.read_bytes() == b"previous"
    assert _leftovers(tmp_path) == []


def test_presets_and_reports_are_written_atomically(tmp_path, monkeypatch):
    from realtime.engine.params import Params
    from realtime.errors import OutputFileError
    from realtime.fileio import write_text
    from realtime.gui.presets import PresetError, capture, load_preset, save_preset

    path = tmp_path / "p.json"
    save_preset(path, capture(Params(), [], [], "one"))
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(PresetError, match="No space left"):
        save_preset(path, capture(Params(), [], [], "two"))
    with pytest.raises(OutputFileError, match="No space left"):
        write_text(tmp_path / "report.json", "{}")
    assert path.read_bytes() == before and load_preset(path).name == "one"
    assert _leftovers(tmp_path) == []


# --- item 3: keep the input's format ---------------------------------------------------------------------

@pytest.mark.slow  # real CLI subprocesses
def test_input_format_is_kept_by_default(tmp_path, tp_model):
    """A 44.1 kHz 16-bit stereo WAV comes back 44.1 kHz 16-bit stereo WAV of the same length, and the
    summary line says nothing changed."""
    src = _tone(tmp_path / "in.wav", seconds=1.0, sr=44100, channels=2, subtype="PCM_16")
    r = run_cli("process", str(src), str(tmp_path / "out.wav"), "--model", str(tp_model))
    assert r.returncode == 0, r.stderr
    info = sf.info(str(tmp_path / "out.wav"))
    assert (info.samplerate, info.channels, info.subtype, info.format, info.frames) == (44100, 2, "PCM_16", "WAV",
                                                                                      44100)
    assert "(as the input)" in r.stdout and "44100 Hz 16-bit stereo WAV" in r.stdout


def test_dither_when_reducing_to_16_bits(tmp_path):
    from realtime.io.offline import quantize_dithered

    y = np.full((20000, 1), 0.25 / 32768, np.float32)  # a quarter of an LSB: undithered rounding gives all zeros
    q = quantize_dithered(y, "PCM_16", seed=1)
    assert q.dtype == np.int16 and q.std() > 0.3 and abs(q.mean() - 0.25) < 0.05
    np.testing.assert_array_equal(q, quantize_dithered(y, "PCM_16", seed=1))  # seeded: reproducible


@pytest.mark.parametrize("ext,container", [(".wav", "WAV"), (".flac", "FLAC"), (".ogg", "OGG"), (".aiff", "AIFF"),
                                           (".mp3", "MP3")])
@pytest.mark.slow  # real CLI subprocesses
def test_container_follows_the_extension(tmp_path, tp_model, ext, container):
    if container not in sf.available_formats():
        pytest.skip(f"this libsndfile does not write {container}")
    src = _tone(tmp_path / "in.wav", seconds=0.5, sr=48000, channels=1)
    out = tmp_path / f"out{ext}"
    r = run_cli("process", str(src), str(out), "--model", str(tp_model), "--quiet")
    assert r.returncode == 0, r.stderr
    assert sf.info(str(out)).format == container


@pytest.mark.slow  # real CLI subprocesses
def test_rate_and_subtype_override_and_are_reported(tmp_path, tp_model):
    src = _tone(tmp_path / "in.wav", seconds=1.0, sr=44100, channels=1)
    r = run_cli("process", str(src), str(tmp_path / "o.flac"), "--model", str(tp_model), "--rate", "48000",
                "--subtype", "PCM_24")
    assert r.returncode == 0, r.stderr
    info = sf.info(str(tmp_path / "o.flac"))
    assert (info.samplerate, info.subtype, info.frames) == (48000, "PCM_24", 48000)
    assert "changed: rate 44100 -> 48000 Hz, sample format 16-bit -> 24-bit, container WAV -> FLAC" in r.stdout
    assert_one_line_error(run_cli("process", str(src), str(tmp_path / "o.ogg"), "--model", str(tp_model),
                                  "--subtype", "PCM_24"), "OGG cannot hold", "VORBIS")
    assert_one_line_error(run_cli("process", str(src), str(tmp_path / "o.xyz"), "--model", str(tp_model)),
                          "unsupported extension", "wav, flac, ogg, aiff")


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
@pytest.mark.parametrize("subtype", ["FLOAT", "PCM_16", "PCM_24", "DOUBLE"])
@pytest.mark.slow  # real CLI subprocesses
def test_wav_headers_read_by_sox_without_warnings(tmp_path, tp_model, subtype):
    src = _tone(tmp_path / "in.wav", seconds=0.5, sr=48000, channels=2, subtype=subtype)
    r = run_cli("process", str(src), str(tmp_path / "o.wav"), "--model", str(tp_model), "--quiet")
    assert r.returncode == 0, r.stderr
    s = subprocess.run(["sox", str(tmp_path / "o.wav"), "-n", "stat"], capture_output=True, text=True)
    assert s.returncode == 0 and "WARN" not in s.stderr, s.stderr
    assert sf.info(str(tmp_path / "o.wav")).subtype == subtype


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffmpeg is not installed")
@pytest.mark.slow  # real CLI subprocesses
def test_wav_headers_read_by_ffprobe_without_warnings(tmp_path, tp_model):
    src = _tone(tmp_path / "in.wav", seconds=0.5, sr=48000, channels=2, subtype="FLOAT")
    assert run_cli("process", str(src), str(tmp_path / "o.wav"), "--model", str(tp_model), "--quiet").returncode == 0
    s = subprocess.run(["ffprobe", "-v", "warning", str(tmp_path / "o.wav")], capture_output=True, text=True)
    assert s.returncode == 0 and s.stderr.strip() == "", s.stderr


# --- item 4: one list of formats --------------------------------------------------------------------------

def test_one_list_of_formats_for_process_train_quality_and_docs():
    from models import data
    from realtime.fileio import AUDIO_EXTENSIONS, supported_text

    assert data.AUDIO_EXTENSIONS is AUDIO_EXTENSIONS and ".mp3" in AUDIO_EXTENSIONS
    readme = (ROOT / "README.md").read_text()
    assert supported_text() in readme


def test_training_folder_reads_mp3(tmp_path):
    if "MP3" not in sf.available_formats():
        pytest.skip("no mp3 in this libsndfile")
    from models.data import load_folder
    _tone(tmp_path / "a.wav", seconds=1.0, sr=48000, channels=1)
    x = sf.read(tmp_path / "a.wav")[0]
    sf.write(tmp_path / "b.mp3", x, 48000)
    clips = load_folder(tmp_path, 48000)
    assert len(clips) == 2
