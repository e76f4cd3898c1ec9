"""Knob and toggle widgets bound to one knob target of :class:`realtime.engine.params.Params`.

User moves write the store at once; :meth:`KnobControl.show_value` (called by the panel's refresh timer)
moves the widget to the store's value with signals blocked, so MIDI and OSC changes appear without ever
echoing back as a write. Wheel and keyboard work as on any slider; double-click resets to the default;
right-click offers MIDI learn.
"""

from __future__ import annotations

import math

from PyQt6.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QPainter, QPen
from PyQt6.QtWidgets import QDial, QLabel, QMenu, QPushButton, QVBoxLayout, QWidget

from realtime.engine.params import SPEC_BY_NAME, ParamError, Params
from realtime.gui import theme
from realtime.gui.controls import format_value, from_unit, knob_key, to_unit

STEPS = 1000  # dial positions over the whole travel
START_DEG, SWEEP_DEG = 225.0, 270.0  # 7 o'clock to 5 o'clock, like a hardware pot


class Dial(QDial):
    """A :class:`QDial` drawn as a flat arc pot (keeps QDial's mouse, wheel and keyboard handling)."""

    def __init__(self, diameter: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setRange(0, STEPS)
        self.setSingleStep(STEPS // 100)  # arrow keys / one wheel line: 1 % of the travel
        self.setPageStep(STEPS // 10)
        self.setWrapping(False)
        self.setNotchesVisible(False)
        self.setFixedSize(diameter, diameter)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.learning = False

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        side = min(self.width(), self.height())
        track = max(3.0, side * 0.07)
        r = side / 2 - track
        c = QPointF(self.width() / 2, self.height() / 2)
        rect = QRectF(c.x() - r, c.y() - r, 2 * r, 2 * r)
        u = (self.value() - self.minimum()) / max(1, self.maximum() - self.minimum())
        pen = QPen(QColor(theme.PANEL_EDGE), track, cap=Qt.PenCapStyle.RoundCap)
        p.setPen(pen)
        p.drawArc(rect, int(START_DEG * 16), int(-SWEEP_DEG * 16))
        accent = QColor(theme.ACCENT_2 if self.learning else theme.ACCENT)
        if not self.isEnabled():
            accent = QColor(theme.DIM)
        pen.setColor(accent)
        p.setPen(pen)
        p.drawArc(rect, int(START_DEG * 16), int(-SWEEP_DEG * u * 16))
        # The cap: a disc with a pointer line.
        cap_r = r - track * 1.6
        p.setPen(QPen(QColor(theme.PANEL_EDGE), 1.0))
        p.setBrush(QColor("#2a2e37" if not self.hasFocus() else "#313641"))
        p.drawEllipse(c, cap_r, cap_r)
        ang = math.radians(START_DEG - SWEEP_DEG * u)
        tip = QPointF(c.x() + math.cos(ang) * cap_r * 0.85, c.y() - math.sin(ang) * cap_r * 0.85)
        base = QPointF(c.x() + math.cos(ang) * cap_r * 0.35, c.y() - math.sin(ang) * cap_r * 0.35)
        p.setPen(QPen(QColor(theme.TEXT), max(2.0, side * 0.03), cap=Qt.PenCapStyle.RoundCap))
        p.drawLine(base, tip)
        p.end()


class _Bound(QWidget):
    """Common part of a control bound to knob ``name`` in ``slot`` (MIDI-learn menu, key)."""

    learnRequested = pyqtSignal(str)  # noqa: N815 - Qt signal naming
    forgetRequested = pyqtSignal(str)  # noqa: N815

    def __init__(self, params: Params, name: str, slot: int, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.params, self.name, self.slot = params, name, slot
        self.spec = SPEC_BY_NAME[name]
        self.midi_text = ""
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)

    @property
    def key(self) -> str:
        return knob_key(self.name, self.slot)

    def set_slot(self, slot: int) -> None:
        self.slot = slot if self.spec.per_slot else 0
        self._tooltip()

    def tooltip_text(self, value_text: str = "") -> str:
        """Label, value, OSC address (from the table of knobs) and the MIDI binding, for the tooltip."""
        tip = f"{self.spec.label}" + (f": {value_text}" if value_text else "")
        tip += f"\nOSC {self.spec.osc_address(self.slot if self.spec.per_slot else None)}"
        return tip + (f"\nMIDI {self.midi_text}" if self.midi_text else "")

    def _tooltip(self) -> None:
        self.setToolTip(self.tooltip_text())

    def _menu(self, pos) -> None:
        menu = QMenu(self)
        menu.addAction("MIDI learn", lambda: self.learnRequested.emit(self.key))
        if self.midi_text:
            menu.addAction(f"Forget {self.midi_text}", lambda: self.forgetRequested.emit(self.key))
        menu.addAction("Reset to default", self.reset)
        menu.popup(self.mapToGlobal(pos))

    def write(self, value: float) -> None:
        try:
            self.params.set(self.name, value, self.slot)
        except ParamError:  # cannot happen from the widget's own range; never let a slot raise into Qt
            pass

    def reset(self) -> None:
        self.write(self.spec.default)
        self.show_value(self.spec.default)

    def show_value(self, value: float) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def set_learn_state(self, armed: bool, midi_text: str) -> None:
        self.midi_text = midi_text


class KnobControl(_Bound):
    """Label, dial and value readout for one continuous knob."""

    def __init__(self, params: Params, name: str, slot: int = 0, diameter: int = 64, big: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(params, name, slot, parent)
        self.dial = Dial(diameter, self)
        self.dial.setAccessibleName(self.spec.label)
        self.label = QLabel(self.spec.label.upper() if big else self.spec.label)
        self.label.setObjectName("section" if big else "knobLabel")
        self.value_label = QLabel()
        self.value_label.setObjectName("bigValue" if big else "knobValue")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(2)
        for w in (self.label, self.dial, self.value_label):
            lay.addWidget(w, 0, Qt.AlignmentFlag.AlignHCenter)
        self._shown = math.nan
        self.dial.valueChanged.connect(self._moved)
        self.dial.mouseDoubleClickEvent = lambda _e: self.reset()
        self.show_value(params.get(name, self.slot))

    def _moved(self, pos: int) -> None:
        value = from_unit(self.spec, pos / STEPS)
        self.write(value)
        self._label(value)

    def _label(self, value: float) -> None:
        self._shown = value
        text = format_value(self.spec, value)
        self.value_label.setText(text)
        self.dial.setToolTip(self.tooltip_text(text))
        self.setToolTip(self.tooltip_text())

    def show_value(self, value: float) -> None:
        """Show the store's value; never writes back (signals blocked) and never fights a drag."""
        if value == self._shown or self.dial.isSliderDown():
            return
        pos = round(to_unit(self.spec, value) * STEPS)
        if pos != self.dial.value():
            self.dial.blockSignals(True)
            self.dial.setValue(pos)
            self.dial.blockSignals(False)
            self.dial.update()
        self._label(value)

    def set_learn_state(self, armed: bool, midi_text: str) -> None:
        super().set_learn_state(armed, midi_text)
        if self.dial.learning != armed:
            self.dial.learning = armed
            self.dial.update()
        base = self.spec.label.upper() if self.label.objectName() == "section" else self.spec.label
        suffix = "  [learn…]" if armed else (f"  [{midi_text}]" if midi_text else "")
        if self.label.text() != base + suffix:
            self.label.setText(base + suffix)


class ToggleControl(_Bound):
    """A latching button for a toggle knob (bypass, freeze); the wheel turns it on (up) or off (down)."""

    def __init__(self, params: Params, name: str, slot: int = 0, text: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(params, name, slot, parent)
        self.text = text or self.spec.label
        self.button = QPushButton(self.text)
        self.button.setObjectName("toggle")
        self.button.setCheckable(True)
        self.button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # space toggles
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.button)
        self.button.toggled.connect(lambda on: self.write(1.0 if on else 0.0))
        self.show_value(params.get(name, self.slot))
        self._tooltip()

    def _tooltip(self) -> None:
        super()._tooltip()
        self.button.setToolTip(self.tooltip_text())

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.button.setChecked(event.angleDelta().y() > 0)

    def show_value(self, value: float) -> None:
        on = value >= 0.5
        if on != self.button.isChecked():
            self.button.blockSignals(True)
            self.button.setChecked(on)
            self.button.blockSignals(False)

    def set_learn_state(self, armed: bool, midi_text: str) -> None:
        super().set_learn_state(armed, midi_text)
        text = self.text + ("  [learn…]" if armed else (f"  [{midi_text}]" if midi_text else ""))
        if self.button.text() != text:
            self.button.setText(text)
