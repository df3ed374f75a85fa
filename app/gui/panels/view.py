"""View panel: driver and output side by side, the view toolbar, the message banner, fullscreen output."""
from __future__ import annotations

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QKeyEvent
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QSplitter, QToolButton

from app.gui.bridge import LiveFeed
from app.gui.panels.base import Panel, PanelContext
from app.gui.video_view import VideoView
from app.gui.widgets import Banner
from engine.session import Event, Notice, Part

ESC_HINT = "Esc leaves fullscreen"
ESC_HINT_MS = 5000


class FullscreenOutput(VideoView):
    """The output alone, fullscreen; Esc calls `leave`."""

    def __init__(self, leave) -> None:
        super().__init__("", "Waiting for output…")
        self.leave = leave
        self.setWindowTitle("Mimic — output")

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt naming)
        if event.key() == Qt.Key.Key_Escape:
            self.leave()
        else:
            super().keyPressEvent(event)


class ViewPanel(Panel):
    parts = frozenset({Part.SOURCE, Part.TARGET, Part.RECORDING})

    def __init__(self, ctx: PanelContext, feed: LiveFeed) -> None:
        super().__init__(ctx, "")
        self.feed = feed
        self.rows.setContentsMargins(12, 10, 12, 10)
        self.rows.setSpacing(8)
        self._build_toolbar()
        self.banner = Banner()
        self.rows.addWidget(self.banner)
        self.driver_view = VideoView("DRIVER", "Waiting for the camera…")
        self.output_view = VideoView("OUTPUT", "Pick a target: Open…, the gallery, or drop a portrait here")
        views = QSplitter(Qt.Orientation.Horizontal)
        views.addWidget(self.driver_view)
        views.addWidget(self.output_view)
        views.setStretchFactor(0, 2)
        views.setStretchFactor(1, 3)
        views.setSizes([420, 640])
        views.setChildrenCollapsible(False)
        self.rows.addWidget(views, 1)
        self.fullscreen_view: FullscreenOutput | None = None
        feed.frame_ready.connect(self._show_driver_frame)
        feed.result_ready.connect(self._show_result)
        actions = ctx.actions
        actions.mirror.setChecked(ctx.session.state.mirror)
        actions.landmarks.setChecked(ctx.settings.landmarks)
        actions.mirror.toggled.connect(self._mirror_toggled)
        actions.landmarks.toggled.connect(lambda on: setattr(ctx.settings, "landmarks", on))
        actions.neutral.triggered.connect(self.session.retake_neutral)
        actions.fullscreen.toggled.connect(self.set_fullscreen)

    def _build_toolbar(self) -> None:
        toolbar = QHBoxLayout()
        toolbar.setSpacing(6)
        actions = self.ctx.actions
        for act in (actions.mirror, actions.landmarks, actions.neutral, actions.fullscreen):
            button = QToolButton()
            button.setDefaultAction(act)
            toolbar.addWidget(button)
        toolbar.addStretch(1)
        self.rec_chip = QLabel(objectName="RecChip")
        self.rec_chip.hide()
        toolbar.addWidget(self.rec_chip)
        self.rows.addLayout(toolbar)

    # ------------------------------------------------------------------ state

    def render(self) -> None:
        state = self.session.state
        self._sync_mirror()
        status = state.source_status
        self.driver_view.set_message("" if status is None or status.ok else status.message)
        if status is not None and not status.ok:
            self.driver_view.set_badge("")
        if state.source_status is None:
            self.driver_view.clear()
        if state.reenactor is not None and state.target_spec is None:
            self.output_view.clear()
        self.rec_chip.setVisible(state.recorder is not None)
        self.tick()

    def on_event(self, event: Event) -> None:
        if isinstance(event, Notice):
            self.banner.show_message(event.kind, event.text, event.timeout_ms)

    def tick(self) -> None:
        """Update the recording clock (called by the window's stats timer)."""
        recorder = self.session.state.recorder
        if recorder is not None:
            seconds = int(recorder.elapsed_s)
            dropped = f"  · {recorder.dropped} dropped" if recorder.dropped else ""
            self.rec_chip.setText(f"● REC  {seconds // 60:02d}:{seconds % 60:02d}{dropped}")

    def _mirror_toggled(self, on: bool) -> None:
        self.session.set_mirror(on)
        self.ctx.settings.set_mirror_for(self.session.state.source_spec, on)

    def _sync_mirror(self) -> None:
        """The mirror setting of the source's kind (camera: on by default; video file: off)."""
        spec = self.session.state.source_spec
        if spec is None:
            return
        on = self.ctx.settings.mirror_for(spec)
        if self.session.state.mirror != on:
            self.session.set_mirror(on)
        act = self.ctx.actions.mirror
        if act.isChecked() != on:
            act.blockSignals(True)
            act.setChecked(on)
            act.blockSignals(False)

    # ------------------------------------------------------------------ frames

    def _show_driver_frame(self) -> None:
        frame = self.feed.take_frame()
        if frame is not None and not self._tracking_view():
            self.driver_view.set_frame(frame)

    def _tracking_view(self) -> bool:
        """Landmarks on while a model runs: the driver view shows the frames the model tracked, each with
        its own landmarks (at the model's rate), never one frame's landmarks over a newer frame."""
        return self.ctx.actions.landmarks.isChecked() and self.session.state.live

    def _show_result(self) -> None:
        live = self.feed.take_result()
        if live is None:
            return
        result = live.result
        if self._tracking_view():
            self.driver_view.set_frame(live.driver, result.driver_landmarks if result.face_found else None)
        self.output_view.set_frame(result.image)
        self.output_view.set_message("")
        badge = "" if result.face_found else "NO FACE"
        self.output_view.set_badge(badge)
        self.driver_view.set_badge(badge)
        if self.fullscreen_view is not None:
            self.fullscreen_view.set_frame(result.image)

    # ------------------------------------------------------------------ fullscreen

    def set_fullscreen(self, on: bool) -> None:
        """The output alone on the window's screen; Esc (or F / F11) leaves."""
        if on and self.fullscreen_view is None:
            self.fullscreen_view = self._open_fullscreen()
        elif not on and self.fullscreen_view is not None:
            self.fullscreen_view.close()
            self.fullscreen_view.deleteLater()
            self.fullscreen_view = None
            window = self.window()  # the keys (R, S, Ctrl+Q, …) go to the main window again, no click needed
            window.raise_()
            window.activateWindow()
        if self.ctx.actions.fullscreen.isChecked() != on:
            self.ctx.actions.fullscreen.setChecked(on)

    def _open_fullscreen(self) -> FullscreenOutput:
        view = FullscreenOutput(leave=lambda: self.set_fullscreen(False))
        actions = self.ctx.actions
        for act in (actions.fullscreen, actions.record, actions.snapshot, actions.mirror, actions.neutral):
            view.addAction(act)
        if self.output_view.has_frame and self.session.latest is not None:
            view.set_frame(self.session.latest.result.image)
        view.set_footer(ESC_HINT)
        QTimer(view, singleShot=True, interval=ESC_HINT_MS, timeout=lambda: view.set_footer("")).start()
        screen = self.window().screen()
        view.setGeometry(screen.geometry())  # without a window manager showFullScreen() alone keeps the size hint
        view.showFullScreen()
        return view
