"""Start the Qt application with Mimic's main window."""
from __future__ import annotations

import sys

from PyQt6.QtWidgets import QApplication

from app.gui.main_window import LaunchOptions, MainWindow, default_reenactor_factory
from app.gui.theme import apply_dark_theme
from engine.session import ReenactorFactory


def create_app() -> QApplication:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Mimic")
    app.setOrganizationName("Mimic")
    apply_dark_theme(app)
    return app


def run_gui(options: LaunchOptions, factory: ReenactorFactory = default_reenactor_factory) -> int:
    app = create_app()
    window = MainWindow(options, reenactor_factory=factory)
    window.show()
    return app.exec()
