"""Mimic's dark theme: a Fusion palette plus a small style sheet."""
from __future__ import annotations

from PyQt6.QtGui import QColor, QPalette
from PyQt6.QtWidgets import QApplication

ACCENT = "#4f8cff"
RECORD = "#e5484d"
OK = "#3fb950"
WARN = "#f5a524"
BG = "#15171c"
PANEL = "#1d2027"
RAISED = "#262a33"
BORDER = "#2f3440"
TEXT = "#e6e8ee"
MUTED = "#9aa1ae"

STYLE_SHEET = f"""
QMainWindow, QDialog {{ background: {BG}; }}
QWidget {{ color: {TEXT}; font-size: 10pt; }}
QToolTip {{ background: {RAISED}; color: {TEXT}; border: 1px solid {BORDER}; padding: 4px; }}
QMenuBar {{ background: {BG}; }}
QMenuBar::item:selected, QMenu::item:selected {{ background: {RAISED}; }}
QMenu {{ background: {PANEL}; border: 1px solid {BORDER}; }}
QStatusBar {{ background: {PANEL}; color: {MUTED}; border-top: 1px solid {BORDER}; }}
QStatusBar::item {{ border: none; }}
QFrame#Sidebar {{ background: {PANEL}; border-right: 1px solid {BORDER}; }}
QLabel#SectionTitle {{ color: {MUTED}; font-size: 8pt; font-weight: 600; letter-spacing: 1px; padding-top: 6px; }}
QLabel#Hint {{ color: {MUTED}; font-size: 9pt; }}
QLabel#Chip {{ background: {RAISED}; border: 1px solid {BORDER}; border-radius: 9px; padding: 1px 8px; }}
QLabel#RecChip {{ background: {RECORD}; color: white; border-radius: 9px; padding: 1px 8px; font-weight: 600; }}
QPushButton, QToolButton {{
    background: {RAISED}; border: 1px solid {BORDER}; border-radius: 6px; padding: 5px 10px;
}}
QFileDialog QToolButton {{ padding: 2px; }}
QPushButton:hover, QToolButton:hover {{ border-color: {ACCENT}; }}
QPushButton:pressed, QToolButton:pressed {{ background: {BORDER}; }}
QPushButton:disabled, QToolButton:disabled {{ color: #5c6370; border-color: {RAISED}; }}
QPushButton:checked, QToolButton:checked {{ background: #24344f; border-color: {ACCENT}; }}
QPushButton#Primary {{ background: {ACCENT}; border-color: {ACCENT}; color: white; font-weight: 600; }}
QPushButton#Record {{ background: #3a1f22; border-color: {RECORD}; color: #ffd7d8; font-weight: 600; }}
QPushButton#Record:checked {{ background: {RECORD}; color: white; }}
QPushButton#Record:disabled {{ background: {RAISED}; border-color: {RAISED}; color: #5c6370; }}
QComboBox {{ background: {RAISED}; border: 1px solid {BORDER}; border-radius: 6px; padding: 4px 8px; }}
QComboBox QAbstractItemView {{ background: {PANEL}; border: 1px solid {BORDER}; selection-background-color: {RAISED}; }}
QCheckBox::indicator {{ width: 14px; height: 14px; }}
QListWidget {{ background: {BG}; border: 1px solid {BORDER}; border-radius: 6px; }}
QListWidget::item {{ border-radius: 6px; color: {MUTED}; }}
QListWidget::item:selected {{ background: #24344f; color: {TEXT}; }}
QProgressBar {{ background: {RAISED}; border: none; border-radius: 4px; height: 8px; text-align: center; }}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 4px; }}
QSplitter::handle {{ background: {BORDER}; }}
"""


def apply_dark_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: BG,
        QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: PANEL,
        QPalette.ColorRole.AlternateBase: RAISED,
        QPalette.ColorRole.Text: TEXT,
        QPalette.ColorRole.Button: RAISED,
        QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: RAISED,
        QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.PlaceholderText: MUTED,
        QPalette.ColorRole.Link: ACCENT,
    }
    for role, color in roles.items():
        palette.setColor(role, QColor(color))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#5c6370"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#5c6370"))
    app.setPalette(palette)
    app.setStyleSheet(STYLE_SHEET)
