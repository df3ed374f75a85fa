"""Mimic's main window: the panels around the driver and output views, the status bar, progress dialogs.

Where a GUI action changes the engine's state: `engine/session/` (every intent is a `Session`
method). The panels (`app/gui/panels/`) render the session's state and send intents; this window
only composes them, shows progress for long tasks, takes dropped files and shuts down.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PyQt6.QtWidgets import QApplication, QFrame, QHBoxLayout, QMainWindow, QProgressDialog, QScrollArea, QVBoxLayout, QWidget

from app.gui.actions import WindowActions
from app.gui.bridge import LiveFeed, QtPost, SessionEvents
from app.gui.panels.base import PanelContext
from app.gui.panels.model import ModelPanel
from app.gui.panels.paper import PaperPanel
from app.gui.panels.retarget import RetargetPanel
from app.gui.panels.record import RecordPanel
from app.gui.panels.source import SourcePanel
from app.gui.panels.target import TargetPanel
from app.gui.panels.view import ViewPanel
from app.gui.settings import AppSettings
from app.gui.widgets import chip
from engine.reenactor import ProgressFn
from engine.session import (
    Changed,
    Event,
    Part,
    RecordingSaved,
    ReenactorFactory,
    Session,
    TargetApplied,
    TargetRef,
    TaskEnded,
    TaskProgress,
    TaskStarted,
    target_kind,
)
from engine.tasks import Task

log = logging.getLogger(__name__)

MIN_SIZE = (900, 600)  # the window's smallest size: every control fits, nothing overlaps
SIDEBAR_WIDTH = 300
SCREENSHOT_WAIT_S = 60.0  # --screenshot: the longest wait for a live output


def reenactor_factory_for(runtime: str = "auto", device: str = "auto", precision: str = "auto",
                          cuda_graphs: bool = True) -> ReenactorFactory:
    """A factory that builds model packs with these runtime settings (see `python -m app render --help`)."""

    def create(weights: Path | None, progress: ProgressFn | None = None):
        from engine.factory import create_reenactor, setup_for  # the StyleGAN path imports torch: a worker thread

        return create_reenactor(setup_for(weights, runtime, device, precision, cuda_graphs), progress)

    return create


default_reenactor_factory = reenactor_factory_for()


@dataclass(frozen=True)
class LaunchOptions:
    source: str | None = None  # video file (looped) or camera index; None: the last one used
    weights: Path | None = None  # model pack; None: the last one used, else the landmark warp
    target: Path | None = None  # portrait or latent to start with; None: the last one used
    screenshot: Path | None = None  # save the window here once it is live, then quit
    audio: str | None = None  # recordings' sound (microphone, "source", "none"); None: the last one used


class MainWindow(QMainWindow):
    target_applied = pyqtSignal(str)  # path (or label) of the target now animated
    recording_saved = pyqtSignal(object)  # RecorderStats

    def __init__(self, options: LaunchOptions = LaunchOptions(), settings: AppSettings | None = None,
                 reenactor_factory: ReenactorFactory = default_reenactor_factory) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.options = options
        self.post = QtPost()
        self.events = SessionEvents()
        self.feed = LiveFeed()
        self.session = Session(reenactor_factory, self.post, mirror=self.settings.mirror,
                               on_frame=self.feed.offer_frame, on_result=self.feed.offer_result)
        self.session.subscribe(self.events.event.emit)
        self.acts = WindowActions.create(self)
        self.acts.fill_menus(self)
        self.acts.quit.triggered.connect(self.close)
        ctx = PanelContext(self.session, self.settings, self.acts, self.events)
        self.source_panel, self.target_panel = SourcePanel(ctx), TargetPanel(ctx)
        self.model_panel, self.record_panel = ModelPanel(ctx), RecordPanel(ctx)
        self.paper_panel = PaperPanel(ctx)
        self.retarget_panel = RetargetPanel(ctx)
        self.view_panel = ViewPanel(ctx, self.feed)
        self._progress: dict[Task, QProgressDialog] = {}
        self.setWindowTitle("Mimic")
        self.setAcceptDrops(True)
        self.setMinimumSize(*MIN_SIZE)
        self._build_layout()
        self._build_status_bar()
        self.events.event.connect(self._on_event)
        self._restore_geometry()
        self._started_at = time.monotonic()
        self._stats_timer = QTimer(self, interval=250, timeout=self._update_stats)
        self._stats_timer.start()
        self._start()

    # ------------------------------------------------------------------ layout

    def _build_layout(self) -> None:
        sidebar = QFrame(objectName="Sidebar")
        side = QVBoxLayout(sidebar)
        side.setContentsMargins(14, 10, 14, 14)
        side.setSpacing(10)
        # Record & share before the model's options: at the default size it is in view without scrolling
        panels = (self.source_panel, self.target_panel, self.model_panel, self.record_panel, self.paper_panel,
                  self.retarget_panel)
        for panel in panels:
            side.addWidget(panel, 1 if panel is self.target_panel else 0)
        scroll = QScrollArea(objectName="SidebarScroll")  # a short window scrolls the controls, never overlaps them
        scroll.setWidget(sidebar)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setFixedWidth(SIDEBAR_WIDTH)
        root = QWidget()
        layout = QHBoxLayout(root)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(scroll)
        layout.addWidget(self.view_panel, 1)
        self.setCentralWidget(root)

    def _build_status_bar(self) -> None:
        """Always-visible figures: fps, latency, the source, the running model."""
        self.fps_chip = chip("– fps", "Output frames per second (camera frames per second)")
        self.latency_chip = chip("– ms", "End-to-end latency: camera capture → output ready")
        self.source_chip = chip("", "Driving source")
        self.device_chip = chip("", "Reenactor · runtime · device · precision")
        for label in (self.source_chip, self.device_chip):
            label.setMinimumWidth(60)  # long names are elided, the chips never push the bar off the window
        bar = self.statusBar()
        bar.setSizeGripEnabled(False)
        for widget in (self.fps_chip, self.latency_chip, self.source_chip):
            bar.addWidget(widget)
        bar.addPermanentWidget(self.device_chip)

    def _restore_geometry(self) -> None:
        geometry = self.settings.geometry
        restored = geometry is not None and self.restoreGeometry(geometry)
        if not restored:
            self.resize(1440, 860)
        if self.width() < MIN_SIZE[0] or self.height() < MIN_SIZE[1]:  # no window manager enforces it
            self.resize(max(self.width(), MIN_SIZE[0]), max(self.height(), MIN_SIZE[1]))
        if not restored:
            self._center_on_screen()

    def _center_on_screen(self) -> None:
        """The first launch opens in the middle of the screen (without a window manager Qt puts it at the
        corner, and that position would be saved for every later launch)."""
        screen = self.screen() or QApplication.primaryScreen()
        if screen is None:
            return
        area = screen.availableGeometry()
        self.move(area.x() + max(0, (area.width() - self.width()) // 2),
                  area.y() + max(0, (area.height() - self.height()) // 2))

    def _start(self) -> None:
        """The launch options, else what the last session used."""
        options, settings = self.options, self.settings
        source = options.source if options.source is not None else settings.source
        pack = options.weights if options.weights is not None else settings.model_pack
        if options.weights is None and pack is not None and not pack.is_file():
            pack = None  # the remembered pack is gone: start without weights
        first = options.target or (Path(settings.recent_targets[0].path) if settings.recent_targets else None)
        kind = target_kind(first) if first is not None else None
        target = TargetRef(str(first), kind) if first is not None and kind and first.is_file() else None
        audio = options.audio if options.audio is not None else settings.audio
        self.session.set_mirror(settings.mirror_for(source))  # a video file is not mirrored by default
        self.session.start(source, pack, target, audio)
        for panel in (self.source_panel, self.model_panel, self.record_panel, self.view_panel):
            panel.render()

    # ------------------------------------------------------------------ session events

    def _on_event(self, event: Event) -> None:
        if isinstance(event, TaskStarted) and event.task.show_progress:
            self._progress[event.task] = self._progress_dialog(event.task)
        elif isinstance(event, TaskProgress) and event.task in self._progress:
            dialog = self._progress[event.task]
            dialog.setLabelText(f"{event.task.title}\n{event.message}" if event.message else event.task.title)
            dialog.setValue(min(99, round(event.fraction * 100)))
        elif isinstance(event, TaskEnded) and event.task in self._progress:
            dialog = self._progress.pop(event.task)
            dialog.close()
            dialog.deleteLater()
        elif isinstance(event, TargetApplied):
            self.setWindowTitle(f"Mimic — {event.label}")
            self.target_applied.emit(event.ref.path if event.ref else event.label)
        elif isinstance(event, RecordingSaved):
            self.recording_saved.emit(event.stats)
        elif isinstance(event, Changed) and event.part in (Part.SOURCE, Part.MODEL):
            self._update_chips()

    def _progress_dialog(self, task: Task) -> QProgressDialog:
        """A cancellable progress dialog that appears only if the task takes a while."""
        dialog = QProgressDialog(task.title, "Cancel", 0, 100, self)
        dialog.setWindowTitle("Mimic")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(600)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.setValue(0)
        dialog.canceled.connect(task.cancel)
        return dialog

    # ------------------------------------------------------------------ status bar

    def _update_chips(self) -> None:
        state = self.session.state
        self._set_elided(self.source_chip, state.source_status.message if state.source_status else state.source_name)
        self._set_elided(self.device_chip, state.reenactor.describe() if state.reenactor else
                         f"loading {state.loading}…" if state.loading else "no model")

    def _set_elided(self, label, text: str) -> None:
        """Long names shortened in the middle so that the four chips fit the window's width."""
        fixed = self.fps_chip.sizeHint().width() + self.latency_chip.sizeHint().width() + 80  # the figures, whole
        max_px = max(100, (self.width() - fixed) // 2)
        label.setText(label.fontMetrics().elidedText(text, Qt.TextElideMode.ElideMiddle, max_px))
        label.setToolTip(text)

    def _update_stats(self) -> None:
        stats = self.session.pipeline.stats()
        if self.session.state.live:
            self.fps_chip.setText(f"{stats.fps:.1f} fps  (camera {stats.capture_fps:.0f})")
            self.latency_chip.setText(f"latency {stats.latency_ms:.0f} ms" if stats.latency_ms else "latency –")
        else:
            self.fps_chip.setText(f"camera {stats.capture_fps:.0f} fps")
            self.latency_chip.setText("latency –")
        self._update_chips()
        self.view_panel.tick()
        self._screenshot_when_live()

    def _screenshot_when_live(self) -> None:
        """--screenshot: once the output (or, with no target, the driver) has shown frames, save and quit;
        after SCREENSHOT_WAIT_S without (no camera, a target without a face) save what is shown."""
        path = self.options.screenshot
        if path is None:
            return
        view = self.view_panel.output_view if self.session.state.live else self.view_panel.driver_view
        waited = time.monotonic() - self._started_at > SCREENSHOT_WAIT_S
        if not waited and (self.session.busy or view.frames_shown < 5):
            return
        self.options = replace(self.options, screenshot=None)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.grab().save(str(path)):
            log.error("cannot save the screenshot to %s", path)
        self.close()

    # ------------------------------------------------------------------ drag & drop, shutdown

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if self._dropped_path(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        path = self._dropped_path(event)
        if path is not None:
            event.acceptProposedAction()
            self.session.choose_target_file(path)

    @staticmethod
    def _dropped_path(event) -> Path | None:
        for url in event.mimeData().urls():
            if url.isLocalFile() and target_kind(Path(url.toLocalFile())) is not None:
                return Path(url.toLocalFile())
        return None

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.settings.geometry = self.saveGeometry()
        self.settings.sync()
        self._stats_timer.stop()
        self.view_panel.set_fullscreen(False)
        self.session.close()  # finishes a recording: that matters more than a snappy exit
        super().closeEvent(event)
