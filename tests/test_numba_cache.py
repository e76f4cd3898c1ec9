"""numba's on-disk cache: a second process loads every DSP kernel instead of compiling it.

Checked through dispatcher statistics (cache hits/misses), never through timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import json
import numba
import realtime.dsp.ringbuffer as rb
import realtime.dsp.stft as st
st.warmup()
stats = {}
for mod in (rb, st):
    for name, fn in vars(mod).items():
        if isinstance(fn, numba.core.registry.CPUDispatcher) and fn.__module__ == mod.__name__:
            s = fn.stats
            stats[mod.__name__ + "." + name] = [sum(s.cache_hits.values()), sum(s.cache_misses.values())]
print(json.dumps(stats))
"""


def _probe(cache_dir: Path) -> dict[str, list[int]]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), PYTHONPATH=str(ROOT))
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # several seconds of real CLI subprocesses
def test_second_process_compiles_nothing(tmp_path: Path) -> None:
    first = _probe(tmp_path)  # fresh cache directory: everything compiles
    assert first["realtime.dsp.stft.process_kernel"][1] >= 1
    second = _probe(tmp_path)
    used = {name: hm for name, hm in second.items() if sum(hm)}
    for name in ("process_kernel", "analyze_kernel", "synthesize_kernel", "_stft_kernel", "_istft_kernel"):
        assert used[f"realtime.dsp.stft.{name}"][0] >= 1, name
    misses = {name: hm[1] for name, hm in used.items() if hm[1]}
    assert not misses, f"recompiled in the second process: {misses}"


_PROBE_CROSS = """
import json
import numpy as np
import realtime.dsp.level as L
import realtime.dsp.ringbuffer as rb
buf, state = rb.make_ring(1024)
out = np.zeros(256, np.float32)
L.ratio_samples(np.ones(2), 2, 128, buf, state, np.zeros(128, np.float32), out)
s = L.ratio_samples.stats
print(json.dumps([sum(s.cache_hits.values()), sum(s.cache_misses.values())]))
"""


@pytest.mark.slow  # three subprocesses that compile
def test_an_edit_to_a_called_kernels_file_recompiles_its_callers(tmp_path: Path) -> None:
    """``level.ratio_samples`` compiles the ring buffer's kernels (another file) into its own code; numba
    alone stamps it with level.py's hash only, so an edit to ringbuffer.py would leave the old code
    cached. realtime.jitcache stamps it with the whole kernel set: the edit recompiles it."""
    import shutil

    pkg = tmp_path / "src"
    shutil.copytree(ROOT / "realtime", pkg / "realtime", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(pkg))
    env.pop("NUMBA_DISABLE_JIT", None)

    def probe() -> list[int]:
        out = subprocess.run([sys.executable, "-c", _PROBE_CROSS], env=env, cwd=pkg, check=True,
                             capture_output=True, text=True, timeout=300)
        return json.loads(out.stdout.strip().splitlines()[-1])

    assert probe()[1] >= 1   # compiled
    assert probe() == [1, 0]  # loaded from the cache
    ring = pkg / "realtime" / "dsp" / "ringbuffer.py"
    ring.write_text(ring.read_text() + "\n# an edit in the callee's file only\n")
    assert probe()[1] >= 1, "a stale ratio_samples was loaded after its callee's file changed"
