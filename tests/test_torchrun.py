"""`torchrun` (torch.distributed.run) with two CPU processes (gloo) trains and writes a model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]


def test_torchrun_two_processes_on_cpu(tmp_path):
    out = tmp_path / "ddp.onnx"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "export.pipeline", "--minutes", "0.2", "--steps", "6", "--batch", "64", "--latent", "4",
           "--hidden", "32,16", "--device", "cpu", "--no-progress", "--no-eval", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.exists() and out.stat().st_size > 1000
    assert "wrote" in proc.stderr
