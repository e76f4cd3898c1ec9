"""A real PortAudio duplex stream through a real-time-paced JACK dummy server (no hardware)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from realtime.engine.engine import Engine
from realtime.io.audio import AudioDeviceError, LiveStream, find_device

pytestmark = pytest.mark.jack
#: JACK client names of our stream: its own name (maybe suffixed by JACK) or PortAudio's default.
ENGINE_CLIENTS = ("audio-diffusion", "PortAudio")


def test_live_stream_runs_in_real_time(jack, tp_model):
    engine = Engine([tp_model], block_size=128)
    engine.params.set("amount", 0.5)
    seconds = 5.0
    with LiveStream(engine, "system", "system") as live:
        t0 = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        s = engine.stats.summary()
        assert live.active
        out = live._out.copy()
    expected = elapsed * 48_000 / 128
    # Paced (not an unpaced device racing ahead) and running; JACK's dummy driver falls behind on a loaded VM,
    # so the lower bound only says the stream never stopped.
    assert 0.5 * expected < s["callbacks"] <= 1.05 * expected, (s["callbacks"], expected)
    assert s["engine_misses"] == 0, s  # a stall (thread off the CPU) is the machine's, not the engine's
    assert s["model_errors"] == 0
    assert np.isfinite(out).all() and np.isfinite(s["out_peak_db"])
    assert s["device_latency_ms"] > 0
    print(f"\nlive: {s['callbacks']} callbacks in {elapsed:.2f} s (expected {expected:.0f}), "
          f"block p50 {s['block_us_p50']:.0f} us, p99 {s['block_us_p99']:.0f} us, max {s['block_us_max']:.0f} us, "
          f"xruns {s['xruns']}, latency {s['total_latency_ms']:.2f} ms")


def test_hot_swap_while_running(jack, tp_model, tmp_path):
    from export.thirdparty_example import build_thirdparty_model

    other = build_thirdparty_model(tmp_path / "other.onnx", seed=5)
    engine = Engine([tp_model], block_size=128)
    with LiveStream(engine, "system", "system"):
        time.sleep(0.5)
        engine.swap_model(other)
        time.sleep(1.0)
        s = engine.stats.summary()
    assert s["swaps"] == 1
    assert s["engine_misses"] == 0, s
    assert engine.slots[0].model.info.path == other


def test_missing_device_and_wrong_rate_are_clear(jack, tp_model, tmp_path):
    with pytest.raises(AudioDeviceError, match="no input device matches 'nonexistent'"):
        find_device("nonexistent", "input")
    from export.thirdparty_example import build_thirdparty_model
    from realtime.config import StftConfig

    m44 = build_thirdparty_model(tmp_path / "m44.onnx", cfg=StftConfig(sample_rate=44100))
    engine = Engine([m44], block_size=128)
    with pytest.raises(AudioDeviceError, match="cannot run at 44100 Hz.*supports 48000"):
        LiveStream(engine, "system", "system").start()


def test_stream_output_is_bit_identical_to_offline(jack, tp_model):
    """Live input from a real JACK client (a sine generator), recorded as the callback saw it, processed
    offline with the same model, seed and block size, gives the very same output samples."""
    import subprocess

    from realtime.io.offline import process_signal

    src = subprocess.Popen(["jack_simple_client"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # No deadline guard here: a machine stall would make a block fall back, and this test is about
        # the stream carrying exactly the offline computation (the guard has its own tests).
        engine = Engine([tp_model], block_size=128, seed=11, deadline_share=float("inf"))
        engine.params.set("amount", 0.8)
        live = LiveStream(engine, "system", "system", record_samples=48_000 * 2)
        live.prepare()
        live.start()
        try:
            connect_test_source()
            time.sleep(2.5)
        finally:
            live.stop()
    finally:
        src.terminate()
        src.wait()
    n = live.rec_len
    assert n == 48_000 * 2 // 128 * 128
    x, y_live = live.rec_in[:n].copy(), live.rec_out[:n].copy()
    assert np.abs(x).max() > 0.05  # the sine really arrived
    assert engine.stats.summary()["misses"] == 0
    offline = Engine([tp_model], block_size=128, seed=11, deadline_share=float("inf"))
    offline.params.set("amount", 0.8)
    offline.warmup()
    np.testing.assert_array_equal(process_signal(offline, x), y_live)


def connect_test_source() -> None:
    """Patch ``jack_simple_client``'s output into our stream's input (retried: the ports appear a moment
    after the stream starts)."""
    import subprocess

    port, r = None, None
    for _ in range(50):
        port = _our_input_port()
        r = subprocess.run(["jack_connect", "jack_simple_client:output1", port or "?"], capture_output=True)
        if r.returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"could not connect the test source to {port}: {r.stderr.decode().strip()}")


def _our_input_port() -> str | None:
    """The PortAudio input port that JACK connected to system:capture_1 (PortAudio's client name
    gains a suffix each time PortAudio is re-initialised, so it cannot be hard-coded)."""
    import subprocess

    current = None
    for line in subprocess.run(["jack_lsp", "-c"], capture_output=True, text=True).stdout.splitlines():
        if not line.startswith(" "):
            current = line.strip()
        elif line.strip() == "system:capture_1" and current and current.startswith(ENGINE_CLIENTS):
            return current
    return None
