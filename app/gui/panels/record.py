"""Record & share panel: Record / Stop, Snapshot, side by side, output folder, virtual camera."""
from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QCheckBox, QPushButton, QStyle

from app.gui.dialogs import pick_folder
from app.gui.panels.base import Panel, PanelContext
from app.gui.widgets import hint
from engine.session import Part

RECORD_TEXT, STOP_TEXT = "●  Record", "■  Stop"


class RecordPanel(Panel):
    parts = frozenset({Part.MODEL, Part.TARGET, Part.RECORDING, Part.VIRTUAL_CAMERA})

    def __init__(self, ctx: PanelContext) -> None:
        super().__init__(ctx, "Record & share")
        actions = ctx.actions
        self.record_button = QPushButton(RECORD_TEXT, objectName="Record")
        self.record_button.setCheckable(True)
        self.record_button.clicked.connect(actions.record.setChecked)
        self.snapshot_button = QPushButton("Snapshot")
        self.snapshot_button.setToolTip(actions.snapshot.toolTip())
        self.snapshot_button.clicked.connect(actions.snapshot.trigger)
        self.add_row(self.record_button, self.snapshot_button, stretch_first=True)
        self.side_by_side_box = QCheckBox("Side by side with the driver")
        self.side_by_side_box.setChecked(ctx.settings.side_by_side)
        self.side_by_side_box.toggled.connect(lambda on: setattr(ctx.settings, "side_by_side", on))
        self.add_row(self.side_by_side_box)
        self.output_dir_button = QPushButton()
        self.output_dir_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_DirIcon))
        self.output_dir_button.setStyleSheet("text-align: left;")
        self.output_dir_button.clicked.connect(self.choose_output_dir)
        self.add_row(self.output_dir_button)
        self.virtual_camera_box = QCheckBox("Virtual camera")
        self.virtual_camera_box.toggled.connect(self.session.set_virtual_camera)
        self.virtual_camera_hint = hint()
        self.add_row(self.virtual_camera_box)
        self.add_row(self.virtual_camera_hint)
        actions.record.toggled.connect(self._record_toggled)
        actions.snapshot.triggered.connect(self.snapshot)
        actions.output_dir.triggered.connect(self.choose_output_dir)
        self.render()

    def render(self) -> None:
        state, actions = self.session.state, self.ctx.actions
        recording = state.recorder is not None
        for widget in (self.record_button, self.snapshot_button, actions.record, actions.snapshot):
            widget.setEnabled(state.live or recording)
        for widget in (self.record_button, actions.record):
            widget.blockSignals(True)
            widget.setChecked(recording)
            widget.blockSignals(False)
        self.record_button.setText(STOP_TEXT if recording else RECORD_TEXT)
        self.record_button.setToolTip(actions.record.toolTip() if state.live else "Pick a target first")
        self.side_by_side_box.setEnabled(not recording)
        self._show_output_dir()
        self._show_virtual_camera()

    def _show_output_dir(self) -> None:
        folder = str(self.ctx.settings.output_dir)
        metrics = self.output_dir_button.fontMetrics()
        self.output_dir_button.setText(metrics.elidedText(folder, Qt.TextElideMode.ElideMiddle, 230))
        self.output_dir_button.setToolTip(f"Recordings and snapshots go to {folder}")

    def _show_virtual_camera(self) -> None:
        state = self.session.state
        on = state.virtual_camera is not None
        self.virtual_camera_box.blockSignals(True)
        self.virtual_camera_box.setChecked(on)
        self.virtual_camera_box.blockSignals(False)
        self.virtual_camera_box.setEnabled(state.virtual_camera_available and state.reenactor is not None)
        self.virtual_camera_box.setToolTip(state.virtual_camera_reason)
        self.virtual_camera_hint.setText("Shows the output to video-call apps." if state.virtual_camera_available
                                         else state.virtual_camera_reason)

    def _record_toggled(self, on: bool) -> None:
        if on:
            self.session.start_recording(self.ctx.settings.output_dir, self.side_by_side_box.isChecked())
        else:
            self.session.stop_recording()
        self.render()  # a recording that could not start un-checks the button

    def snapshot(self) -> None:
        self.session.snapshot(self.ctx.settings.output_dir, self.side_by_side_box.isChecked())

    def choose_output_dir(self) -> None:
        folder = pick_folder(self, "Folder for recordings and snapshots", str(self.ctx.settings.output_dir))
        if folder is not None:
            self.ctx.settings.output_dir = folder
            self._show_output_dir()
