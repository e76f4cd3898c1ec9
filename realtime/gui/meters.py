"""Level meters and the latent-activity bars (QPainter; fed by the panel's refresh timer)."""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QColor, QFont, QLinearGradient, QPainter, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

from realtime.gui import theme

FLOOR_DB = -60.0


def _frac(db: float) -> float:
    return float(np.clip((db - FLOOR_DB) / -FLOOR_DB, 0.0, 1.0))


class LevelMeter(QWidget):
    """A vertical peak/RMS meter in dBFS with a held peak marker and a dB scale.

    The audio thread reports the last block's levels; the meter adds only display ballistics (fast
    attack, ~20 dB/s fall) so a 30 Hz refresh reads steadily.
    """

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.peak_db = self.rms_db = self.hold_db = FLOOR_DB - 1
        self._hold_age = 0
        self.setMinimumSize(58, 200)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)

    def set_levels(self, peak_db: float, rms_db: float, dt: float = 1 / 30) -> None:
        fall = 20.0 * dt
        self.peak_db = max(peak_db, self.peak_db - fall)
        self.rms_db = max(rms_db, self.rms_db - fall)
        if peak_db >= self.hold_db or self._hold_age > 45:  # hold the peak for ~1.5 s
            self.hold_db, self._hold_age = peak_db, 0
        else:
            self._hold_age += 1
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        small = QFont(self.font())
        small.setPixelSize(9)
        p.setFont(small)
        top, bottom = 18.0, self.height() - 20.0
        bar = QRectF(4, top, 16, bottom - top)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#0f1115"))
        p.drawRoundedRect(bar, 3, 3)
        grad = QLinearGradient(0, bottom, 0, top)
        grad.setColorAt(0.0, QColor(theme.OK))
        grad.setColorAt(0.75, QColor("#c9d24a"))
        grad.setColorAt(0.92, QColor(theme.ACCENT_2))
        grad.setColorAt(1.0, QColor(theme.DANGER))
        for db, alpha in ((self.peak_db, 110), (self.rms_db, 255)):
            f = _frac(db)
            if f > 0:
                h = f * bar.height()
                p.setBrush(grad)
                p.setOpacity(alpha / 255)
                p.drawRoundedRect(QRectF(bar.left(), bar.bottom() - h, bar.width(), h), 2, 2)
        p.setOpacity(1.0)
        if _frac(self.hold_db) > 0:
            y = bar.bottom() - _frac(self.hold_db) * bar.height()
            p.setPen(QPen(QColor(theme.DANGER if self.hold_db > -1 else theme.TEXT), 2))
            p.drawLine(int(bar.left()), int(y), int(bar.right()), int(y))
        p.setPen(QColor(theme.DIM))
        for db in (0, -6, -12, -24, -36, -48, -60):
            y = bar.bottom() - _frac(db) * bar.height()
            p.drawLine(int(bar.right() + 2), int(y), int(bar.right() + 5), int(y))
            p.drawText(QRectF(bar.right() + 7, y - 6, 30, 12), Qt.AlignmentFlag.AlignVCenter, f"{db}")
        title = QFont(self.font())
        title.setPixelSize(10)
        title.setBold(True)
        p.setFont(title)
        p.drawText(QRectF(0, 0, self.width(), 14), Qt.AlignmentFlag.AlignLeft, self.title)
        p.setPen(QColor(theme.TEXT))
        text = "-inf" if self.peak_db <= FLOOR_DB else f"{self.peak_db:.1f}"
        p.drawText(QRectF(0, bottom + 4, self.width(), 14), Qt.AlignmentFlag.AlignLeft, text)
        p.end()


class LatentBars(QWidget):
    """Bars of the latent mean of the last frame (one per latent dimension), centred on zero."""

    def __init__(self, parent: QWidget | None = None, scale: float = 2.0) -> None:
        super().__init__(parent)
        self.values = np.zeros(0)
        self.scale = scale
        self.setMinimumHeight(70)

    def set_values(self, values: np.ndarray) -> None:
        # Light smoothing so the bars read as activity rather than flicker.
        v = np.asarray(values, np.float64)
        self.values = v if self.values.shape != v.shape else 0.6 * self.values + 0.4 * v
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        p.fillRect(0, 0, w, h, QColor("#0f1115"))
        mid = h / 2
        p.setPen(QPen(QColor(theme.PANEL_EDGE), 1))
        p.drawLine(0, int(mid), w, int(mid))
        n = len(self.values)
        if n:
            step = w / n
            p.setPen(Qt.PenStyle.NoPen)
            for i, v in enumerate(np.clip(self.values / self.scale, -1, 1)):
                bh = abs(v) * (mid - 2)
                colour = QColor(theme.ACCENT if v >= 0 else "#4d8fd6")
                p.setBrush(colour)
                y = mid - bh if v >= 0 else mid
                p.drawRect(QRectF(i * step + 1, y, max(1.0, step - 2), bh))
        p.end()
