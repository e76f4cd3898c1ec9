"""The CI soak: 60 s of the live engine with the panel, knob sweeps and hot swaps, on the real-time JACK
dummy server, run as the user runs it (``python -m realtime.tools.soak``, its own process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.jack]


#: Late blocks the RT probe blames on the machine above which a soak run is taken as run on an overloaded VM
#: (an idle 2-core VM here: 0-2 in 60 s; a CI run whose neighbours took the CPUs: dozens, with 2-3 ms stalls).
OVERLOADED_LATE_BLOCKS = 10


def _soak(tmp_path: Path, attempt: int) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / f"soak{attempt}.json"
    r = subprocess.run([sys.executable, "-m", "realtime.tools.soak", "--seconds", "60", "--swap-every", "10",
                        "--json", str(out), "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    print("\n" + r.stdout)
    return r, json.loads(out.read_text())


def test_soak_60s_with_gui_and_swaps(jack, tmp_path):
    r, res = _soak(tmp_path, 1)
    if r.returncode != 0 and res["late_blocks"]["machine"] > OVERLOADED_LATE_BLOCKS:
        # The machine, not the engine, was late throughout (its neighbours took the CPUs): that run cannot
        # tell a swap's cost from the VM's, so it is run once more and the assertions hold for that run.
        print(f"soak: {res['late_blocks']['machine']} late blocks the probe blames on the machine; running again")
        r, res = _soak(tmp_path, 2)
    assert res["gui"].startswith("MainWindow"), res["gui"]  # the panel really ran, offscreen
    assert res["server"].startswith(jack.name)  # the session's server, not a second one
    # Counts and memory, not timings.
    assert res["swaps_requested"] >= 5 and res["swaps_completed"] == res["swaps_requested"], res["swap_errors"]
    # Paced and never stopped; the dummy driver runs a little slow when the VM is loaded (not the engine's doing).
    assert 0.5 * res["expected_callbacks"] < res["callbacks"] <= 1.02 * res["expected_callbacks"]
    assert res["model_errors"] == 0
    # Engine-caused misses: none that coincides with a swap, and none that neither the RT probe (a stolen
    # vCPU) nor the engine's own thread-CPU test (its thread was off the CPU) explains.
    assert res["unexplained_misses"] == 0 and res["misses_by_cause"]["swap"] == 0, res["late_block_list"]
    assert res["rss_growth_mb"] < 5.0, res["rss_series_mb"]  # the floor of the swap saw-tooth
    assert res["knob_writes"] > 60 * 100 * 9  # the sweeper kept all nine knobs moving
    assert not res["errors"], res["errors"]
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
