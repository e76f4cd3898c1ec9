"""The real panel (offscreen) over a real engine on the JACK dummy server, in its own process."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import mido
import pytest
from PyQt6.QtCore import QPoint, QPointF, Qt, QTimer
from PyQt6.QtGui import QImage, QWheelEvent
from PyQt6.QtWidgets import QApplication
from pythonosc.udp_client import SimpleUDPClient

from realtime.gui import app as gui_app
from realtime.gui import theme
from realtime.gui.window import MainWindow
from realtime.io.host import ProcessHost

pytestmark = pytest.mark.jack


def _open(host, model, **kw) -> MainWindow:
    win = MainWindow(host, models=[str(model)], input="system", output="system", osc_port=0, **kw)
    win.resize(1280, 800)
    win.show()
    assert win.start_engine(), win.error_text
    return win


@pytest.fixture(scope="module")
def panel(qapp, jack, tp_model):
    """One window and engine for the module (starting an engine process takes a few seconds)."""
    theme.apply(qapp)
    host = ProcessHost()
    win = _open(host, tp_model)
    yield win
    win.shutdown()
    win.close()
    host.close()


@pytest.fixture
def fresh(panel):
    """The module's panel with default knobs, no MIDI mappings and no error shown."""
    panel.params.reset()
    panel.midi_map.set_bindings([])
    panel.midi_map.cancel_learn()
    panel.clear_error()
    panel.refresh()
    return panel


def _callbacks(win) -> int:
    return win.stats.summary()["callbacks"]


def test_turning_the_dial_changes_the_engine_parameter(fresh, qtbot):
    dial = fresh.knobs["amount"].dial
    dial.setFocus()
    qtbot.keyClick(dial, Qt.Key.Key_PageUp)  # +10 % of the travel
    assert fresh.host.params.get("amount") == pytest.approx(0.4)
    qtbot.keyClick(dial, Qt.Key.Key_Up)
    assert fresh.host.params.get("amount") == pytest.approx(0.41)
    wheel = QWheelEvent(QPointF(10, 10), QPointF(dial.mapToGlobal(QPoint(10, 10))), QPoint(0, 0), QPoint(0, -120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(dial, wheel)  # one notch down
    assert fresh.host.params.get("amount") < 0.41
    assert fresh.knobs["amount"].value_label.text().endswith("%")
    toggle = fresh.knobs["freeze"].button
    qtbot.mouseClick(toggle, Qt.MouseButton.LeftButton)
    assert fresh.host.params.get("freeze") == 1.0
    # The store is the engine's: in a ProcessHost it is shared memory the child reads each block.
    assert fresh.host.describe()["running"]


def test_store_changes_move_the_widgets_without_feedback(fresh, qtbot):
    fresh.params.set("mix", 0.123456789)
    fresh.params.set("noise_rate", 7.77, 0)
    qtbot.wait(100)  # a few timer ticks
    assert fresh.knobs["mix"].value_label.text() == "12 %"
    assert fresh.knobs["mix"].dial.value() == 123
    assert fresh.knobs["noise_rate"].value_label.text() == "7.77 Hz"
    # The widget's quantised position never wrote back into the store.
    assert fresh.params.get("mix") == 0.123456789 and fresh.params.get("noise_rate") == 7.77


def test_osc_message_over_loopback_moves_the_knob(fresh, qtbot):
    client = SimpleUDPClient("127.0.0.1", fresh.osc.port)
    client.send_message("/diffusion/amount", 0.8)
    client.send_message("/diffusion/output_gain", -6.0)
    client.send_message("/diffusion/mix", 7.0)  # out of range: ignored and counted
    knob = fresh.knobs["amount"]
    qtbot.waitUntil(lambda: knob.dial.value() == 800 and knob.value_label.text() == "80 %", timeout=3000)
    assert fresh.params.get("output_gain") == -6.0 and fresh.params.get("mix") == 1.0
    qtbot.waitUntil(lambda: "1 ignored" in fresh.osc_label.text(), timeout=2000)


def test_midi_learn_from_injected_messages(fresh, qtbot):
    assert fresh.midi_in.status.startswith(("MIDI: virtual input", "MIDI unavailable: "))
    fresh.learn("gate")
    qtbot.wait(60)
    assert "learn" in fresh.knobs["gate"].label.text()
    fresh.midi_in.inject(mido.Message("control_change", channel=0, control=21, value=127))
    qtbot.wait(60)
    assert fresh.params.get("gate") == -20.0
    assert "[CC21]" in fresh.knobs["gate"].label.text()


def test_preset_round_trip_is_exact(fresh, tmp_path):
    p = fresh.params
    p.set("amount", 0.7071067811865476)
    p.set("noise_rate", 0.333)
    p.set("bypass", 1.0)
    p.set("input_gain", -3.3)
    fresh.midi_map.learn("mix")
    fresh.midi_in.inject(mido.Message("control_change", channel=4, control=11, value=100))
    before, bindings, models = p.snapshot(), fresh.midi_map.bindings(), list(fresh.models)
    path = tmp_path / "preset.json"
    assert fresh.save_preset_file(path)
    p.reset()
    fresh.midi_map.set_bindings([])
    assert fresh.load_preset_file(path), fresh.error_text
    assert p.snapshot() == before
    assert fresh.midi_map.bindings() == bindings
    assert fresh.models == models


def test_bad_preset_is_rejected_and_changes_nothing(fresh, tmp_path, qtbot):
    fresh.params.set("amount", 0.42)
    fresh.midi_map.learn("mix")
    fresh.midi_in.inject(mido.Message("control_change", control=3, value=0))
    before, bindings = fresh.params.snapshot(), fresh.midi_map.bindings()
    good = {"params": {"amount": 0.9, "mix": 0.5}, "midi": [{"channel": 0, "cc": 5, "knob": "gate"}]}
    cases = {
        "range.json": ({**good, "params": {"amount": 0.9, "mix": 1.5}}, "outside 0.0..1.0"),
        "model.json": ({**good, "models": [str(tmp_path / "gone.onnx")]}, "model file not found"),
        "key.json": ({**good, "tempo": 120}, "unknown key"),
        "json.json": (None, "not valid JSON"),
    }
    for name, (data, expected) in cases.items():
        path = tmp_path / name
        path.write_text("{oops" if data is None else json.dumps(data))
        assert not fresh.load_preset_file(path)
        assert expected in fresh.error_text and "\n" not in fresh.error_text
        assert fresh.params.snapshot() == before and fresh.midi_map.bindings() == bindings
    assert fresh.banner.isVisible()


def test_corrupt_model_shows_error_and_previous_model_keeps_running(fresh, tmp_path, qtbot):
    models = list(fresh.models)
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"\x08\x07this is not an onnx model" * 10)
    n0 = _callbacks(fresh)
    assert not fresh.choose_model(str(bad))
    assert "corrupt.onnx" in fresh.error_text and "\n" not in fresh.error_text
    assert fresh.banner.isVisible()
    assert fresh.models == models and fresh.model_combo.currentData() == models[0]
    n1 = _callbacks(fresh)
    qtbot.wait(500)
    assert _callbacks(fresh) > n1 + 100 > n0  # the old model kept playing through the failed load
    assert fresh.host.describe()["models"] == models
    # A device that does not exist: same story.
    fresh.input_combo.addItem("no-such-device", "no-such-device")
    fresh.input_combo.setCurrentIndex(fresh.input_combo.count() - 1)
    fresh._devices_changed()
    assert "no input device matches 'no-such-device'" in fresh.error_text
    n2 = _callbacks(fresh)
    qtbot.wait(300)
    assert _callbacks(fresh) > n2 + 50
    fresh.input_combo.setCurrentIndex(fresh.input_combo.findData("system"))
    fresh.input = "system"


def _busy_gui(seconds: float) -> int:
    """Pure-Python work on the GUI thread, holding the GIL as a busy GUI would (no event processing)."""
    t_end, x = time.perf_counter() + seconds, 0
    while time.perf_counter() < t_end:
        for i in range(2000):
            x += i * i % 7
    return x


def _measure_busy(win, qtbot, seconds: float = 2.0) -> dict:
    qtbot.wait(300)  # let the stream settle after any start
    s0 = win.stats.summary()
    _busy_gui(seconds)
    s1 = win.stats.summary()
    # Engine-caused misses only: a block late because the machine took the CPU away (a stall, see
    # Engine) says nothing about the GUI, which runs in another process.
    return {"callbacks": s1["callbacks"] - s0["callbacks"],
            "misses": s1["engine_misses"] - s0["engine_misses"], "stalls": s1["stalls"] - s0["stalls"],
            "xruns": s1["xruns"] - s0["xruns"], "block_us_p99": s1["block_us_p99"],
            "block_us_max": s1["block_us_max"]}


def test_busy_gui_thread_causes_no_deadline_misses(fresh, qtbot):
    r = _measure_busy(fresh, qtbot)
    print(f"ProcessHost, GUI busy 2 s: {r}")
    assert r["callbacks"] > 0.5 * 2.0 * 48000 / 128  # the engine kept running (not a timing claim)
    assert r["misses"] == 0


def test_screenshot_script_renders_a_lively_panel(qapp, jack, tp_model, tmp_path):
    spec = importlib.util.spec_from_file_location("screenshot", Path(__file__).parent.parent / "scripts/screenshot.py")
    shot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shot)
    path = shot.take_screenshot(tmp_path / "panel.png", seconds=1.0, model=str(tp_model), jack=jack)
    img = QImage(str(path))
    assert (img.width(), img.height()) == (1280, 800)
    colours = {img.pixel(x, y) for x in range(0, 1280, 7) for y in range(0, 800, 7)}
    assert len(colours) > 200  # text, dials, meters and spectrograms, not a blank frame


def test_app_main_opens_the_panel_and_starts_the_engine(qapp, jack, tp_model):
    seen = {}
    before = set(QApplication.topLevelWidgets())

    deadline = time.monotonic() + 30

    def probe():
        try:  # always quit, or a failed probe would leave app.exec() waiting forever
            wins = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w not in before]
            if (not wins or not wins[0].running) and time.monotonic() < deadline:
                # the start runs on the panel's command thread while the window stays live: look again
                QTimer.singleShot(100, probe)
                return
            (win,) = wins
            seen.update(running=win.running, host=type(win.host).__name__, models=win.models)
        except Exception:
            QApplication.exit(0)
            raise
        QApplication.exit(0)  # not quit(): in Qt 6 that closes every window, the module's panel too

    QTimer.singleShot(300, probe)
    code = gui_app.main(["--model", str(tp_model), "--input", "system", "--output", "system", "--osc-port", "0",
                         "--no-midi"])
    assert code == 0
    assert seen["running"] and seen["host"] == "ProcessHost" and seen["models"] == [str(tp_model)]


def test_app_main_without_a_display_is_a_usage_error(monkeypatch, capsys):
    for var in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)
    assert gui_app.main(["--no-start"]) == 2
    assert "no display" in capsys.readouterr().err


def test_model_chain_slots_and_start_stop(fresh, tp_model, qtbot):
    assert not fresh.slot_combo.isVisibleTo(fresh)
    assert fresh.start_engine([str(tp_model), str(tp_model)]), fresh.error_text
    try:
        assert fresh.slot_combo.isVisibleTo(fresh) and fresh.slot_combo.count() == 2
        fresh.slot_combo.setCurrentIndex(1)
        dial = fresh.knobs["amount"].dial
        dial.setFocus()
        qtbot.keyClick(dial, Qt.Key.Key_PageUp)
        assert fresh.params.get("amount", 1) == pytest.approx(0.4) and fresh.params.get("amount", 0) == 0.3
        SimpleUDPClient("127.0.0.1", fresh.osc.port).send_message("/diffusion/slot/1/amount", 0.9)
        qtbot.waitUntil(lambda: fresh.knobs["amount"].value_label.text() == "90 %", timeout=3000)
        # Stop and start from the button.
        qtbot.mouseClick(fresh.start_button, Qt.MouseButton.LeftButton)
        assert not fresh.running and fresh.start_button.text() == "Start"
        n = _callbacks(fresh)
        qtbot.wait(200)
        assert _callbacks(fresh) == n
        qtbot.mouseClick(fresh.start_button, Qt.MouseButton.LeftButton)
        assert fresh.running and fresh.start_button.text() == "Stop"
        qtbot.waitUntil(lambda: _callbacks(fresh) > n + 50, timeout=3000)
    finally:
        fresh.slot_combo.setCurrentIndex(0)
        assert fresh.start_engine([str(tp_model)]), fresh.error_text


def test_window_stays_live_while_a_command_runs(fresh, tp_model, qtbot):
    """Start and model loads run on the panel's command thread: timers (meters, painting) keep firing,
    and a second command meanwhile is refused instead of re-entering the host."""
    ticks, second = [], []

    def tick():
        ticks.append(fresh.busy)
        if fresh.busy and not second:
            second.append(fresh.start_engine([str(tp_model)]))

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(5)
    try:
        assert fresh.start_engine([str(tp_model)]), fresh.error_text
        assert fresh.choose_model(str(tp_model)), fresh.error_text
    finally:
        timer.stop()
    assert sum(ticks) > 0, "no timer fired during the commands: the GUI thread was blocked"
    assert second == [False]
    assert fresh.running and not fresh.busy
