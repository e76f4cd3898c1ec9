"""Every subcommand with a table of bad values (#17 item 6): no traceback, a clear one-line message, exit 2.

Zero, negative, NaN, huge, wrong type, a missing file, a folder instead of a file, an unreadable file: each row
runs the real CLI in a subprocess.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from tests.test_cli import run_cli

pytestmark = pytest.mark.slow  # one real CLI subprocess per row (minutes in all)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    sf.write(d / "in.wav", np.zeros(4800, np.float32), 48000, subtype="FLOAT")
    (d / "garbage.wav").write_bytes(b"RIFF nonsense, not audio")
    (d / "garbage.onnx").write_bytes(b"\x08\x01garbage" * 10)
    (d / "garbage.pt").write_bytes(b"not a checkpoint")
    (d / "garbage.json").write_bytes(b"{not json")
    (d / "folder").mkdir()
    (d / "file").write_text("a file where a folder is expected")
    locked = d / "locked.wav"
    locked.write_bytes((d / "in.wav").read_bytes())
    locked.chmod(0)
    return d


def _table(d) -> list[tuple[str, list[str], str]]:
    """(id, argv, a word the message must contain)."""
    i, o = str(d / "in.wav"), str(d / "out.wav")
    unreadable = str(d / "locked.wav") if os.geteuid() != 0 else str(d / "garbage.wav")  # root reads anything
    rows = [
        # process: values
        ("process-blocksize-0", ["process", i, o, "--blocksize", "0"], "blocksize"),
        ("process-blocksize-neg", ["process", i, o, "--blocksize", "-5"], "blocksize"),
        ("process-blocksize-nan", ["process", i, o, "--blocksize", "nan"], "blocksize"),
        ("process-blocksize-huge", ["process", i, o, "--blocksize", "99999999999"], "blocksize"),
        ("process-amount-nan", ["process", i, o, "--amount", "nan"], "amount"),
        ("process-amount-huge", ["process", i, o, "--amount", "1e300"], "amount"),
        ("process-amount-neg", ["process", i, o, "--amount", "-1"], "amount"),
        ("process-amount-word", ["process", i, o, "--amount", "loud"], "amount"),
        ("process-amount-badslot", ["process", i, o, "--amount", "7=0.5"], "slot"),
        ("process-gate-zero", ["process", i, o, "--gate", "0"], "gate"),
        ("process-noise-rate-0", ["process", i, o, "--noise-rate", "0"], "noise_rate"),
        ("process-mix-slot", ["process", i, o, "--mix", "1=0.5"], "global"),
        ("process-phase-name", ["process", i, o, "--phase", "autp"], "auto"),
        ("process-lookahead", ["process", i, o, "--lookahead", "2"], "lookahead"),
        ("process-seed-word", ["process", i, o, "--seed", "x"], "seed"),
        ("process-rate-0", ["process", i, o, "--rate", "0"], "rate"),
        ("process-rate-huge", ["process", i, o, "--rate", "10000000"], "rate"),
        ("process-subtype-bad", ["process", i, o, "--subtype", "PCM_99"], "PCM_99"),
        # process: files
        ("process-missing-input", ["process", str(d / "nope.wav"), o], "no such file"),
        ("process-folder-input", ["process", str(d / "folder"), o], "folder"),
        ("process-unreadable-input", ["process", unreadable, o], "wav"),
        ("process-output-folder", ["process", i, str(d / "folder")], "folder"),
        ("process-output-under-file", ["process", i, str(d / "file" / "o.wav")], "folder"),
        ("process-missing-model", ["process", i, o, "--model", str(d / "nope.onnx")], "not found"),
        ("process-folder-model", ["process", i, o, "--model", str(d / "folder")], "folder"),
        ("process-garbage-model", ["process", i, o, "--model", str(d / "garbage.onnx")], "garbage.onnx"),
        ("process-missing-preset", ["process", i, o, "--preset", str(d / "nope.json")], "preset"),
        ("process-garbage-preset", ["process", i, o, "--preset", str(d / "garbage.json")], "JSON"),
        ("process-folder-preset", ["process", i, o, "--preset", str(d / "folder")], "preset"),
        # live (every one fails before any audio device is opened)
        ("live-blocksize-0", ["live", "--blocksize", "0"], "blocksize"),
        ("live-seconds-neg", ["live", "--seconds", "-1"], "seconds"),
        ("live-seconds-nan", ["live", "--seconds", "nan"], "seconds"),
        ("live-amount-nan", ["live", "--amount", "nan"], "amount"),
        ("live-missing-model", ["live", "--model", str(d / "nope.onnx")], "not found"),
        ("live-client-name", ["live", "--client-name", "a:b", "--seconds", "0.1"], "client-name"),
        # info, controls, devices
        ("info-missing", ["info", str(d / "nope.onnx")], "not found"),
        ("info-folder", ["info", str(d / "folder")], "folder"),
        ("controls-bogus", ["controls", "--bogus"], "bogus"),
        ("devices-bogus", ["devices", "--bogus"], "bogus"),
        ("unknown-command", ["frobnicate"], "frobnicate"),
        # demo
        ("demo-seconds-neg", ["demo", "--seconds", "-1"], "seconds"),
        ("demo-seconds-nan", ["demo", "--seconds", "nan"], "seconds"),
        ("demo-seconds-word", ["demo", "--seconds", "long"], "seconds"),
        ("demo-outdir-file", ["demo", "--out-dir", str(d / "file")], "folder"),
        # the forwarded commands
        ("quantize-missing", ["quantize", str(d / "nope.onnx"), "--out", str(d / "q.onnx")], "nope.onnx"),
        ("quantize-folder", ["quantize", str(d / "folder"), "--out", str(d / "q.onnx")], "folder"),
        ("quantize-garbage", ["quantize", str(d / "garbage.onnx"), "--out", str(d / "q.onnx")], "garbage.onnx"),
        ("quantize-frames-0", ["quantize", "default", "--out", str(d / "q.onnx"), "--frames", "0"], "frames"),
        ("quality-missing", ["quality", str(d / "nope.onnx")], "nope.onnx"),
        ("quality-seconds-word", ["quality", "default", "--seconds", "x"], "seconds"),
        ("export-missing", ["export", str(d / "nope.pt"), "--out", str(d / "e.onnx")], "nope.pt"),
        ("export-garbage", ["export", str(d / "garbage.pt"), "--out", str(d / "e.onnx")], "garbage.pt"),
        ("export-folder", ["export", str(d / "folder"), "--out", str(d / "e.onnx")], "folder"),
        ("train-latent-0", ["train", "--latent", "0", "--out", str(d / "t.onnx")], "latent"),
        ("train-lr-nan", ["train", "--lr", "nan", "--out", str(d / "t.onnx")], "lr"),
        ("train-batch-neg", ["train", "--batch", "-1", "--out", str(d / "t.onnx")], "batch"),
        ("train-epochs-word", ["train", "--epochs", "many", "--out", str(d / "t.onnx")], "epochs"),
        ("train-data-missing", ["train", "--data", str(d / "nope"), "--out", str(d / "t.onnx")], "nope"),
        ("train-resume-garbage", ["train", "--resume", "--checkpoint", str(d / "garbage.pt"), "--out",
                                  str(d / "t.onnx")], "garbage.pt"),
        ("bench-skip-bogus", ["bench", "--skip", "bogus"], "bogus"),
        ("bench-model-missing", ["bench", "--model", str(d / "nope.onnx")], "nope.onnx"),
        ("soak-seconds-word", ["soak", "--seconds", "x"], "seconds"),
        ("soak-seconds-neg", ["soak", "--seconds", "-5"], "seconds"),
    ]
    return rows


ROWS = [r[0] for r in _table(__import__("pathlib").Path("/x"))]


@pytest.mark.parametrize("row", ROWS)
def test_bad_value_is_a_one_line_error(files, row):
    _, argv, word = next(r for r in _table(files) if r[0] == row)
    r = run_cli(*argv, timeout=180)
    assert "Traceback" not in r.stderr + r.stdout, r.stderr[-2000:]
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr[-2000:]
    assert word.lower() in errors[0].lower(), errors[0]
