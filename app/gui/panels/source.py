"""Source panel: which camera (or video file) drives the face, at which resolution, and what that means."""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QComboBox, QLabel

from app.gui.dialogs import open_file
from app.gui.panels.base import Panel, PanelContext
from app.gui.widgets import hint
from engine.session import Part

RESOLUTIONS = ["640x480", "1280x720", "1920x1080"]
VIDEO_FILTER = "Videos (*.mp4 *.mov *.mkv *.avi *.webm);;All files (*)"
NO_CAMERA = "No camera found. Plug one in (Mimic keeps looking) or use a video file."


def source_hint(spec: str | None, camera_indices: list[int], cameras_listed: bool) -> str:
    """The line under the source list: it describes the source in use, not just the camera list."""
    if spec is None:
        return "" if camera_indices or not cameras_listed else NO_CAMERA
    if not spec.isdigit():
        return f"Playing {Path(spec).name} in a loop as the camera."
    if not cameras_listed:
        return "Looking for cameras…"
    if int(spec) in camera_indices:
        return ""
    if camera_indices:
        return f"Camera {spec} is not connected; pick another one or a video file."
    return NO_CAMERA


class SourcePanel(Panel):
    parts = frozenset({Part.SOURCE, Part.CAMERAS})

    def __init__(self, ctx: PanelContext) -> None:
        super().__init__(ctx, "Source")
        self.combo = QComboBox()
        self.combo.setToolTip("Camera, or a video file played in a loop")
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(12)
        self.combo.activated.connect(self._picked)
        self.resolution_combo = QComboBox()
        self.resolution_combo.addItems(RESOLUTIONS)
        self.resolution_combo.setCurrentText(ctx.settings.resolution)
        self.resolution_combo.setToolTip("Requested camera resolution (the camera picks the nearest)")
        self.resolution_combo.activated.connect(self._resolution_picked)
        self.resolution_label = QLabel("Resolution")
        self.hint = hint()
        self.add_row(self.combo)
        self.add_row(self.resolution_label, self.resolution_combo, stretch_first=True)
        self.add_row(self.hint)
        ctx.actions.open_video.triggered.connect(self.open_video_dialog)

    @property
    def resolution(self) -> tuple[int, int]:
        width, height = (int(v) for v in self.resolution_combo.currentText().split("x"))
        return width, height

    def use(self, spec: str) -> bool:
        """Switch the session to camera index `spec` (digits) or a video file."""
        return self.session.use_source(spec, self.resolution)

    def render(self) -> None:
        state = self.session.state
        spec = state.source_spec
        if spec is not None:
            self.ctx.settings.source = spec
        camera = spec is None or spec.isdigit()
        self.resolution_combo.setVisible(camera)
        self.resolution_label.setVisible(camera)
        self._fill_combo(spec)
        self.hint.setText(source_hint(spec, [c.index for c in state.cameras], state.cameras_listed))

    def _fill_combo(self, spec: str | None) -> None:
        items = [(cam.name, str(cam.index)) for cam in self.session.state.cameras]
        if spec is not None and spec.isdigit() and all(value != spec for _, value in items):
            items.append((f"Camera {spec} (not found)", spec))
        if spec is not None and not spec.isdigit():
            items.append((f"▶ {Path(spec).name}", spec))
        items.append(("Video file…", ""))
        self.combo.blockSignals(True)
        self.combo.clear()
        for text, value in items:
            self.combo.addItem(text, value)
            self.combo.setItemData(self.combo.count() - 1, text, Qt.ItemDataRole.ToolTipRole)
        self.combo.setCurrentIndex(max(self.combo.findData(spec), 0))
        self.combo.blockSignals(False)

    def _picked(self, index: int) -> None:
        spec = self.combo.itemData(index)
        if spec == "":
            self.open_video_dialog()
        elif spec != self.session.state.source_spec:
            self.use(spec)

    def _resolution_picked(self, _index: int) -> None:
        self.ctx.settings.resolution = self.resolution_combo.currentText()
        spec = self.session.state.source_spec
        if spec is not None and spec.isdigit():
            self.use(spec)

    def open_video_dialog(self) -> None:
        path = open_file(self, "Use a video file as the source", VIDEO_FILTER)
        if path is not None:
            self.use(str(path))
        else:
            self.render()
