"""The panel's dark theme: one palette and one style sheet, so widgets stay free of colour literals."""

from __future__ import annotations

from PyQt6.QtGui import QColor, QPalette
from PyQt6.QtWidgets import QApplication

BG = "#16181d"
PANEL = "#1f2229"
PANEL_EDGE = "#2c3039"
TEXT = "#d9dde5"
DIM = "#8a92a3"
ACCENT = "#37c8b4"      # teal: values, active arcs
ACCENT_2 = "#f0a640"    # amber: toggles that change the sound (bypass, freeze), learn mode
DANGER = "#e5534b"
OK = "#57c46c"

STYLE = f"""
QWidget {{ background: {BG}; color: {TEXT}; font-size: 12px; }}
QFrame#card {{ background: {PANEL}; border: 1px solid {PANEL_EDGE}; border-radius: 8px; }}
QFrame#card QLabel {{ background: transparent; }}
QLabel#title {{ font-size: 17px; font-weight: 700; letter-spacing: 2px; color: {TEXT}; }}
QLabel#subtitle {{ color: {DIM}; font-size: 11px; }}
QLabel#section {{ color: {DIM}; font-size: 10px; font-weight: 700; letter-spacing: 1.5px; }}
QLabel#knobLabel {{ color: {DIM}; font-size: 11px; }}
QLabel#knobValue {{ color: {ACCENT}; font-size: 12px; font-weight: 600; }}
QLabel#bigValue {{ color: {ACCENT}; font-size: 20px; font-weight: 700; }}
QLabel#readoutName {{ color: {DIM}; font-size: 11px; }}
QLabel#readoutValue {{ color: {TEXT}; font-size: 12px; font-weight: 600; }}
QLabel#banner {{ background: #3a1d1f; color: #ffb4ae; border: 1px solid {DANGER}; border-radius: 6px;
                 padding: 6px 10px; }}
QComboBox, QSpinBox {{ background: {PANEL}; border: 1px solid {PANEL_EDGE}; border-radius: 5px;
                       padding: 3px 8px; min-height: 20px; }}
QComboBox:hover, QSpinBox:hover {{ border-color: {ACCENT}; }}
QComboBox QAbstractItemView {{ background: {PANEL}; selection-background-color: {ACCENT}; selection-color: {BG}; }}
QPushButton {{ background: {PANEL}; border: 1px solid {PANEL_EDGE}; border-radius: 5px; padding: 5px 12px; }}
QPushButton:hover {{ border-color: {ACCENT}; }}
QPushButton:pressed {{ background: {PANEL_EDGE}; }}
QPushButton#start {{ background: #1d3b36; border-color: {ACCENT}; color: {ACCENT}; font-weight: 700; min-width: 80px; }}
QPushButton#start[running="true"] {{ background: #3a1d1f; border-color: {DANGER}; color: #ffb4ae; }}
QPushButton#toggle {{ padding: 7px 10px; font-weight: 600; min-width: 92px; }}
QPushButton#toggle:checked {{ background: #3b2f1a; border-color: {ACCENT_2}; color: {ACCENT_2}; }}
QStatusBar {{ background: {PANEL}; color: {DIM}; border-top: 1px solid {PANEL_EDGE}; }}
QStatusBar QLabel {{ background: transparent; color: {DIM}; padding: 0 6px; }}
QToolTip {{ background: {PANEL}; color: {TEXT}; border: 1px solid {PANEL_EDGE}; }}
QMenu {{ background: {PANEL}; border: 1px solid {PANEL_EDGE}; }}
QMenu::item:selected {{ background: {ACCENT}; color: {BG}; }}
"""


def apply(app: QApplication) -> None:
    """Fusion style, a dark palette (for native-drawn parts) and the style sheet."""
    app.setStyle("Fusion")
    pal = QPalette()
    for role, colour in ((QPalette.ColorRole.Window, BG), (QPalette.ColorRole.Base, PANEL),
                         (QPalette.ColorRole.AlternateBase, PANEL_EDGE), (QPalette.ColorRole.Text, TEXT),
                         (QPalette.ColorRole.WindowText, TEXT), (QPalette.ColorRole.Button, PANEL),
                         (QPalette.ColorRole.ButtonText, TEXT), (QPalette.ColorRole.Highlight, ACCENT),
                         (QPalette.ColorRole.HighlightedText, BG), (QPalette.ColorRole.ToolTipBase, PANEL),
                         (QPalette.ColorRole.ToolTipText, TEXT)):
        pal.setColor(role, QColor(colour))
    app.setPalette(pal)
    app.setStyleSheet(STYLE)
