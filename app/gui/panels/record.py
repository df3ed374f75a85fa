"""Record & share panel: Record / Stop, Snapshot, sound (microphone picker + level meter), side by side,
output folder, virtual camera."""
from __future__ import annotations

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtWidgets import QCheckBox, QComboBox, QLabel, QProgressBar, QPushButton, QStyle

from app.gui.dialogs import pick_folder
from app.gui.panels.base import Panel, PanelContext
from app.gui.widgets import hint
from engine.media.audio import NO_AUDIO, SOURCE_AUDIO
from engine.session import Part, SessionState

RECORD_TEXT, STOP_TEXT = "●  Record", "■  Stop"
METER_FLOOR_DB = -60.0  # the level meter's empty end


def sound_choices(state: SessionState) -> dict[str, str]:
    """The microphone picker's entries: setting value → what the user reads."""
    default = "Default microphone" if state.microphones else "Default microphone (none found)"
    choices = {NO_AUDIO: "No sound", "default": default}
    for mic in state.microphones:
        choices.setdefault(mic.name, mic.name)  # PortAudio may call a device "default", too
    if state.source_spec is not None and not state.source_spec.isdigit():
        choices[SOURCE_AUDIO] = "The video's own sound"
    if state.audio_spec not in choices:
        choices[state.audio_spec] = f"{state.audio_spec} (not connected)"
    return choices


class RecordPanel(Panel):
    parts = frozenset({Part.MODEL, Part.TARGET, Part.RECORDING, Part.VIRTUAL_CAMERA, Part.AUDIO, Part.SOURCE})

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
        self.sound_combo = QComboBox(objectName="Microphone")
        self.sound_combo.setToolTip("Where recordings take their sound from")
        self.sound_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.sound_combo.setMinimumContentsLength(12)
        self.sound_combo.activated.connect(self._sound_picked)
        self.add_row(QLabel("Sound"), self.sound_combo)
        self.level_meter = QProgressBar(objectName="LevelMeter")
        self.level_meter.setRange(0, 100)
        self.level_meter.setTextVisible(False)
        self.level_meter.setMaximumHeight(6)
        self.sound_hint = hint()
        self.add_row(self.level_meter)
        self.add_row(self.sound_hint)
        self._meter_timer = QTimer(self, interval=50, timeout=self._show_level)
        self._meter_timer.start()
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
        self._show_sound(recording)
        self._show_output_dir()
        self._show_virtual_camera()

    def _show_sound(self, recording: bool) -> None:
        state = self.session.state
        self.sound_combo.blockSignals(True)
        self.sound_combo.clear()
        for value, label in sound_choices(state).items():
            self.sound_combo.addItem(label, value)
        self.sound_combo.setCurrentIndex(max(0, self.sound_combo.findData(state.audio_spec)))
        self.sound_combo.blockSignals(False)
        self.sound_combo.setEnabled(not recording)  # the sound of a recording does not change midway
        self.level_meter.setVisible(state.audio is not None)
        self.sound_hint.setText(state.audio_message)

    def _sound_picked(self, index: int) -> None:
        value = self.sound_combo.itemData(index)
        self.ctx.settings.audio = value
        self.session.use_audio(value)

    def _show_level(self) -> None:
        state, level = self.session.state, self.session.audio_level_db()
        if state.audio is None or level is None:
            return
        text = state.audio_message if state.audio.status.ok else state.audio.status.message  # e.g. lost
        if self.sound_hint.text() != text:
            self.sound_hint.setText(text)
        self.level_meter.setValue(round(100 * max(0.0, 1.0 - level / METER_FLOOR_DB)))

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
