"""Scrolling spectrograms of the engine's input and output (pyqtgraph ImageItem, log-frequency axis).

Each refresh appends the last STFT frame the engine published (``Stats.spec_in``/``spec_out``: natural-log
magnitudes); the image keeps the most recent ``columns`` of them. Rows are spaced logarithmically in
frequency, as musicians read a spectrum; each row shows the loudest bin it covers.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt6.QtWidgets import QWidget

from realtime.gui import theme

DB_PER_NEPER = 20.0 / math.log(10.0)  # natural-log magnitude -> dB
LEVELS_DB = (-70.0, 35.0)
F_LO = 40.0  # lowest frequency shown (Hz)


def band_starts(n_bins: int, sample_rate: float, rows: int) -> np.ndarray:
    """First bin of each of ``rows`` log-spaced bands from :data:`F_LO` to Nyquist (non-decreasing)."""
    nyq = sample_rate / 2
    edges = np.geomspace(F_LO, nyq, rows + 1)[:-1] / nyq * (n_bins - 1)
    return np.clip(np.round(edges).astype(np.int64), 0, n_bins - 1)


class Spectrograms(pg.GraphicsLayoutWidget):
    """Two stacked scrolling spectrograms (input above output)."""

    def __init__(self, n_bins: int = 257, sample_rate: float = 48000.0, columns: int = 180, rows: int = 160,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground(theme.PANEL)
        self.ci.layout.setContentsMargins(2, 2, 2, 2)
        self.ci.layout.setSpacing(4)
        self.columns, self.rows = columns, rows
        cmap = pg.colormap.get("inferno")
        self.images: dict[str, pg.ImageItem] = {}
        self.plots: dict[str, pg.PlotItem] = {}
        self.buffers: dict[str, np.ndarray] = {}
        for row, (key, title) in enumerate((("in", "INPUT"), ("out", "OUTPUT"))):
            plot = self.addPlot(row=row, col=0)
            plot.setTitle(f"<span style='color:{theme.DIM};font-size:8pt;font-weight:700'>{title}</span>",
                          justify="left", size="8pt")
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(False, False)
            plot.hideButtons()
            plot.hideAxis("bottom")
            axis = plot.getAxis("left")
            axis.setTextPen(theme.DIM)
            axis.setPen(theme.PANEL_EDGE)
            axis.setWidth(40)
            img = pg.ImageItem(axisOrder="col-major")
            img.setColorMap(cmap)
            plot.addItem(img)
            self.images[key], self.plots[key] = img, plot
        self.configure(n_bins, sample_rate)

    def configure(self, n_bins: int, sample_rate: float) -> None:
        """Size the images for ``n_bins`` and label the frequency axis for ``sample_rate``."""
        self.n_bins = n_bins
        self._start = band_starts(n_bins, sample_rate, self.rows)
        nyq = sample_rate / 2
        span = math.log(nyq / F_LO)
        ticks = [(math.log(f / F_LO) / span * self.rows, label)
                 for f, label in ((100, "100"), (1000, "1k"), (10000, "10k")) if F_LO < f < nyq]
        ticks += [(math.log(f / F_LO) / span * self.rows, "")
                  for f in (50, 200, 500, 2000, 5000, 20000) if F_LO < f < nyq]
        for key, img in self.images.items():
            self.buffers[key] = np.full((self.columns, self.rows), LEVELS_DB[0], np.float32)
            img.setImage(self.buffers[key], levels=LEVELS_DB, autoLevels=False)
            img.setRect(0, 0, self.columns, self.rows)
            plot = self.plots[key]
            plot.setXRange(0, self.columns, padding=0)
            plot.setYRange(0, self.rows, padding=0)
            plot.getAxis("left").setTicks([ticks[:3], ticks[3:]])
            plot.getAxis("left").setLabel("Hz", color=theme.DIM)

    def _column(self, frame: np.ndarray) -> np.ndarray:
        db = np.asarray(frame[:self.n_bins], np.float64) * DB_PER_NEPER
        # Loudest bin per band: bands are contiguous, so reduceat over the band starts covers each band's bins
        # (a low band narrower than one bin repeats that bin).
        return np.maximum.reduceat(db, self._start)

    def push(self, spec_in: np.ndarray, spec_out: np.ndarray) -> None:
        """Append one column to each image (natural-log magnitudes, at least ``n_bins`` long)."""
        for key, frame in (("in", spec_in), ("out", spec_out)):
            buf = self.buffers[key]
            buf[:-1] = buf[1:]
            buf[-1] = self._column(frame)
            self.images[key].setImage(buf, levels=LEVELS_DB, autoLevels=False)
