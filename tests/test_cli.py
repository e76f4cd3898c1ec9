"""The command line as a user runs it: one-line errors with exit code 2, offline processing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "realtime.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def assert_one_line_error(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.slow  # several seconds of real CLI subprocesses
def test_process_is_bit_identical_and_aligned(tmp_path, tp_model):
    x = (np.random.default_rng(0).standard_normal(48000) * 0.1).astype(np.float32)  # peaks below the limiter
    src = tmp_path / "in.wav"
    sf.write(src, x, 48000, subtype="FLOAT")
    outs = []
    for i in range(2):
        dst = tmp_path / f"out{i}.wav"
        r = run_cli("process", str(src), str(dst), "--model", str(tp_model), "--amount", "0.7", "--seed", "4")
        assert r.returncode == 0, r.stderr
        assert "latency 384 samples (8.00 ms)" in r.stdout
        outs.append(sf.read(dst, dtype="float32")[0])
    np.testing.assert_array_equal(outs[0], outs[1])
    # Choice knobs take their names; one frame of phase look-ahead adds one hop of latency.
    r = run_cli("process", str(src), str(tmp_path / "ahead.wav"), "--model", str(tp_model), "--phase", "auto",
                "--lookahead", "1")
    assert r.returncode == 0, r.stderr
    assert "latency 512 samples (10.67 ms)" in r.stdout
    dst = tmp_path / "dry.wav"
    r = run_cli("process", str(src), str(dst), "--model", str(tp_model), "--mix", "0", "--align", "--quiet")
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(sf.read(dst, dtype="float32")[0], x)

@pytest.mark.slow  # several seconds of real CLI subprocesses
def test_process_default_block_matches_the_live_block(tmp_path):
    """Files are processed in 8192-sample blocks (fast); the result equals 128-sample blocks (the live
    stream's) to float rounding, and ``--blocksize 128`` equals them bit for bit."""
    from realtime.engine.engine import Engine
    from realtime.io.offline import process_signal
    from realtime.paths import resolve_model

    x = (np.random.default_rng(1).standard_normal(3 * 48000) * 0.1).astype(np.float32)
    src = tmp_path / "in.wav"
    sf.write(src, x, 48000, subtype="FLOAT")
    got = {}
    for name, extra in (("default", ()), ("live", ("--blocksize", "128"))):
        dst = tmp_path / f"{name}.wav"
        r = run_cli("process", str(src), str(dst), "--amount", "0.4", "--quiet", *extra)
        assert r.returncode == 0, r.stderr
        got[name] = sf.read(dst, dtype="float32")[0]
    engine = Engine([resolve_model("default")], block_size=128, deadline_share=float("inf"))
    engine.params.set("amount", 0.4)
    engine.params.set("noise_rate", 2.0)
    engine.reset()
    np.testing.assert_array_equal(got["live"], process_signal(engine, x))
    assert np.abs(got["default"]).max() > 0.01
    np.testing.assert_allclose(got["default"], got["live"], rtol=0, atol=2e-6)



def test_process_resamples_other_rates_and_back(tmp_path, tp_model):
    """The engine runs at the model's 48 kHz; the file comes back at the input's 44.1 kHz and length."""
    src = tmp_path / "in44.wav"
    sf.write(src, np.zeros(44100, np.float32), 44100)
    r = run_cli("process", str(src), str(tmp_path / "o.wav"), "--model", str(tp_model), "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""  # --quiet prints nothing but errors
    data, sr = sf.read(tmp_path / "o.wav")
    assert sr == 44100 and len(data) == 44100


@pytest.mark.slow  # several seconds of real CLI subprocesses
def test_user_errors_are_one_line(tmp_path, tp_model):
    assert_one_line_error(run_cli("process", str(tmp_path / "missing.wav"), str(tmp_path / "o.wav"),
                                  "--model", str(tp_model)), "missing.wav", "no such file")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF nonsense")
    assert_one_line_error(run_cli("process", str(garbage), str(tmp_path / "o.wav"), "--model", str(tp_model)),
                          "garbage.wav")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x01garbage" * 10)
    assert_one_line_error(run_cli("process", str(garbage), str(tmp_path / "o.wav"), "--model", str(bad)),
                          "bad.onnx")
    r = run_cli("info", str(bad))
    assert r.returncode == 1 and "contract check: ERROR" in r.stdout and "Traceback" not in r.stderr
    assert_one_line_error(run_cli("info", str(tmp_path / "missing.onnx")), "missing.onnx", "not found")


def test_info_reports_contract_and_timing(tp_model):
    r = run_cli("info", str(tp_model))
    assert r.returncode == 0, r.stderr
    assert "contract check: OK" in r.stdout and "median" in r.stdout


def test_live_cli_runs_on_the_test_server(jack, tp_model):
    r = run_cli("live", "--model", str(tp_model), "--input", "system", "--output", "system", "--seconds", "2",
                "--quiet")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["callbacks"] > 0.5 * 2 * 48000 / 128  # it played (a loaded VM paces JACK's dummy slower)
    assert summary["engine_misses"] == 0, summary  # stalls (thread off the CPU) are the machine's


def test_live_keep_cpu_awake_holds_the_request_while_running(jack, tp_model):
    """``--keep-cpu-awake`` holds the kernel's cpu_dma_latency request at 0 for exactly as long as the
    stream runs (as root); without write access it is a one-line error before any audio starts."""
    import time

    from realtime.io.cpuwake import PM_QOS_PATH, available, current_request_us

    args = ("live", "--model", str(tp_model), "--input", "system", "--output", "system", "--seconds", "3",
            "--quiet", "--keep-cpu-awake")
    if not available():
        assert_one_line_error(run_cli(*args), PM_QOS_PATH)
        return
    before = current_request_us()
    assert before is not None and before > 0
    p = subprocess.Popen([sys.executable, "-m", "realtime.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    seen = []
    while p.poll() is None:
        seen.append(current_request_us())
        time.sleep(0.05)
    out, err = p.communicate()
    assert p.returncode == 0, err
    assert 0 in seen, seen[:20]
    assert current_request_us() == before  # released at exit
    assert json.loads(out.strip().splitlines()[-1])["callbacks"] > 0


def test_cpu_awake_errors_are_one_line(tmp_path):
    import pytest

    from realtime.io.cpuwake import CpuAwake, CpuWakeError, available

    missing = tmp_path / "no_such_qos"
    with pytest.raises(CpuWakeError) as exc:
        CpuAwake(path=str(missing))
    assert str(missing) in str(exc.value) and "\n" not in str(exc.value)
    assert not available(path=str(missing))


@pytest.mark.slow  # several seconds of real CLI subprocesses
def test_stereo_channels_run_in_parallel_and_equal_mono_processing(tmp_path, tp_model):
    """Each channel has its own engine (channels run in parallel threads): the stereo result equals each
    channel processed alone, bit for bit."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((48000, 2)) * 0.1).astype(np.float32)
    src = tmp_path / "st.wav"
    sf.write(src, x, 48000, subtype="FLOAT")
    r = run_cli("process", str(src), str(tmp_path / "st-out.wav"), "--model", str(tp_model), "--amount", "0.5",
                "--quiet")
    assert r.returncode == 0, r.stderr
    stereo = sf.read(tmp_path / "st-out.wav", dtype="float32")[0]
    for ch in range(2):
        mono = tmp_path / f"m{ch}.wav"
        sf.write(mono, x[:, ch], 48000, subtype="FLOAT")
        r = run_cli("process", str(mono), str(tmp_path / f"m{ch}-out.wav"), "--model", str(tp_model),
                    "--amount", "0.5", "--quiet")
        assert r.returncode == 0, r.stderr
        np.testing.assert_array_equal(stereo[:, ch], sf.read(tmp_path / f"m{ch}-out.wav", dtype="float32")[0])
