"""The live host must run where torch is not installed (torch is for training and export only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
sys.modules["torch"] = None  # any 'import torch' now raises ImportError, as on a machine without it
sys.modules["onnx"] = None   # the live host needs onnxruntime only
import numpy as np
import realtime.io.audio, realtime.cli, realtime.io.host, realtime.io.offline, realtime.gui.window
from realtime.engine.engine import Engine
from realtime.io.offline import process_signal
from realtime.paths import resolve_model
e = Engine([resolve_model("default")], deadline_share=float("inf"))
y = process_signal(e, np.random.default_rng(0).standard_normal(4800).astype(np.float32) * 0.1)
assert np.isfinite(y).all() and np.abs(y).max() > 0
print("ok")
"""


def test_live_host_runs_without_torch_or_onnx():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
