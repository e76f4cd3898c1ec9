"""The performer's panel: knobs, device and model pickers, live meters and engine readouts.

The window talks to the engine three ways only: knob writes into the host's lock-free
:class:`~realtime.engine.params.Params`, reads of its :class:`~realtime.engine.stats.Stats` on a ~30 Hz timer,
and commands (start, stop, load a model) through the host, which raises one-line errors and keeps the last good state
running. MIDI and OSC write the same store; the timer moves the widgets to whatever the store holds.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QEventLoop, QMetaObject, Qt, QTimer
from PyQt6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QSizePolicy,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from realtime.engine.params import DIRECTION_DIMS, SPEC_BY_NAME, SPECS
from realtime.gui.knob import KnobControl, ToggleControl
from realtime.gui.meters import LatentBars, LevelMeter
from realtime.gui.midi import MidiInput, MidiMap
from realtime.gui.osc import OscServer
from realtime.gui.presets import PresetError, capture, load_preset, save_preset
from realtime.gui.spectrogram import Spectrograms
from realtime.paths import shipped_models

BLOCK_SIZES = (64, 128, 256, 512)
OPEN_ITEM = "Open…"
DEFAULT_DEVICE = "(default)"


def device_names(kind: str) -> list[str]:
    """Names of the PortAudio devices with ``kind`` ("input"/"output") channels; empty if PortAudio is absent."""
    try:
        import sounddevice as sd

        key = "max_input_channels" if kind == "input" else "max_output_channels"
        names = [d["name"] for d in sd.query_devices() if d[key] > 0]
    except Exception:  # noqa: BLE001 - no PortAudio: the host reports the real error on start
        return []
    return list(dict.fromkeys(names))


def _card(title: str | None = None) -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame()
    frame.setObjectName("card")
    lay = QVBoxLayout(frame)
    lay.setContentsMargins(12, 10, 12, 10)
    lay.setSpacing(6)
    if title:
        label = QLabel(title)
        label.setObjectName("section")
        lay.addWidget(label)
    return frame, lay


class MainWindow(QMainWindow):
    """The control panel over an engine ``host`` (:class:`~realtime.io.host.ProcessHost` or ``LocalHost``).

    Parameters
    ----------
    host : ProcessHost or LocalHost
        Owned by the caller (who closes it); the window only drives it.
    models : list of str
        The model chain to start with (paths or shipped names); defaults to the first shipped model.
    input, output : str, optional
        Device names (``None``: the default devices).
    block_size : int
        Engine block size.
    osc_port : int, optional
        Open an OSC server on 127.0.0.1 at this port (0 picks a free one); ``None`` disables OSC.
    midi : bool
        Try to open a virtual MIDI input port.
    refresh_hz : float
        Readout refresh rate.
    """

    def __init__(self, host, models: list[str] | None = None, input: str | None = None, output: str | None = None,
                 block_size: int = 128, osc_port: int | None = None, midi: bool = True,
                 refresh_hz: float = 30.0) -> None:
        super().__init__()
        self.host, self.params, self.stats = host, host.params, host.stats
        shipped = [str(p) for p in shipped_models()]
        self.models: list[str] = [str(m) for m in models] if models else shipped[:1]
        self.input, self.output, self.block_size = input, output, block_size
        self.running = False
        self.info: dict = {}
        self.latent_dim = 0
        self._last_callbacks = -1
        self._stalled = False
        # Host commands (start, model load, restart) take 0.5-2 s; they run on this worker so the window
        # keeps painting and its meters keep moving meanwhile (see _host_call).
        self._commands = ThreadPoolExecutor(max_workers=1, thread_name_prefix="host-command")
        self.busy = False
        self._last_progress = time.monotonic()
        self.midi_map = MidiMap(self.params)
        self.midi_in = MidiInput(self.midi_map)
        self.osc: OscServer | None = None
        self.setWindowTitle("Audio Diffusion Host")
        self._build()
        if midi:
            self.midi_in.open()
        else:
            self.midi_in.status = "MIDI off"
        if osc_port is not None:
            try:
                self.osc = OscServer(self.params, osc_port)
            except OSError as exc:
                self.show_error(str(exc))
        self._refresh_models()
        self.timer = QTimer(self)
        self.timer.setInterval(max(1, round(1000 / refresh_hz)))
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        self.refresh()

    # -- layout -----------------------------------------------------------------------------------------
    def _build(self) -> None:
        root = QWidget()
        outer = QVBoxLayout(root)
        outer.setContentsMargins(14, 12, 14, 8)
        outer.setSpacing(10)
        outer.addLayout(self._header())
        outer.addWidget(self._io_bar())
        self.banner = QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        self.banner.mousePressEvent = lambda _e: self.clear_error()
        outer.addWidget(self.banner)
        body = QHBoxLayout()
        body.setSpacing(10)
        body.addWidget(self._controls(), 0)
        body.addLayout(self._monitor(), 1)
        outer.addLayout(body, 1)
        self.setCentralWidget(root)
        sb = self.statusBar()
        self.midi_label, self.osc_label, self.host_label = QLabel(), QLabel(), QLabel()
        for w in (self.midi_label, self.osc_label, self.host_label):
            sb.addPermanentWidget(w)
        sb.showMessage("Right-click a knob for MIDI learn; double-click resets it.")

    def _header(self) -> QHBoxLayout:
        row = QHBoxLayout()
        titles = QVBoxLayout()
        titles.setSpacing(0)
        title = QLabel("AUDIO DIFFUSION")
        title.setObjectName("title")
        sub = QLabel("real-time latent diffusion effect")
        sub.setObjectName("subtitle")
        titles.addWidget(title)
        titles.addWidget(sub)
        row.addLayout(titles)
        row.addStretch(1)
        self.engine_label = QLabel()
        self.engine_label.setObjectName("subtitle")
        row.addWidget(self.engine_label)
        row.addSpacing(12)
        self.load_button = QPushButton("Load preset…")
        self.save_button = QPushButton("Save preset…")
        self.load_button.clicked.connect(self._ask_load_preset)
        self.save_button.clicked.connect(self._ask_save_preset)
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("start")
        self.start_button.clicked.connect(self._start_clicked)
        for b in (self.load_button, self.save_button, self.start_button):
            row.addWidget(b)
        return row

    def _io_bar(self) -> QFrame:
        frame, lay = _card()
        row = QHBoxLayout()
        lay.addLayout(row)

        def labelled(text: str, widget: QWidget, stretch: int = 0) -> None:
            label = QLabel(text)
            label.setObjectName("knobLabel")
            row.addWidget(label)
            row.addWidget(widget, stretch)
            row.addSpacing(10)

        self.model_combo = QComboBox()
        self.model_combo.setMinimumWidth(180)
        self.model_combo.activated.connect(self._model_activated)
        labelled("Model", self.model_combo, 2)
        self.slot_combo = QComboBox()
        self.slot_combo.currentIndexChanged.connect(self._slot_changed)
        self.slot_label = QLabel("Slot")
        self.slot_label.setObjectName("knobLabel")
        row.addWidget(self.slot_label)
        row.addWidget(self.slot_combo)
        row.addSpacing(10)
        self.input_combo, self.output_combo = QComboBox(), QComboBox()
        for combo, kind, current in ((self.input_combo, "input", self.input),
                                     (self.output_combo, "output", self.output)):
            combo.addItem(DEFAULT_DEVICE, None)
            for name in device_names(kind):
                combo.addItem(name, name)
            if current is not None and combo.findData(current) < 0:
                combo.addItem(current, current)
            combo.setCurrentIndex(max(0, combo.findData(current)))
            combo.setMinimumWidth(130)
            combo.activated.connect(self._devices_changed)
        labelled("Input", self.input_combo, 1)
        labelled("Output", self.output_combo, 1)
        self.block_combo = QComboBox()
        for n in BLOCK_SIZES:
            self.block_combo.addItem(f"{n} samples", n)
        if self.block_combo.findData(self.block_size) < 0:
            self.block_combo.addItem(f"{self.block_size} samples", self.block_size)
        self.block_combo.setCurrentIndex(self.block_combo.findData(self.block_size))
        self.block_combo.activated.connect(self._devices_changed)
        labelled("Block", self.block_combo)
        return frame

    def _controls(self) -> QFrame:
        frame, lay = _card("CONTROLS")
        frame.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        p = self.params
        self.knobs: dict[str, KnobControl | ToggleControl] = {
            "amount": KnobControl(p, "amount", diameter=160, big=True),
            "noise_rate": KnobControl(p, "noise_rate"),
            "mix": KnobControl(p, "mix"),
            "gate": KnobControl(p, "gate"),
            "input_gain": KnobControl(p, "input_gain"),
            "output_gain": KnobControl(p, "output_gain"),
            "level": KnobControl(p, "level"),
            "smooth": KnobControl(p, "smooth"),
            "phase": KnobControl(p, "phase"),
            "bypass": ToggleControl(p, "bypass"),
            "freeze": ToggleControl(p, "freeze"),
            "slot_bypass": ToggleControl(p, "slot_bypass"),
        }
        # Direction (contract-2 models with a learned prior; a model without the inputs ignores them).
        self.knobs["latent_mode"] = ToggleControl(p, "latent_mode", text="Noise mix (v1)")
        self.knobs["toward"] = KnobControl(p, "toward", diameter=34)
        for j in range(DIRECTION_DIMS):
            self.knobs[f"offset_{j + 1}"] = KnobControl(p, f"offset_{j + 1}", diameter=34)
            self.knobs[f"scale_{j + 1}"] = KnobControl(p, f"scale_{j + 1}", diameter=34)
        # Knobs added to the table later get a control too (the table is the source of truth): a dial, or a
        # button for a toggle, in an extra row below the laid-out ones.
        # Target dimensions are set by a capture (button, MIDI or OSC), not by hand: no dial for them.
        extra = [s.name for s in SPECS if s.name not in self.knobs and s.name != "capture"
                 and not s.name.startswith("target_")]
        for name in extra:
            self.knobs[name] = ToggleControl(p, name) if SPEC_BY_NAME[name].toggle else KnobControl(p, name)
        for k in self.knobs.values():
            k.learnRequested.connect(self.learn)
            k.forgetRequested.connect(self.forget_midi)
        self.in_meter, self.out_meter = LevelMeter("IN"), LevelMeter("OUT")
        body = QHBoxLayout()
        lay.addLayout(body, 1)
        body.addWidget(self.in_meter)
        center = QVBoxLayout()
        center.setSpacing(4)
        center.addWidget(self.knobs["amount"], 0, Qt.AlignmentFlag.AlignHCenter)
        # Two pages under the amount knob, so the panel still fits a 1280x800 screen: the sound's knobs, and
        # the latent's direction (contract-2 models).
        tabs = QTabWidget()
        sound = QWidget()
        page = QVBoxLayout(sound)
        page.setContentsMargins(0, 4, 0, 0)
        rows = [("noise_rate", "mix", "gate"), ("level", "smooth", "phase"), ("input_gain", "output_gain")]
        dials = [n for n in extra if not SPEC_BY_NAME[n].toggle]
        rows += [tuple(dials[i:i + 3]) for i in range(0, len(dials), 3)]
        for names in rows:
            row = QHBoxLayout()
            for name in names:
                row.addWidget(self.knobs[name])
            page.addLayout(row)
        toggles = QHBoxLayout()
        for name in ("bypass", "freeze", "slot_bypass", *(n for n in extra if SPEC_BY_NAME[n].toggle)):
            toggles.addWidget(self.knobs[name])
        page.addLayout(toggles)
        tabs.addTab(sound, "Sound")
        tabs.addTab(self._direction(), "Direction")
        self.control_tabs = tabs
        center.addWidget(tabs, 1)
        body.addLayout(center, 1)
        body.addWidget(self.out_meter)
        frame.setMinimumWidth(470)
        return frame

    def _direction(self) -> QWidget:
        """Latent direction: target capture, toward, noise-mix mode, per-dimension offset and scale."""
        frame = QWidget()
        lay = QVBoxLayout(frame)
        top = QHBoxLayout()
        self.capture_button = QPushButton("Capture target")
        self.capture_button.setToolTip("Hold the current sound's latent as the target; 'Toward' steers to it\n"
                                       f"OSC {SPEC_BY_NAME['capture'].osc_address()}")
        # Momentary: the engine captures on the rising edge of the 'capture' knob (so MIDI and OSC can too).
        self.capture_button.pressed.connect(lambda: self._set_capture(1.0))
        self.capture_button.released.connect(lambda: self._set_capture(0.0))
        top.addWidget(self.capture_button)
        top.addWidget(self.knobs["latent_mode"])
        top.addStretch(1)
        lay.addLayout(top)
        row = QHBoxLayout()
        row.setSpacing(0)
        row.addWidget(self.knobs["toward"])
        grid = QGridLayout()
        grid.setSpacing(0)
        for r, prefix in enumerate(("offset", "scale")):
            for j in range(DIRECTION_DIMS):
                k = self.knobs[f"{prefix}_{j + 1}"]
                k.label.setText(f"{prefix[0].upper()}{j + 1}")
                k.value_label.hide()
                k.setToolTip(k.spec.label)
                grid.addWidget(k, r, j)
        row.addLayout(grid, 1)
        lay.addLayout(row)
        lay.addStretch(1)
        return frame

    def _set_capture(self, value: float) -> None:
        try:
            self.params.set("capture", value, self.current_slot())
        except Exception as exc:  # noqa: BLE001 - a Qt slot must not raise
            self.show_error(_one_line(exc))

    def current_slot(self) -> int:
        """The slot the knobs are showing."""
        combo = getattr(self, "slot_combo", None)
        return max(0, combo.currentIndex()) if combo is not None else 0

    def _monitor(self) -> QVBoxLayout:
        col = QVBoxLayout()
        col.setSpacing(10)
        frame, lay = _card("SPECTRUM")
        self.spectrograms = Spectrograms()
        self.spectrograms.setMinimumHeight(220)
        lay.addWidget(self.spectrograms, 1)
        col.addWidget(frame, 3)
        frame, lay = _card("LATENT ACTIVITY")
        self.latent_bars = LatentBars()
        lay.addWidget(self.latent_bars, 1)
        col.addWidget(frame, 1)
        frame, lay = _card("ENGINE")
        grid = QGridLayout()
        grid.setHorizontalSpacing(18)
        grid.setVerticalSpacing(2)
        self.readouts: dict[str, QLabel] = {}
        names = (("algo", "Algorithmic latency"), ("device", "Device latency"), ("total", "Total latency"),
                 ("cpu", "Callback CPU (p50 / p99)"), ("xruns", "Xruns"), ("misses", "Deadline misses"),
                 ("callbacks", "Callbacks"), ("errors", "Model errors"), ("limiter", "Limiter"))
        for i, (key, text) in enumerate(names):
            name = QLabel(text)
            name.setObjectName("readoutName")
            value = QLabel("–")
            value.setObjectName("readoutValue")
            grid.addWidget(name, 2 * (i // 3), i % 3)
            grid.addWidget(value, 2 * (i // 3) + 1, i % 3)
            self.readouts[key] = value
        lay.addLayout(grid)
        col.addWidget(frame, 0)
        return col

    # -- errors -----------------------------------------------------------------------------------------
    def show_error(self, message: str) -> None:
        """Show a one-line error in the banner and the status bar (the running state is untouched)."""
        self.banner.setText(message)
        self.banner.show()
        self.statusBar().showMessage(message, 15000)

    def clear_error(self) -> None:
        self.banner.hide()
        self.banner.clear()

    @property
    def error_text(self) -> str:
        """The error on show ("" when none)."""
        return self.banner.text()

    # -- engine commands ----------------------------------------------------------------------------------
    def _host_call(self, fn, *args, **kwargs):
        """Run host command ``fn(*args, **kwargs)`` on the worker thread; return its result (or raise its error).

        The GUI thread spins a local event loop until it is done, so painting, meters and timers go on;
        ``busy`` makes the command entry points refuse a second command meanwhile (no re-entrancy).
        """
        future = self._commands.submit(fn, *args, **kwargs)
        loop = QEventLoop()
        # queued: quit() runs in the GUI thread, even when the worker finishes first
        future.add_done_callback(lambda _: QMetaObject.invokeMethod(loop, "quit", Qt.ConnectionType.QueuedConnection))
        self.busy = True
        self.statusBar().showMessage("working…")
        try:
            if not future.done():
                loop.exec()
        finally:
            self.busy = False
            self.statusBar().clearMessage()
        return future.result()

    def _refuse_if_busy(self) -> bool:
        if self.busy:
            self.statusBar().showMessage("busy: the previous command is still running", 3000)
        return self.busy

    def start_engine(self, models: list[str] | None = None) -> bool:
        """(Re)start the engine with ``models`` and the picked devices; on failure show why and keep going."""
        models = list(models or self.models)
        if not models:
            self.show_error("no model: pick one with 'Open…' (models/pretrained has none yet)")
            return False
        if self._refuse_if_busy():
            return False
        try:
            # The shipped models are loaded before the stream starts, so picking one later swaps without
            # creating an onnxruntime session while the audio runs (that holds the engine's GIL for ms).
            info = self._host_call(self.host.start, models, self.input, self.output, self.block_size,
                                   preload=[str(p) for p in shipped_models()])
        except Exception as exc:  # noqa: BLE001 - every host error is one line; the old stream keeps playing
            self.show_error(_one_line(exc))
            return False
        self.models = list(info.get("models", models))
        self._started(info)
        return True

    def _started(self, info: dict) -> None:
        self.info, self.running = info, bool(info.get("running"))
        self.latent_dim = int(info.get("latent_dim", 0))
        if info.get("n_bins") and info["n_bins"] != self.spectrograms.n_bins:
            self.spectrograms.configure(info["n_bins"], info.get("sample_rate", 48000))
        self._last_progress = time.monotonic()
        self.clear_error()
        self._refresh_models()

    def stop_engine(self) -> None:
        if self._refuse_if_busy():
            return
        try:
            self._host_call(self.host.stop)
        except Exception as exc:  # noqa: BLE001
            self.show_error(_one_line(exc))
        self.running = False
        self._update_start_button()

    def choose_model(self, path: str, slot: int = 0) -> bool:
        """Put model ``path`` in ``slot``: hot-swapped (crossfaded) when running; on failure the old one stays."""
        self._restoration_strength(path, slot)
        if not self.running:
            models = list(self.models) or [path]
            models[slot] = path
            return self.start_engine(models)
        if self._refuse_if_busy():
            return False
        try:
            info = self._host_call(self.host.load_model, path, slot)
        except Exception as exc:  # noqa: BLE001
            msg = _one_line(exc)
            if "restart the engine" not in msg:  # a different added delay needs a restart, not a swap
                self.show_error(msg)
                self._refresh_models()
                return False
            models = list(self.models)
            models[slot] = path
            return self.start_engine(models)
        self.models = list(info.get("models", self.models))
        self._started(info)
        return True

    def _restoration_strength(self, path: str, slot: int) -> None:
        """A restoration model starts at its own default strength (a stateful denoiser at full strength);
        an effect keeps the performer's amount."""
        from realtime.engine.model import EffectModel
        from realtime.io.offline import default_amount
        from realtime.paths import resolve_model

        try:
            model = EffectModel(resolve_model(path))
        except Exception:  # noqa: BLE001 - the load below reports a bad file
            return
        if model.info.kind == "restoration":
            self.params.set("amount", default_amount(model), slot)

    def _start_clicked(self) -> None:
        if self._stalled:
            self._restart()
        elif self.running:
            self.stop_engine()
        else:
            self.start_engine()

    def _devices_changed(self) -> None:
        self.input = self.input_combo.currentData()
        self.output = self.output_combo.currentData()
        self.block_size = int(self.block_combo.currentData())
        if self.running:
            self.start_engine()

    # -- models ---------------------------------------------------------------------------------------
    def _refresh_models(self) -> None:
        """Rebuild the model and slot pickers from :attr:`models` (keeps the selected slot)."""
        slot = min(max(0, self.slot_combo.currentIndex()), max(0, len(self.models) - 1))
        self.slot_combo.blockSignals(True)
        self.slot_combo.clear()
        for k, m in enumerate(self.models):
            self.slot_combo.addItem(f"{k}: {Path(m).stem}", k)  # slots count from 0 everywhere (OSC, presets)
        self.slot_combo.setCurrentIndex(slot)
        self.slot_combo.blockSignals(False)
        chain = len(self.models) > 1
        self.slot_combo.setVisible(chain)
        self.slot_label.setVisible(chain)
        combo = self.model_combo
        combo.blockSignals(True)
        combo.clear()
        paths = [str(p) for p in shipped_models()]
        paths += [m for m in self.models if m not in paths]
        for p in paths:
            combo.addItem(Path(p).stem, p)
            combo.setItemData(combo.count() - 1, p, Qt.ItemDataRole.ToolTipRole)
        combo.addItem(OPEN_ITEM, None)
        combo.blockSignals(False)
        self._slot_changed(slot)
        self._update_start_button()

    def _model_activated(self, index: int) -> None:
        path = self.model_combo.itemData(index)
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Open model", str(Path.cwd()), "ONNX models (*.onnx)")
            if not path:
                self._refresh_models()
                return
        slot = max(0, self.slot_combo.currentIndex())
        if self.models and slot < len(self.models) and path == self.models[slot]:
            return
        self.choose_model(path, slot)

    def _slot_changed(self, index: int) -> None:
        """Point the per-slot knobs and the model picker at chain slot ``index``."""
        index = max(0, index)
        for k in self.knobs.values():
            k.set_slot(index)
        combo = self.model_combo
        combo.blockSignals(True)
        current = self.models[index] if index < len(self.models) else None
        combo.setCurrentIndex(combo.findData(current) if current is not None else combo.count() - 1)
        combo.blockSignals(False)

    # -- presets ----------------------------------------------------------------------------------------
    def save_preset_file(self, path: str | Path) -> bool:
        try:
            save_preset(path, capture(self.params, self.models, self.midi_map.bindings(), Path(path).stem))
        except PresetError as exc:
            self.show_error(str(exc))
            return False
        self.statusBar().showMessage(f"saved preset {path}", 5000)
        return True

    def load_preset_file(self, path: str | Path) -> bool:
        """Validate the whole preset, switch models if it names others, then apply knobs and MIDI mappings.

        Any failure (bad file, or a model that will not load) shows one line and changes nothing.
        """
        try:
            preset = load_preset(path)
        except PresetError as exc:
            self.show_error(str(exc))
            return False
        if preset.models and preset.models != self.models:
            if self.running and len(preset.models) == len(self.models):
                # Same chain length, rate and block size: hot-swap slot by slot (crossfaded), no stream
                # restart, so every connection the user made in JACK stays.
                for slot, path in enumerate(preset.models):
                    if path != self.models[slot] and not self.choose_model(path, slot):
                        return False
            elif self.running:
                if not self.start_engine(preset.models):
                    return False
            else:
                self.models = list(preset.models)
                self._refresh_models()
        preset.apply_params(self.params)
        self.midi_map.set_bindings(preset.midi)
        self.clear_error()
        self.statusBar().showMessage(f"loaded preset {Path(path).name}", 5000)
        self.refresh()
        return True

    def _ask_load_preset(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load preset", str(Path.cwd()), "Presets (*.json)")
        if path:
            self.load_preset_file(path)

    def _ask_save_preset(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save preset", str(Path.cwd() / "preset.json"),
                                              "Presets (*.json)")
        if path:
            self.save_preset_file(path)

    # -- MIDI -------------------------------------------------------------------------------------------
    def learn(self, key: str) -> None:
        """Arm MIDI learn for knob ``key``: the next control change is mapped to it."""
        self.midi_map.learn(key)
        self.statusBar().showMessage(f"MIDI learn: move a controller for {key}", 10000)

    def forget_midi(self, key: str) -> None:
        self.midi_map.forget(key)

    # -- readouts ---------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """One timer tick: read statistics and knob targets (never writes the store)."""
        s = self.stats.summary()
        self.in_meter.set_levels(s["in_peak_db"], s["in_rms_db"])
        self.out_meter.set_levels(s["out_peak_db"], s["out_rms_db"])
        if self.running:
            self.spectrograms.push(self.stats.spec_in, self.stats.spec_out)
            self.latent_bars.set_values(self.stats.latent[:self.latent_dim])
        r = self.readouts

        def ms(x: float) -> str:
            return "–" if not np.isfinite(x) else f"{x:.2f} ms"

        r["algo"].setText(ms(s["algo_latency_ms"]))
        r["device"].setText(ms(s["device_latency_ms"]))
        r["total"].setText(ms(s["total_latency_ms"]))
        cpu = (s["cpu_share_p50"], s["cpu_share_p99"])
        r["cpu"].setText("–" if not np.isfinite(cpu[1]) else f"{100 * cpu[0]:.0f} % / {100 * cpu[1]:.0f} %")
        r["xruns"].setText(str(s["xruns"]))
        r["misses"].setText(str(s["misses"]))
        r["callbacks"].setText(f"{s['callbacks']:,}")
        r["errors"].setText(str(s["model_errors"]))
        r["limiter"].setText(f"-{s['limiter_gr_db']:.1f} dB" if s["limiter_gr_db"] > 0.05 else "idle")
        self._watch_engine(s["callbacks"])
        armed = self.midi_map.armed
        for k in self.knobs.values():
            k.show_value(self.params.get(k.name, k.slot))
            b = self.midi_map.binding_for(k.key)
            text = "" if b is None else f"CC{b.cc}" + (f" ch{b.channel + 1}" if b.channel else "")
            k.set_learn_state(armed == k.key, text)
        self.midi_label.setText(f"{self.midi_in.status}  ·  {len(self.midi_map.bindings())} mapped")
        if self.osc is not None:
            self.osc_label.setText(f"OSC {self.osc.host}:{self.osc.port}  ·  {self.osc.applied} in, "
                                   f"{self.osc.ignored} ignored")
        else:
            self.osc_label.setText("OSC off")

    def _watch_engine(self, callbacks: int) -> None:
        """Flag a running engine whose callbacks stopped (audio server gone): offer a restart."""
        now = time.monotonic()
        if callbacks != self._last_callbacks:
            self._last_callbacks, self._last_progress = callbacks, now
        stalled = self._stalled = self.running and now - self._last_progress > 1.5
        kind = "own process" if type(self.host).__name__ == "ProcessHost" else "in-process"
        if not self.running:
            state = "stopped"
        elif stalled:
            state = "stalled: no audio callbacks (audio server gone?); press Restart"
        else:
            sr = self.info.get("sample_rate", 0)
            state = f"running · {sr / 1000:g} kHz · block {self.info.get('block_size', '?')}"
        self.engine_label.setText(f"Engine ({kind}): {state}")
        self.host_label.setText(f"engine {kind}")
        self._update_start_button(stalled)

    def _update_start_button(self, stalled: bool = False) -> None:
        b = self.start_button
        text = "Restart" if stalled else ("Stop" if self.running else "Start")
        if b.text() != text:
            b.setText(text)
            b.setProperty("running", self.running and not stalled)
            b.style().unpolish(b)  # re-read the style sheet's [running="true"] colours
            b.style().polish(b)

    def _restart(self) -> None:
        if self._refuse_if_busy():
            return
        try:
            info = self._host_call(self.host.restart)
        except Exception as exc:  # noqa: BLE001
            self.show_error(_one_line(exc))
            return
        self._started(info)

    # -- teardown ---------------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the timer and close MIDI and OSC (the host belongs to the caller)."""
        self.timer.stop()
        self._commands.shutdown(wait=True)
        self.midi_in.close()
        if self.osc is not None:
            self.osc.close()
            self.osc = None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
