"""The benchmark's correctness claims (measured latency, zero jitter) and its report shape, on a reduced run.

Timings are never asserted: only what must hold on any machine.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from realtime.config import WINDOW_MODES
from realtime.tools import bench


@pytest.mark.parametrize("window", WINDOW_MODES)
def test_measured_impulse_latency_equals_latency_samples(tp_model, window):
    for mix in (0.0, 1.0):
        e = bench.make_engine(tp_model, block_size=128, window=window, mix=mix)
        for pos in (4096, 4096 + 37, 4096 + 101):
            assert bench._impulse_delay(e, pos, pos + 4096) == e.latency_samples, (window, mix, pos)
    assert e.latency_samples == {"sqrt_hann": 384, "low_latency": 128}[window]


def test_chirp_cross_correlation_finds_the_latency(tp_model):
    rows = bench.measure_latency(tp_model)
    assert len(rows) == 2 * len(WINDOW_MODES)
    assert all(r["match"] for r in rows), rows


def test_jitter_is_exactly_zero_over_random_block_sequences(tp_model):
    j = bench.measure_jitter(tp_model, trials=12, seed=3, length=8192)
    for row in j["rows"]:
        assert row["spread_samples"] == 0, row
        assert row["all_equal_latency"], row
        assert row["latency_samples"] == {"sqrt_hann": 511, "low_latency": 255}[row["window"]]
    assert j["wet_output_max_abs_diff_across_block_sequences"] < 1e-5


def test_baseline_outputs_match_the_engine(tp_model):
    b = bench.measure_baselines(tp_model, seconds=0.2, rounds=2)
    assert b["b_numpy_ort"]["max_abs_diff_vs_a"] < 1e-4
    if "c_torch_eager" in b:  # torch is optional
        assert b["c_torch_eager"]["max_abs_diff_vs_a"] < 1e-4
        assert b["torch_vs_onnx_max_abs_diff"] < 1e-4
        assert b["ratio_c_over_a_total"] > 0


@pytest.mark.slow  # several seconds of real CLI subprocesses
def test_quick_report_has_every_section(tp_model, tmp_path):
    opts = bench.Options.quick_preset(model=tp_model, block_seconds=0.1, block_sizes=(64, 128), rounds=2,
                                      stage_calls=50, offline_seconds=0.2, offline_large_block=1024,
                                      baseline_seconds=0.1, jitter_trials=3, quality_seconds=0.5,
                                      skip=frozenset({"startup", "cli_startup", "device"}))
    r = bench.run_benchmark(opts, workdir=tmp_path)
    assert set(bench.SECTIONS) <= set(r)
    assert r["startup"] == {"skipped": "not requested (--skip)"}
    assert [x["block_size"] for x in r["block_times"]] == [64, 128]
    assert all({"p50_us", "p99_us", "p999_us", "max_us", "p99_pct"} <= set(x) for x in r["block_times"])
    assert {x["hop"] for x in r["low_latency"]["rows"]} == {64, 128}
    assert all(x["match"] for x in r["low_latency"]["rows"])
    assert np.isfinite(r["quality"]["low_latency_minus_sqrt_hann_db"])
    assert len(r["published"]) >= 6 and all(x["source"] for x in r["published"])
    assert r["targets"]
    text = bench.format_report(r)
    assert "algorithmic latency" in text and "published figures" in text
    paths = bench.write_report(r, tmp_path / "out")
    assert json.loads(paths[0].read_text())["meta"]["model"] == str(tp_model)
    assert 0 < paths[1].stat().st_size < 300_000


def test_cli_rejects_unknown_sections(capsys):
    assert bench.main(["--skip", "nonsense"]) == 2
    assert "unknown section" in capsys.readouterr().err


@pytest.mark.jack
def test_device_section_sees_every_server_and_stops_them(tp_model):
    """Section 6 starts one jackd per period in one process: each must be seen by PortAudio (a registry
    wiped under this process's libjack once hid every server after the first) and none may be left."""
    import os
    import subprocess
    import sys

    code = ("import json, sys; from realtime.tools import bench; "
            "print(json.dumps(bench.measure_device(sys.argv[1], (64, 128), 0.5)))")
    r = subprocess.run([sys.executable, "-c", code, str(tp_model)], capture_output=True, text=True, timeout=180,
                       cwd=bench.ROOT)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    rows = res["rows"]
    assert [x["period"] for x in rows] == [64, 128] and all("skipped" not in x for x in rows), rows
    assert all(x["callbacks"] > 0 for x in rows), rows
    assert all(0 < x["hot_p50_us"] <= x["hot_p99_us"] and 0 < x["after_sleep_p50_us"] for x in rows), rows
    assert "after sleep" in bench.format_report({"meta": bench.machine_info(tp_model, "test"), "device": res})
    leaked = []
    for cmd in os.listdir("/proc"):
        try:
            with open(f"/proc/{cmd}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"jackd") and any(b"adh-bench-" in a for a in argv):
            leaked.append(argv)
    assert not leaked, leaked
