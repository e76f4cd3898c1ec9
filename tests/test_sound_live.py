"""The sound stages through a real PortAudio stream on the JACK dummy server: a knob sweep 0 -> 1 -> 0 in
one second makes no click, and with RTPGHI phase and the level stage on, the stream's output is
bit-identical to offline processing of the very input it received."""

from __future__ import annotations

import subprocess
import threading
import time

import numpy as np
import pytest

from models import quality as Q
from realtime.engine.engine import Engine
from realtime.io.audio import LiveStream
from realtime.paths import resolve_model
from tests.test_live import connect_test_source

pytestmark = pytest.mark.jack
SR = 48_000


def _stream_sine(engine: Engine, seconds: float, during=None) -> tuple[np.ndarray, np.ndarray]:
    """Run ``engine`` live with jack_simple_client's sine as input; returns the recorded (input, output)."""
    src = subprocess.Popen(["jack_simple_client"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        live = LiveStream(engine, "system", "system", record_samples=int(SR * seconds))
        live.prepare()
        live.start()
        try:
            connect_test_source()
            if during is not None:
                during()
            time.sleep(seconds + 0.3)
        finally:
            live.stop()
    finally:
        src.terminate()
        src.wait()
    n = live.rec_len
    return live.rec_in[:n].copy(), live.rec_out[:n].copy()


def _sweep_once() -> tuple[np.ndarray, dict]:
    """One knob sweep 0 -> 1 -> 0 in one second over a sine through JACK: (click events, stats)."""
    engine = Engine([resolve_model("default")], block_size=128, seed=3)
    engine.params.set("amount", 0.0)

    def sweep() -> None:
        def run() -> None:
            time.sleep(0.6)
            t0 = time.monotonic()
            while (t := time.monotonic() - t0) < 1.0:  # 0 -> 1 -> 0 in one second, as a hand on a knob
                engine.params.set("amount", float(1.0 - abs(2.0 * t - 1.0)))
                time.sleep(0.005)
            engine.params.set("amount", 0.0)

        threading.Thread(target=run, daemon=True).start()

    x, y = _stream_sine(engine, 2.5, sweep)
    lat = engine.latency_samples
    assert np.abs(x).max() > 0.05  # the sine really arrived
    s = engine.stats.summary()
    clicks = Q.click_events(x[: x.size - lat], y[lat:], SR)
    print(f"\nsweep through JACK: clicks {clicks.tolist()}, limiter hits {s['limiter_hits']}, misses {s['misses']}, "
          f"stalls {s['stalls']}")
    return clicks, s


def test_knob_sweep_through_jack_makes_no_click(jack):
    # A stalled block (the thread off the CPU on a loaded VM) falls back to dry and back: at amount ~1 on a
    # sine that is a real jump of the high band, the machine's, not the sweep's. So a recording with both
    # stalls and clicks says nothing and is made again (up to 3 times); no clicks is a pass either way.
    for _ in range(3):
        clicks, s = _sweep_once()
        assert s["engine_misses"] == 0, s
        if len(clicks) == 0 or not s["stalls"]:
            break
    assert len(clicks) == 0, (clicks, s["stalls"])


@pytest.mark.parametrize(("phase", "lookahead"), [(1.0, 0), (2.0, 0), (2.0, 1)],
                         ids=["pghi", "auto", "auto-lookahead"])
def test_pghi_and_level_stream_is_bit_identical_to_offline(jack, phase, lookahead):
    from realtime.io.offline import process_signal

    knobs = {"amount": 0.7, "phase": phase, "level": 1.0}
    engine = Engine([resolve_model("default")], block_size=128, seed=11, deadline_share=float("inf"),
                    lookahead=lookahead)
    engine.params.apply(knobs)
    x, y_live = _stream_sine(engine, 2.0)
    assert np.abs(x).max() > 0.05
    offline = Engine([resolve_model("default")], block_size=128, seed=11, deadline_share=float("inf"),
                     lookahead=lookahead)
    offline.params.apply(knobs)
    offline.warmup()
    np.testing.assert_array_equal(process_signal(offline, x), y_live)
