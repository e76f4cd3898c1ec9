"""Engine hosts on the real JACK dummy server: in-process and in a child process with shared memory."""

from __future__ import annotations

import time

import pytest

from realtime.io.host import HostError, LocalHost, ProcessHost

pytestmark = pytest.mark.jack


@pytest.mark.parametrize("host_cls", [LocalHost, ProcessHost])
def test_host_runs_and_keeps_last_good_state(jack, tp_model, tmp_path, host_cls):
    host = host_cls()
    try:
        info = host.start([str(tp_model)], "system", "system")
        assert info["running"] and info["latency_samples"] == 384
        host.params.set("amount", 0.7)
        time.sleep(1.0)
        n1 = host.stats.summary()["callbacks"]
        assert n1 > 300
        bad = tmp_path / "bad.onnx"
        bad.write_bytes(b"not a model")
        with pytest.raises((HostError, Exception), match="bad.onnx"):
            host.load_model(str(bad))
        with pytest.raises((HostError, Exception), match="no input device"):
            host.start([str(tp_model)], "no-such-device", "system")
        time.sleep(0.5)
        s = host.stats.summary()
        assert s["callbacks"] > n1 + 100  # the previous stream kept running
        if host_cls is ProcessHost:
            # In-process, loading a model in the main thread holds the GIL inside onnxruntime's C++ for
            # tens of ms, so a LocalHost may miss a few blocks here; the engine's own process never does.
            assert s["engine_misses"] == 0, s
        assert host.describe()["running"]
        # A start-time setting: one frame of phase look-ahead adds one hop and survives a restart.
        info = host.start([str(tp_model)], "system", "system", lookahead=1)
        assert info["latency_samples"] == 384 + 128
        info = host.restart()
        assert info["latency_samples"] == 512 and info["running"]
    finally:
        host.close()


def test_process_host_skips_late_answers_and_reports_a_dead_child(jack, tp_model):
    host = ProcessHost()
    try:
        host.timeout = 0.01  # a fresh child's first start takes far longer (interpreter, imports, warm-up)
        with pytest.raises(HostError, match="did not answer 'start'"):
            host.start([str(tp_model)], "system", "system")
        host.timeout = 30.0
        mem = host.memory()  # the late answer to 'start' reaches the pipe first and must be skipped
        assert "rss_mb" in mem, mem
        assert host.describe()["running"]  # the timed-out start did happen in the child
    finally:
        host.close()
    host = ProcessHost()
    try:
        import threading

        threading.Timer(0.05, host._proc.kill).start()  # dies while serving its first command
        with pytest.raises(HostError) as info:
            host.start([str(tp_model)], "system", "system")
        msg = str(info.value)
        assert "\n" not in msg and "exited" in msg and "restart" in msg, msg
        with pytest.raises(HostError, match="has exited"):
            host.describe()
    finally:
        host.close()


def test_preloaded_models_swap_in_without_being_loaded_again(jack, tp_model, tmp_path):
    """Models named in ``preload`` are loaded before the stream starts (a missing one is skipped), and a
    later swap to one uses that very object: no onnxruntime session is created while the audio runs."""
    from export.thirdparty_example import build_thirdparty_model

    other = build_thirdparty_model(tmp_path / "other.onnx", seed=5)
    host = LocalHost()
    try:
        host.start([str(tp_model)], "system", "system", preload=[str(other), str(tmp_path / "missing.onnx")])
        engine = host._runner.live.engine
        ready = list(engine._cache.values())
        assert [m.path for m in ready] == [other]
        host.load_model(str(other))
        time.sleep(0.5)  # the 64-frame crossfade takes 171 ms
        assert engine.slots[0].model is ready[0]
        assert host.stats.summary()["swaps"] == 1
    finally:
        host.close()
