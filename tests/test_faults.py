"""Faults on a running stage setup: real ONNX models that fail at run time, a vanished audio server, a
device at the wrong rate.

The model faults run the engine as the panel does (:class:`~realtime.io.host.ProcessHost`, its own process)
on the session's real-time JACK dummy server, with a real JACK client (``jack_simple_client``, a 240 Hz
sine) patched into its input and another (``jack_rec``) recording what reaches the "speakers". Each
fault is switched on and off by the amount knob alone (the fault models misbehave only where
``amount > 0.5``), exactly as a performer would hit it.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
from onnx import helper

from realtime.io.host import HostError, ProcessHost
from realtime.tools.soak import SineSource, engine_ports, jack_connect
from tests.helpers_models import _base, _const, _reroute_output, _save, build_nan_fault, build_slow_fault

pytestmark = pytest.mark.jack

ROOT = Path(__file__).resolve().parents[1]
CEILING = 10.0 ** (-1.0 / 20.0)  # Engine default ceiling_db=-1
SINE_STEP = 2 * np.pi * 240 * 0.2 / 48_000  # the largest sample-to-sample step of the source sine


def build_raise_fault(path: str | Path, threshold: float = 0.5) -> Path:
    """The good model plus a ``Gather`` whose index is 0 normally and 2**20 when any ``amount > threshold``:
    onnxruntime itself then fails the run ("indices element out of data bounds"), a genuine run-time
    error inside the session, not a Python stand-in."""
    from realtime.engine.contract import INPUT_AMOUNT, INPUT_FEATURES, OUTPUT_FEATURES

    model: onnx.ModelProto = _base()
    thr = _const(model, "raise_threshold", np.array(threshold, np.float32))
    big = _const(model, "raise_big", np.array(1 << 20, np.int64))
    zero_i = _const(model, "raise_zero_i", np.array(0, np.int64))
    zero_f = _const(model, "raise_zero_f", np.array(0.0, np.float32))
    pre = _reroute_output(model, OUTPUT_FEATURES)
    model.graph.node.extend([
        helper.make_node("ReduceMax", [INPUT_AMOUNT], ["raise_amax"], keepdims=0),
        helper.make_node("Greater", ["raise_amax", thr], ["raise_on"]),
        helper.make_node("Where", ["raise_on", big, zero_i], ["raise_idx"]),
        helper.make_node("Gather", [INPUT_FEATURES, "raise_idx"], ["raise_row"], axis=0),
        # 0 * sum(row) ties the Gather into the output so the optimiser cannot drop it.
        helper.make_node("ReduceSum", ["raise_row"], ["raise_sum"], keepdims=0),
        helper.make_node("Mul", ["raise_sum", zero_f], ["raise_nothing"]),
        helper.make_node("Add", [pre, "raise_nothing"], [OUTPUT_FEATURES]),
    ])
    return _save(model, path)


def _slow_call_ms(path: Path) -> float:
    """Fastest of 7 faulty (amount 0.9) single-frame calls of a slow-fault model (the fastest is the
    machine's speed; slower ones only show what else was running)."""
    from realtime.engine.model import EffectModel

    m = EffectModel(path, max_frames=1)
    m.amount_in[:1] = 0.9
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        m.run_buffered(1)
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


@pytest.fixture(scope="module")
def fault_models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("faults")
    # The slow fault is sized on this machine to take ~6 ms a call: over twice the 2.67 ms block period,
    # far past the 2 ms deadline, the way a model too big for the chosen block size behaves.
    probe = build_slow_fault(d / "slow.onnx", iterations=1000)
    iterations = max(100, round(1000 * 6.0 / _slow_call_ms(probe)))
    return {"raise": build_raise_fault(d / "raise.onnx"), "nan": build_nan_fault(d / "nan.onnx"),
            "slow": build_slow_fault(d / "slow.onnx", iterations=iterations)}


def test_raise_fault_is_a_real_onnxruntime_error(fault_models):
    from realtime.engine.model import EffectModel

    m = EffectModel(fault_models["raise"], max_frames=4)  # loads: the probe stays at amount <= 0.5
    m.amount_in[:2] = 0.9
    with pytest.raises(Exception, match="out of data bounds|out of bounds"):
        m.run_buffered(2)
    m.amount_in[:2] = 0.2
    out, _ = m.run_buffered(2)
    assert np.isfinite(out).all()


@dataclass
class FaultRun:
    base: dict
    fault: dict
    recovered: dict
    after: dict
    last_error: str
    out: np.ndarray
    ref: np.ndarray


def _record(server: str, ports: list[str], path: Path, seconds: float) -> subprocess.Popen:
    env = dict(os.environ, JACK_DEFAULT_SERVER=server, JACK_NO_START_SERVER="1")
    return subprocess.Popen(["jack_rec", "-f", str(path), "-d", f"{seconds:g}", "-b", "32", *ports],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def run_fault(jack, model: Path, tmp_path: Path, fault_amount: float = 0.9, ok_amount: float = 0.0) -> FaultRun:
    """Baseline 1.2 s, fault 1.5 s, then the knob back below the threshold: 1.2 s to recover and a 1.5 s
    window that must be clean. The whole run is recorded from the engine's JACK output port."""
    if shutil.which("jack_rec") is None:
        pytest.skip("jack_rec is not installed")
    host = ProcessHost()
    src = SineSource(jack.name, name=f"sine{os.getpid()}{model.stem}").start()
    rec = None
    try:
        host.params.set("amount", ok_amount)
        host.start([str(model)], "system", "system")
        in_port, out_port = engine_ports(jack.name)
        jack_connect(src.port, in_port, jack.name)
        wav = tmp_path / f"{model.stem}.wav"
        rec = _record(jack.name, [out_port, src.port], wav, 6.0)
        time.sleep(1.2)
        base = host.stats.summary()
        host.params.set("amount", fault_amount)
        time.sleep(1.5)
        fault = host.stats.summary()
        last_error = host.describe()["last_error"]
        host.params.set("amount", ok_amount)
        time.sleep(1.2)
        recovered = host.stats.summary()
        time.sleep(1.5)
        after = host.stats.summary()
        assert rec.wait(10) == 0
        rec = None
        data, sr = sf.read(wav, dtype="float64", always_2d=True)
        assert sr == 48_000
    finally:
        if rec is not None:
            rec.kill()
        src.stop()
        host.close()
    return FaultRun(base, fault, recovered, after, last_error, data[:, 0], data[:, 1])


def graph_breaks(ref: np.ndarray, period: int = 200) -> np.ndarray:
    """Sample positions where the recorded source sine stops repeating exactly (its table is one 240 Hz
    period, 200 samples): a JACK cycle was dropped or repeated for the whole graph (a server xrun), which
    the recorder sees too. Around those, the recording says nothing about the engine."""
    return np.flatnonzero(np.abs(ref[period:] - ref[:-period]) > 1e-4) + period


SKIP = 4800  # the first 100 ms of a recording: latency and patching


def broken_mask(run: FaultRun, latency: int = 384) -> np.ndarray:
    """True where the recording says nothing about the engine: the start, and around graph-wide breaks
    (the engine hears a broken input ``latency`` samples later)."""
    mask = np.zeros(len(run.out) + 1, bool)
    mask[:SKIP] = True
    for b in graph_breaks(run.ref):
        mask[max(0, b - 456): b + latency + 256] = True
    return mask


def run_conclusive(jack, model: Path, tmp_path: Path, attempts: int = 3) -> FaultRun:
    """:func:`run_fault`, run again (up to ``attempts`` times in all) while the JACK graph itself broke over
    half of the recording: on a VM whose neighbours take the CPUs, the dummy server drops whole cycles for
    every client (seen in CI: 131 server xruns in 1.2 s with the 100 us good model), and such a recording
    says nothing about the engine either way. The assertions are unchanged and run on a conclusive
    recording only; if none is, the test fails saying so."""
    for i in range(attempts):
        run = run_fault(jack, model, tmp_path)
        clean = float((~broken_mask(run)).mean())
        if clean > 0.5:
            return run
        print(f"\n{model.name}: attempt {i + 1}: the JACK graph broke over {1 - clean:.0%} of the recording "
              f"(server xruns {run.after['xruns']}); running it again")
    pytest.fail(f"the JACK graph broke too often in {attempts} runs for the recording to say anything")


def assert_continuous(run: FaultRun) -> int:
    """The recorded output: finite, under the limiter ceiling everywhere; and away from graph-wide
    breaks, never silent (10 ms windows above -40 dB re the input) and without a step larger than the
    sine's own (x4). Returns the number of graph-wide break events."""
    y, ref = run.out, run.ref
    assert np.isfinite(y).all()
    assert np.abs(y).max() <= CEILING + 1e-6, np.abs(y).max()
    breaks = graph_breaks(ref)
    mask = broken_mask(run)
    assert (~mask).mean() > 0.5, "the JACK graph broke too often for the recording to say anything"
    steps = np.abs(np.diff(y))
    steps[mask[: len(steps)]] = 0.0
    worst = int(np.argmax(steps))
    assert steps[worst] < 4 * SINE_STEP, f"step {steps[worst]:.4f} at {worst / 48_000:.3f} s (sine {SINE_STEP:.4f})"
    win = 480
    nwin = len(y) // win
    rms = np.sqrt(np.mean(y[: nwin * win].reshape(nwin, win) ** 2, axis=1))
    clean = ~mask[: nwin * win].reshape(nwin, win).any(axis=1)
    ref_rms = float(np.sqrt(np.mean(ref[SKIP:] ** 2)))
    low = np.flatnonzero(clean & (rms < 0.01 * ref_rms))
    assert low.size == 0, f"silent 10 ms windows at {low[:5] * win / 48_000} s"
    return int(np.sum(np.diff(breaks) > 256) + (breaks.size > 0))


def assert_counted_and_recovered(run: FaultRun, errors: bool) -> None:
    # Engine misses only: a block late because the VM took the CPU away is a stall, not the engine's.
    assert run.base["engine_misses"] == 0, run.base
    assert run.fault["misses"] > 50, run.fault  # most blocks fall back while the fault lasts
    if errors:
        assert run.fault["model_errors"] > 0
    # Recovered: with the knob back, the back-off (<= 256 blocks) ends and the model is used again.
    assert run.after["engine_misses"] == run.recovered["engine_misses"], (run.recovered, run.after)
    assert run.after["model_errors"] == run.recovered["model_errors"]
    assert run.after["callbacks"] - run.recovered["callbacks"] > 0.5 * 1.5 * 48_000 / 128  # kept running


def test_model_raising_in_onnxruntime_falls_back_and_recovers(jack, fault_models, tmp_path):
    run = run_conclusive(jack, fault_models["raise"], tmp_path)
    assert "raise.onnx" in run.last_error and "bounds" in run.last_error, run.last_error
    assert_counted_and_recovered(run, errors=True)
    assert_continuous(run)


def test_model_returning_nan_falls_back_and_recovers(jack, fault_models, tmp_path):
    run = run_conclusive(jack, fault_models["nan"], tmp_path)
    assert "nan.onnx: non-finite output" in run.last_error, run.last_error
    assert_counted_and_recovered(run, errors=True)
    assert_continuous(run)


def test_watchdog_stops_a_call_at_its_deadline(fault_models):
    from realtime.engine.model import EffectModel
    from realtime.engine.watchdog import RunWatchdog

    m = EffectModel(fault_models["slow"], max_frames=1)
    m.amount_in[:1] = 0.9
    full = _slow_call_ms(fault_models["slow"])
    wd = RunWatchdog()
    try:
        t0 = time.perf_counter()
        wd.arm(m.run_options, t0 + 0.25 * full / 1e3)
        with pytest.raises(Exception, match="Loop"):  # onnxruntime's error for a terminated run
            m.run_buffered(1, watched=True)
        stopped_ms = 1e3 * (time.perf_counter() - t0)
        assert wd.disarm() and wd.fired == 1
        assert stopped_ms < 0.6 * full, (stopped_ms, full)  # a ratio within one run, not a timing target
        # The flag is cleared for the next call, which runs to the end when its deadline is generous.
        wd.arm(m.run_options, time.perf_counter() + 10.0)
        out, _ = m.run_buffered(1, watched=True)
        assert not wd.disarm() and np.isfinite(out).all()
        # An unwatched call does not carry the options at all (passing any RunOptions costs ~30 us a call).
        m.run_options.terminate = True
        out, _ = m.run_buffered(1)
        assert np.isfinite(out).all()
        m.run_options.terminate = False
    finally:
        wd.close()
    assert not wd._thread.is_alive()


def test_model_slower_than_the_deadline_falls_back_and_recovers(jack, fault_models, tmp_path):
    """A model call (6 ms, over two block periods) that runs past the deadline: the guard discards its
    output and backs off (1, 2, then 8, 16, ... 256 blocks); from its second late call on, the watchdog
    stops the call itself before the period ends, so the JACK cycle is not held up; every other block
    plays the dry signal."""
    run = run_conclusive(jack, fault_models["slow"], tmp_path)
    assert_counted_and_recovered(run, errors=False)
    assert run.fault["model_errors"] == 0  # late, not wrong: only the deadline guard speaks
    assert "stopped at the deadline" in run.last_error, run.last_error
    events = assert_continuous(run)
    retries = 12  # slow calls in 1.5 s of fault + the first back-off after it, with margin
    assert run.fault["xruns"] - run.base["xruns"] <= 3 * retries, (run.base, run.fault)
    print(f"\nslow model: {run.fault['xruns'] - run.base['xruns']} xruns during 1.5 s of fault, "
          f"{events} graph-wide breaks in the recording, block max {run.fault['block_us_max']:.0f} us")


# -- the audio server vanishes under a running `audio-diffusion live` ----------------------------------


class DummyJack:
    """A jackd the test owns, started without touching PortAudio in this process: killing a server
    under this process's PortAudio would abort pytest in Pa_Terminate (see realtime/tools/jackserver.py)."""

    def __init__(self, name: str, log: Path) -> None:
        self.name, self.log = name, log
        self.proc: subprocess.Popen | None = None
        self.env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1",
                        JACK_NO_AUDIO_RESERVATION="1")

    def start(self) -> DummyJack:
        from realtime.tools.jackserver import clean_stale_registry

        clean_stale_registry()
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(["jackd", "-n", self.name, "-d", "dummy", "-r", "48000", "-p", "128"],
                                         stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            r = subprocess.run(["jack_wait", "-c", "-s", self.name], capture_output=True, text=True, env=self.env)
            if r.stdout.strip() == "running":
                return self
            assert self.proc.poll() is None, self.log.read_text()[-500:]
            time.sleep(0.1)
        raise RuntimeError("jackd did not come up")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: the server (or a USB interface) is simply gone
            self.proc.wait(5)
        self.proc = None


def _lines(stream, q: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        q.put((time.monotonic(), line.rstrip("\n")))
    q.put((time.monotonic(), None))


def _wait_line(q: queue.Queue, seen: list[str], text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, line = q.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None:
            return False
        seen.append(line)
        if text in line:
            return True
    return False


def test_audio_server_vanishes_and_comes_back(tp_model, tmp_path):
    server = DummyJack(f"adh-vanish-{os.getpid()}", tmp_path / "jackd.log").start()
    cmd = [sys.executable, "-m", "realtime.cli", "live", "--model", str(tp_model), "--input", "system",
           "--output", "system", "--seconds", "12"]  # not --quiet: the test reads the status lines
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=server.env)
    q: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stderr, q), daemon=True).start()
    seen: list[str] = []
    try:
        assert _wait_line(q, seen, "live: 48000 Hz", 30), seen
        time.sleep(3.0)
        server.kill()
        assert _wait_line(q, seen, "audio device stopped responding", 5), seen
        time.sleep(1.0)
        server.start()  # same name: the device is back
        assert _wait_line(q, seen, "audio restarted", 10), seen
        out, _ = proc.communicate(timeout=30)
        while not q.empty():
            line = q.get()[1]
            if line is not None:
                seen.append(line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.kill()
    assert proc.returncode == 0, seen
    assert "Traceback" not in "\n".join(seen), seen
    assert sum("audio device stopped responding" in s for s in seen) == 1, seen
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["callbacks"] > 2 * 48_000 / 128  # it played again after the restart


def test_wrong_rate_model_on_48k_server_is_one_clear_line(jack, tmp_path):
    from export.thirdparty_example import build_thirdparty_model
    from realtime.config import StftConfig

    m44 = build_thirdparty_model(tmp_path / "m44.onnx", cfg=StftConfig(sample_rate=44100))
    r = subprocess.run([sys.executable, "-m", "realtime.cli", "live", "--model", str(m44), "--input", "system",
                        "--output", "system", "--seconds", "1", "--quiet"], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "cannot run at 44100 Hz" in lines[0] and "48000" in lines[0], lines[0]
    # And in a running host: the wrong-rate model cannot even be queued, the running stream plays on.
    host = ProcessHost()
    try:
        host.start([str(build_thirdparty_model(tmp_path / "m48.onnx"))], "system", "system")
        time.sleep(0.3)
        n = host.stats.summary()["callbacks"]
        with pytest.raises(HostError, match="44100"):
            host.load_model(str(m44))
        time.sleep(0.3)
        assert host.stats.summary()["callbacks"] > n + 50
        assert host.describe()["models"][0].endswith("m48.onnx")
    finally:
        host.close()
