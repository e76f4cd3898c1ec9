"""``train`` through the real CLI (#17 items 5, 6, 12): the end-of-training verdict against the smoothing
baseline and the shipped model, Ctrl-C saves a checkpoint and prints the resume command, and a mismatched
``--resume`` says which setting differs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.test_cli import ROOT, assert_one_line_error, run_cli

pytest.importorskip("torch")
pytestmark = [pytest.mark.slow, pytest.mark.train]
TINY = ["--minutes", "0.25", "--batch", "128", "--latent", "8", "--hidden", "64,32", "--deterministic", "--no-progress"]


def test_training_ends_with_a_verdict_against_baseline_and_shipped_model(tmp_path):
    out = tmp_path / "m.onnx"
    r = run_cli("train", *TINY, "--steps", "30", "--out", str(out), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "8-bin smoothing" in r.stderr and "shipped default" in r.stderr, r.stderr[-3000:]
    verdict = [ln for ln in r.stderr.splitlines() if ln.startswith("verdict:")]
    assert len(verdict) == 1 and ("better" in verdict[0]), r.stderr[-3000:]
    assert "NOT better" in verdict[0]  # 30 steps cannot beat the shipped model: the report says so plainly
    assert out.is_file()


def test_ctrl_c_saves_a_checkpoint_and_prints_the_resume_command(tmp_path):
    import torch

    out, ckpt = tmp_path / "m.onnx", tmp_path / "m.pt"
    p = subprocess.Popen([sys.executable, "-m", "realtime.cli", "train", *TINY, "--steps", "100000", "--out", str(out)],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t_end = time.monotonic() + 240
        lines = []
        while time.monotonic() < t_end:  # wait until training runs (the data line is printed before step 1)
            line = p.stderr.readline()
            lines.append(line)
            if line.startswith("data:") or not line:
                break
        time.sleep(3.0)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    err = "".join(lines) + err
    assert p.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert "checkpoint saved" in err and "resume with: audio-diffusion train" in err and "--resume" in err
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert state["step"] > 0 and f"(step {state['step']})" in err


def test_resume_with_another_latent_says_which_setting_differs(tmp_path):
    out = tmp_path / "m.onnx"
    r = run_cli("train", *TINY, "--epochs", "2", "--stop-after", "1", "--out", str(out), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    args = [a if a != "8" else "16" for a in TINY]  # --latent 16 instead of 8
    r = run_cli("train", *args, "--epochs", "2", "--resume", "--out", str(out), timeout=600)
    assert_one_line_error(r, "--latent 16 here, 8 in the checkpoint")
