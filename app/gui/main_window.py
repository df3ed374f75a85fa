"""Mimic's main window: source, target, model and recording controls around the driver and output views.

The GUI thread only paints and reacts: capture and inference run in `engine.live`, loading,
inversion, snapshots and closing recordings run as `Job`s, encoding runs in `engine.recorder`.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressDialog,
    QPushButton,
    QSplitter,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.bridge import LiveBridge
from app.gui.gallery import TargetGallery
from app.gui.jobs import Job
from app.gui.settings import AppSettings, RecentTarget
from app.gui.video_view import VideoView
from app.gui.widgets import Banner, chip, hint, section_title
from engine.camera import CameraConfig, CameraInfo, CameraSource, FrameSource, SourceStatus, VideoFileSource, list_cameras
from engine.errors import MediaError
from engine.recorder import Layout, Recorder, RecorderStats, canvas_size, compose
from engine.reenactor import Reenactor, TargetSpec
from engine.video_io import read_image, write_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
LATENT_SUFFIXES = {".npy", ".pkl"}
RESOLUTIONS = ["640x480", "1280x720", "1920x1080"]

# Builds a reenactor: the model pack, or None for the weights-free landmark warp.
ReenactorFactory = Callable[[Path | None], Reenactor]


def reenactor_factory_for(runtime: str = "auto", device: str = "auto", precision: str = "auto") -> ReenactorFactory:
    """A factory that builds model packs with these runtime settings (see `python -m app render --help`)."""

    def create(weights: Path | None) -> Reenactor:
        from engine.factory import create_reenactor  # the StyleGAN path imports torch: only on a worker thread

        return create_reenactor(weights, runtime=runtime, device=device, precision=precision)

    return create


default_reenactor_factory = reenactor_factory_for()


@dataclass(frozen=True)
class LaunchOptions:
    source: str | None = None  # video file (looped) or camera index; None: the last one used
    weights: Path | None = None  # model pack; None: the last one used, else the landmark warp
    target: Path | None = None  # portrait or latent to start with; None: the last one used
    screenshot: Path | None = None  # save the window here once it is live, then quit


def target_kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "latent" if suffix in LATENT_SUFFIXES else None


class MainWindow(QMainWindow):
    target_applied = pyqtSignal(str)  # path of the target now animated (tests and status)
    recording_saved = pyqtSignal(object)  # RecorderStats

    def __init__(
        self,
        options: LaunchOptions = LaunchOptions(),
        settings: AppSettings | None = None,
        reenactor_factory: ReenactorFactory = default_reenactor_factory,
    ) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.options = options
        self.reenactor_factory = reenactor_factory
        self.reenactor: Reenactor | None = None
        self.model_pack: Path | None = None
        self.target: RecentTarget | None = None  # the target being animated
        self.target_spec: TargetSpec | None = None
        self.recorder: Recorder | None = None
        self.cameras: list[CameraInfo] = []
        self.virtual_camera_reason = "checking for a virtual camera…"
        self._target_job: Job | None = None
        self._model_job: Job | None = None
        self._progress: QProgressDialog | None = None
        self._pending_target: RecentTarget | None = None
        self._fullscreen_view: VideoView | None = None
        self._face_found = True
        self._last_points = None
        self._source_spec: str | None = None  # camera index (digits) or video file in use

        self.bridge = LiveBridge(mirror=self.settings.mirror)
        self.setWindowTitle("Mimic")
        self.setAcceptDrops(True)
        self._build_actions()
        self._build_ui()
        self._connect_bridge()
        self._restore_geometry()

        self._stats_timer = QTimer(self, interval=250, timeout=self._update_stats)
        self._stats_timer.start()
        self._start_source(options.source if options.source is not None else self.settings.source)
        self.bridge.pipeline.start()
        self._refresh_cameras()
        self._probe_virtual_camera()
        self.gallery.set_targets(self.settings.recent_targets)
        pack = options.weights if options.weights is not None else self.settings.model_pack
        if options.weights is None and pack is not None and not pack.is_file():
            pack = None  # the remembered pack is gone: start without weights
        first = options.target or (Path(self.settings.recent_targets[0].path) if self.settings.recent_targets else None)
        if first is not None and target_kind(first) and first.is_file():
            self._pending_target = RecentTarget(str(first), target_kind(first) or "image")
        self.load_model(pack)

    # ------------------------------------------------------------------ layout

    def _build_actions(self) -> None:
        def action(text: str, keys: list[str], slot, checkable: bool = False, tip: str = "") -> QAction:
            act = QAction(text, self)
            act.setShortcuts([QKeySequence(k) for k in keys])
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.setCheckable(checkable)
            act.setToolTip(f"{tip or text} ({' / '.join(keys)})" if keys else tip or text)
            (act.toggled if checkable else act.triggered).connect(slot)
            self.addAction(act)
            return act

        self.act_record = action("Record", ["R", "Ctrl+R"], self._on_record_toggled, checkable=True,
                                 tip="Start/stop recording the output to MP4")
        self.act_snapshot = action("Snapshot", ["S"], self.snapshot, tip="Save the current output as PNG")
        self.act_neutral = action("Re-take neutral", ["N"], self.retake_neutral,
                                  tip="Take the next driving frame as your neutral face")
        self.act_fullscreen = action("Fullscreen output", ["F11", "F"], self.toggle_fullscreen_output, checkable=True)
        self.act_mirror = action("Mirror", ["M"], self.set_mirror, checkable=True, tip="Mirror the camera image")
        self.act_landmarks = action("Landmarks", [], self._on_landmarks_toggled, checkable=True,
                                    tip="Draw the tracked face landmarks over the driver")
        self.act_open_target = action("Open target…", ["Ctrl+O"], self.open_target_dialog)
        self.act_random = action("Random identity", [], self.random_identity,
                                 tip="Invent a new face (needs a model pack)")
        self.act_load_pack = action("Load model pack…", ["Ctrl+L"], self.load_model_dialog)
        self.act_use_warp = action("Use landmark warp (no weights)", [], lambda: self.load_model(None))
        self.act_import = action("Import original weights…", [], self.import_weights_dialog)
        self.act_open_video = action("Use video file as source…", [], self.open_source_video_dialog)
        self.act_output_dir = action("Output folder…", [], self.choose_output_dir)
        self.act_quit = action("Quit", ["Ctrl+Q"], self.close)
        self.act_mirror.setChecked(self.settings.mirror)
        self.act_landmarks.setChecked(self.settings.landmarks)
        self.act_random.setEnabled(False)

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for act in (self.act_open_target, self.act_open_video, None, self.act_load_pack, self.act_import,
                    self.act_use_warp, None, self.act_output_dir, None, self.act_quit):
            file_menu.addSeparator() if act is None else file_menu.addAction(act)
        view_menu = menu.addMenu("&View")
        for act in (self.act_mirror, self.act_landmarks, self.act_neutral, self.act_fullscreen):
            view_menu.addAction(act)
        record_menu = menu.addMenu("&Record")
        record_menu.addAction(self.act_record)
        record_menu.addAction(self.act_snapshot)

    def _build_ui(self) -> None:
        sidebar = QFrame(objectName="Sidebar")
        sidebar.setFixedWidth(300)
        side = QVBoxLayout(sidebar)
        side.setContentsMargins(14, 10, 14, 14)
        side.setSpacing(6)

        # Source
        side.addWidget(section_title("Source"))
        self.source_combo = QComboBox()
        self.source_combo.setToolTip("Camera, or a video file played in a loop")
        self.source_combo.activated.connect(self._on_source_picked)
        self.resolution_combo = QComboBox()
        self.resolution_combo.addItems(RESOLUTIONS)
        self.resolution_combo.setCurrentText(self.settings.resolution)
        self.resolution_combo.setToolTip("Requested camera resolution (the camera picks the nearest)")
        self.resolution_combo.activated.connect(self._on_resolution_picked)
        row = QHBoxLayout()
        row.addWidget(self.source_combo, 1)
        row.addWidget(self.resolution_combo)
        side.addLayout(row)
        self.source_hint = hint()
        side.addWidget(self.source_hint)

        # Target
        side.addWidget(section_title("Target"))
        self.gallery = TargetGallery()
        self.gallery.chosen.connect(self.choose_target)
        self.gallery.setMinimumHeight(200)
        side.addWidget(self.gallery, 1)
        row = QHBoxLayout()
        self.open_button = QPushButton("Open…", objectName="Primary")
        self.open_button.setToolTip("A portrait photo, or a latent file (.npy / .pkl) — or drop one on the window")
        self.open_button.clicked.connect(self.open_target_dialog)
        self.random_button = QPushButton("Random identity")
        self.random_button.clicked.connect(self.random_identity)
        self.random_button.setEnabled(False)
        self.random_button.setToolTip("Needs a model pack (File → Load model pack…)")
        row.addWidget(self.open_button)
        row.addWidget(self.random_button)
        side.addLayout(row)
        side.addWidget(hint("Tip: drop a portrait or a latent file anywhere on the window."))

        # Model
        side.addWidget(section_title("Model"))
        self.model_label = QLabel("loading…")
        self.model_label.setWordWrap(True)
        side.addWidget(self.model_label)
        row = QHBoxLayout()
        load = QPushButton("Load pack…")
        load.clicked.connect(self.load_model_dialog)
        imp = QPushButton("Import weights…")
        imp.clicked.connect(self.import_weights_dialog)
        row.addWidget(load)
        row.addWidget(imp)
        side.addLayout(row)

        # Output
        side.addWidget(section_title("Record & share"))
        row = QHBoxLayout()
        self.record_button = QPushButton("●  Record", objectName="Record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip(self.act_record.toolTip())
        self.record_button.clicked.connect(lambda checked: self.act_record.setChecked(checked))
        self.snapshot_button = QPushButton("Snapshot")
        self.snapshot_button.setToolTip(self.act_snapshot.toolTip())
        self.snapshot_button.clicked.connect(self.snapshot)
        row.addWidget(self.record_button, 1)
        row.addWidget(self.snapshot_button)
        side.addLayout(row)
        self.side_by_side_box = QCheckBox("Side by side with the driver")
        self.side_by_side_box.setChecked(self.settings.side_by_side)
        self.side_by_side_box.toggled.connect(lambda on: setattr(self.settings, "side_by_side", on))
        side.addWidget(self.side_by_side_box)
        self.output_dir_button = QPushButton()
        self.output_dir_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_DirIcon))
        self.output_dir_button.setToolTip("Where recordings and snapshots go")
        self.output_dir_button.setStyleSheet("text-align: left;")
        self.output_dir_button.clicked.connect(self.choose_output_dir)
        side.addWidget(self.output_dir_button)
        self._show_output_dir()
        self.virtual_camera_box = QCheckBox("Virtual camera")
        self.virtual_camera_box.setEnabled(False)
        self.virtual_camera_box.toggled.connect(self.set_virtual_camera)
        self.virtual_camera_hint = hint(self.virtual_camera_reason)
        side.addWidget(self.virtual_camera_box)
        side.addWidget(self.virtual_camera_hint)

        # Views
        self.driver_view = VideoView("DRIVER", "Waiting for the camera…")
        self.output_view = VideoView("OUTPUT", "Pick a target: Open…, the gallery, or drop a portrait here")
        views = QSplitter(Qt.Orientation.Horizontal)
        views.addWidget(self.driver_view)
        views.addWidget(self.output_view)
        views.setStretchFactor(0, 2)
        views.setStretchFactor(1, 3)
        views.setSizes([420, 640])
        views.setChildrenCollapsible(False)

        toolbar = QHBoxLayout()
        toolbar.setSpacing(6)
        for act in (self.act_mirror, self.act_landmarks, self.act_neutral, self.act_fullscreen):
            button = QToolButton()
            button.setDefaultAction(act)
            toolbar.addWidget(button)
        toolbar.addStretch(1)
        self.rec_chip = QLabel(objectName="RecChip")
        self.rec_chip.hide()
        toolbar.addWidget(self.rec_chip)

        self.banner = Banner()
        main = QWidget()
        main_layout = QVBoxLayout(main)
        main_layout.setContentsMargins(12, 10, 12, 10)
        main_layout.setSpacing(8)
        main_layout.addLayout(toolbar)
        main_layout.addWidget(self.banner)
        main_layout.addWidget(views, 1)

        root = QWidget()
        layout = QHBoxLayout(root)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(sidebar)
        layout.addWidget(main, 1)
        self.setCentralWidget(root)

        # Status bar: always-visible figures
        self.fps_chip = chip("– fps", "Output frames per second (camera frames per second)")
        self.latency_chip = chip("– ms", "End-to-end latency: camera capture → output ready")
        self.device_chip = chip("", "Reenactor · runtime · device · precision")
        self.source_chip = chip("", "Driving source")
        bar = self.statusBar()
        bar.setSizeGripEnabled(False)
        for widget in (self.fps_chip, self.latency_chip, self.source_chip):
            bar.addWidget(widget)
        bar.addPermanentWidget(self.device_chip)
        self._update_record_controls()

    def _connect_bridge(self) -> None:
        self.bridge.frame_ready.connect(self._show_driver_frame)
        self.bridge.result_ready.connect(self._show_result)
        self.bridge.status_changed.connect(self._on_source_status)
        self.bridge.drive_failed.connect(lambda message: self.banner.show_message("error", message))
        self.bridge.recording_failed.connect(self._on_recording_failed)

    def _restore_geometry(self) -> None:
        geometry = self.settings.geometry
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1440, 860)

    # ------------------------------------------------------------------ live display

    def _show_driver_frame(self) -> None:
        frame = self.bridge.take_frame()
        if frame is None:
            return
        points = self._last_points if self.act_landmarks.isChecked() else None
        self.driver_view.set_frame(frame, points)

    def _show_result(self) -> None:
        live = self.bridge.take_result()
        if live is None:
            return
        result = live.result
        self._face_found = result.face_found
        self._last_points = result.driver_landmarks if result.face_found else None
        self.output_view.set_frame(result.image)
        self.output_view.set_message("")
        badge = "" if result.face_found else "NO FACE"
        self.output_view.set_badge(badge)
        self.driver_view.set_badge(badge)
        if self._fullscreen_view is not None:
            self._fullscreen_view.set_frame(result.image)

    def _on_source_status(self, status: SourceStatus) -> None:
        self.source_chip.setText(status.message)
        self.driver_view.set_message("" if status.ok else status.message)
        if not status.ok:
            self.driver_view.set_badge("")

    def _screenshot_when_live(self) -> None:
        """--screenshot: once the output (or, with no target to load, the driver) has shown frames, save and quit."""
        path = self.options.screenshot
        if path is None or self._model_job is not None or self._target_job is not None:
            return
        waiting_for_target = self._pending_target is not None or self.target_spec is not None
        view = self.output_view if waiting_for_target else self.driver_view
        if view.frames_shown < 5:
            return
        self.options = LaunchOptions(self.options.source, self.options.weights, self.options.target)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.grab().save(str(path)):
            log.error("cannot save the screenshot to %s", path)
        self.close()

    def _update_stats(self) -> None:
        self._screenshot_when_live()
        stats = self.bridge.pipeline.stats()
        if self.reenactor is not None and self.bridge.pipeline.reenactor is not None:
            self.fps_chip.setText(f"{stats.fps:.1f} fps  (camera {stats.capture_fps:.0f})")
            self.latency_chip.setText(f"latency {stats.latency_ms:.0f} ms" if stats.latency_ms else "latency –")
        else:
            self.fps_chip.setText(f"camera {stats.capture_fps:.0f} fps")
            self.latency_chip.setText("latency –")
        if self.recorder is not None:
            seconds = int(self.recorder.elapsed_s)
            dropped = f"  · {self.recorder.dropped} dropped" if self.recorder.dropped else ""
            self.rec_chip.setText(f"● REC  {seconds // 60:02d}:{seconds % 60:02d}{dropped}")

    # ------------------------------------------------------------------ source

    def _start_source(self, spec: str) -> None:
        """Switch to camera index `spec` (digits) or a video file; failures become a message."""
        try:
            if spec.isdigit():
                width, height = (int(v) for v in self.resolution_combo.currentText().split("x"))
                source: FrameSource = CameraSource(CameraConfig(device=int(spec), resolution=(width, height)))
            else:
                source = VideoFileSource(Path(spec))
        except MediaError as exc:
            self.banner.show_message("error", str(exc))
            self.driver_view.set_message(str(exc))
            return
        self.settings.source = spec
        self._source_spec = spec
        self.resolution_combo.setVisible(spec.isdigit())
        self.driver_view.clear()
        self.driver_view.set_message("")
        self.source_chip.setText(source.name)
        self.bridge.pipeline.set_source(source)
        self._fill_source_combo()

    def _fill_source_combo(self) -> None:
        self.source_combo.blockSignals(True)
        self.source_combo.clear()
        for cam in self.cameras:
            self.source_combo.addItem(f"{cam.name}", str(cam.index))
        spec = self._source_spec
        if spec is not None and spec.isdigit() and all(str(c.index) != spec for c in self.cameras):
            self.source_combo.addItem(f"Camera {spec} (not found)", spec)
        if spec is not None and not spec.isdigit():
            self.source_combo.addItem(f"▶ {Path(spec).name}", spec)
        self.source_combo.addItem("Video file…", "")
        index = self.source_combo.findData(spec)
        self.source_combo.setCurrentIndex(max(index, 0))
        self.source_combo.blockSignals(False)
        self.source_hint.setText("" if self.cameras else "No camera found. Plug one in (Mimic keeps looking) or use a video file.")

    def _on_source_picked(self, index: int) -> None:
        spec = self.source_combo.itemData(index)
        if spec == "":
            self.open_source_video_dialog()
        elif spec != self._source_spec:
            self._start_source(spec)

    def _on_resolution_picked(self, _index: int) -> None:
        self.settings.resolution = self.resolution_combo.currentText()
        spec = self._source_spec
        if spec is not None and spec.isdigit():
            self._start_source(spec)

    def _refresh_cameras(self) -> None:
        job = Job("camera list", lambda progress, cancel: list_cameras())
        job.succeeded.connect(self._on_cameras)
        job.start()

    def _on_cameras(self, cameras: list[CameraInfo]) -> None:
        self.cameras = cameras
        self._fill_source_combo()

    def open_source_video_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Use a video file as the source", "",
                                              "Videos (*.mp4 *.mov *.mkv *.avi *.webm);;All files (*)")
        if path:
            self._start_source(path)
        else:
            self._fill_source_combo()

    def set_mirror(self, on: bool) -> None:
        self.bridge.pipeline.mirror = on
        self.settings.mirror = on

    def _on_landmarks_toggled(self, on: bool) -> None:
        self.settings.landmarks = on

    def retake_neutral(self) -> None:
        self.bridge.pipeline.retake_neutral()
        self.banner.show_message("info", "Neutral face re-taken from the next frame.", 3000)

    # ------------------------------------------------------------------ model

    def load_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a Mimic model pack", "",
                                              "Mimic model packs (*.safetensors);;All files (*)")
        if path:
            self.load_model(Path(path))

    def load_model(self, pack: Path | None) -> None:
        """Build the reenactor for `pack` (None: landmark warp) in the background, then switch to it."""
        if self._model_job is not None:
            self._model_job.cancel()
        spec = self.target_spec
        factory = self.reenactor_factory
        what = pack.name if pack else "landmark warp"

        def work(progress, cancel):
            progress(0.0, f"loading {what}…")
            reenactor = factory(pack)
            if spec is not None and not cancel.is_set():
                reenactor.set_target(spec, progress, cancel)
            return reenactor

        self.model_label.setText(f"Loading {what}…")
        job = Job("load model", work)
        job.succeeded.connect(lambda reenactor: self._on_model_loaded(reenactor, pack, spec))
        job.failed.connect(lambda message: self._on_model_failed(message, pack))
        job.cancelled.connect(self._show_model)
        self._model_job = job
        self._track_progress(job, f"Loading {what}")
        job.start()

    def _on_model_loaded(self, reenactor: Reenactor, pack: Path | None, spec: TargetSpec | None) -> None:
        self.reenactor = reenactor
        self.model_pack = pack
        self.settings.model_pack = pack  # the next launch starts with the same choice
        self._model_job = None
        self.bridge.pipeline.reenactor = reenactor if spec is not None else None
        if spec is None:
            self.output_view.clear()
        self._show_model()
        if pack is not None:
            self.banner.show_message("success", f"Model ready: {reenactor.describe()}", 4000)
        if self._pending_target is not None:
            target, self._pending_target = self._pending_target, None
            self.choose_target(target)

    def _on_model_failed(self, message: str, pack: Path | None) -> None:
        self._model_job = None
        self.banner.show_message("error", message)
        if self.reenactor is None and pack is not None:
            self.load_model(None)  # nothing running yet: fall back to the weights-free warp
        else:
            self._show_model()

    def _show_model(self) -> None:
        if self.reenactor is None:
            self.model_label.setText("No model loaded")
            self.device_chip.setText("no model")
            return
        describe = self.reenactor.describe()
        self.model_label.setText(describe)
        self.device_chip.setText(describe)
        self.act_random.setEnabled(self.model_pack is not None)
        self.random_button.setEnabled(self.model_pack is not None)
        self.random_button.setToolTip("Invent a new face" if self.model_pack else
                                      "Needs a model pack (File → Load model pack…)")
        self._update_record_controls()

    def import_weights_dialog(self) -> None:
        from app.gui.import_dialog import ImportWeightsDialog

        dialog = ImportWeightsDialog(self)
        dialog.imported.connect(self.load_model)
        dialog.open()

    # ------------------------------------------------------------------ target

    def open_target_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a target portrait or latent", "",
            "Portraits and latents (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff *.npy *.pkl);;All files (*)",
        )
        if path:
            self.choose_target_file(Path(path))

    def choose_target_file(self, path: Path) -> None:
        kind = target_kind(path)
        if kind is None:
            self.banner.show_message("error", f"{path.name}: not a portrait image or a latent file (.npy / .pkl)")
            return
        self.choose_target(RecentTarget(str(path), kind))

    def random_identity(self) -> None:
        if self.model_pack is None:
            return
        seed = random.randrange(2**31)
        self._apply_target(TargetSpec.random(seed), None, f"random identity #{seed}")

    def choose_target(self, target: RecentTarget) -> None:
        """Animate `target` (inverted in the background; the previous target keeps running meanwhile)."""
        if self.reenactor is None:
            if self._model_job is None:
                self.banner.show_message("error", "No model is loaded: File → Load model pack…, "
                                                  "or File → Use landmark warp (no weights)")
                return
            self._pending_target = target  # applied once the model is loaded
            return
        path = Path(target.path)
        if not path.is_file():
            self.settings.forget_target(target.path)
            self.gallery.set_targets(self.settings.recent_targets, self.target.path if self.target else None)
            self.banner.show_message("error", f"target not found: {path}")
            return
        self._apply_target(None, target, path.name)

    def _apply_target(self, spec: TargetSpec | None, target: RecentTarget | None, label: str) -> None:
        if self._target_job is not None:
            self._target_job.cancel()
        reenactor = self.reenactor
        assert reenactor is not None

        def work(progress, cancel):
            nonlocal spec
            image = None
            if spec is None:
                assert target is not None
                path = Path(target.path)
                if target.kind == "image":
                    image = read_image(path)
                    spec = TargetSpec.from_image(image, path)
                else:
                    spec = TargetSpec.from_latent(path)
            reenactor.set_target(spec, progress, cancel)
            return spec, image

        job = Job("set target", work)
        job.succeeded.connect(lambda out: self._on_target_ready(reenactor, target, label, *out))
        job.failed.connect(lambda message: self.banner.show_message("error", message))
        job.cancelled.connect(lambda: self.banner.show_message("info", f"Cancelled: {label}", 3000))
        job.finished.connect(lambda: setattr(self, "_target_job", None) if self._target_job is job else None)
        self._target_job = job
        self._track_progress(job, f"Preparing {label}")
        job.start()

    def _on_target_ready(self, reenactor: Reenactor, target: RecentTarget | None, label: str,
                         spec: TargetSpec, image) -> None:
        if reenactor is not self.reenactor:
            return  # the model was switched meanwhile; it re-applies the current target itself
        self.target_spec = spec
        self.target = target
        if target is not None:
            if image is not None:
                self.gallery.add_thumbnail(target.path, image)
            self.gallery.set_targets(self.settings.remember_target(target), target.path)
        self.bridge.pipeline.reenactor = reenactor
        self.output_view.set_message("")
        self.setWindowTitle(f"Mimic — {label}")
        self._update_record_controls()
        self.target_applied.emit(target.path if target else label)

    def _track_progress(self, job: Job, title: str) -> None:
        """A cancellable progress dialog that appears only if the job takes a while."""
        dialog = QProgressDialog(title, "Cancel", 0, 100, self)
        dialog.setWindowTitle("Mimic")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(600)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.setValue(0)
        dialog.canceled.connect(job.cancel)

        def on_progress(fraction: float, message: str) -> None:
            dialog.setLabelText(f"{title}\n{message}" if message else title)
            dialog.setValue(min(99, round(fraction * 100)))

        job.progress.connect(on_progress)
        job.finished.connect(dialog.deleteLater)
        job.finished.connect(dialog.close)
        self._progress = dialog

    # ------------------------------------------------------------------ recording & sharing

    def _update_record_controls(self) -> None:
        ready = self.reenactor is not None and self.target_spec is not None
        for widget in (self.record_button, self.snapshot_button):
            widget.setEnabled(ready)
        self.act_record.setEnabled(ready)
        self.act_snapshot.setEnabled(ready)
        if not ready:
            self.record_button.setToolTip("Pick a target first")

    def _on_record_toggled(self, on: bool) -> None:
        self.record_button.setChecked(on)
        if on and self.recorder is None:
            self.start_recording()
        elif not on and self.recorder is not None:
            self.stop_recording()

    def start_recording(self) -> None:
        if self.reenactor is None or self.target_spec is None:
            self._set_record_checked(False)
            return
        folder = self.settings.output_dir
        path = folder / time.strftime("mimic-%Y%m%d-%H%M%S.mp4")
        side_by_side = self.side_by_side_box.isChecked()
        driver = self.bridge.latest_frame
        try:
            folder.mkdir(parents=True, exist_ok=True)
            recorder = Recorder(
                path,
                Layout.SIDE_BY_SIDE if side_by_side and driver is not None else Layout.OUTPUT,
                output_size=self.reenactor.output_size,
                driver_size=(driver.shape[1], driver.shape[0]) if driver is not None else None,
                fps_hint=max(1.0, round(self.bridge.pipeline.stats().fps) or 30.0),
                on_error=self.bridge.recording_failed.emit,
            )
        except (MediaError, OSError) as exc:
            message = str(exc) if isinstance(exc, MediaError) else f"cannot record to {folder}: {exc.strerror or exc}"
            self.banner.show_message("error", message)
            self._set_record_checked(False)
            return
        self.recorder = recorder
        self.bridge.start_recording(recorder)
        self.rec_chip.show()
        self.side_by_side_box.setEnabled(False)
        self._update_stats()

    def stop_recording(self) -> None:
        recorder = self.bridge.stop_recording()
        self.recorder = None
        self.rec_chip.hide()
        self.side_by_side_box.setEnabled(True)
        self._set_record_checked(False)
        if recorder is None:
            return
        job = Job("finish recording", lambda progress, cancel: recorder.stop())
        job.succeeded.connect(self._on_recording_saved)
        job.failed.connect(lambda message: self.banner.show_message("error", message))
        job.start()

    def _on_recording_saved(self, stats: RecorderStats) -> None:
        if stats.error is None:
            dropped = f", {stats.frames_dropped} frames dropped" if stats.frames_dropped else ""
            self.banner.show_message("success", f"Saved {stats.duration_s:.1f} s ({stats.frames_written} frames"
                                                f"{dropped}) to {stats.path}")
        self.recording_saved.emit(stats)

    def _on_recording_failed(self, message: str) -> None:
        self.banner.show_message("error", message)
        if self.recorder is not None:
            self.stop_recording()

    def _set_record_checked(self, on: bool) -> None:
        for widget in (self.act_record, self.record_button):
            widget.blockSignals(True)
            widget.setChecked(on)
            widget.blockSignals(False)

    def snapshot(self) -> None:
        live = self.bridge.latest
        if live is None:
            self.banner.show_message("warning", "Nothing to save yet: pick a target first.", 4000)
            return
        layout = Layout.SIDE_BY_SIDE if self.side_by_side_box.isChecked() else Layout.OUTPUT
        folder = self.settings.output_dir
        path = folder / time.strftime("mimic-%Y%m%d-%H%M%S.png")
        size = canvas_size(layout, live.result.image.shape[1::-1], live.driver.shape[1::-1])

        def work(progress, cancel):
            folder.mkdir(parents=True, exist_ok=True)
            return write_image(path, compose(layout, live.result.image, live.driver, size))

        job = Job("snapshot", work)
        job.succeeded.connect(lambda saved: self.banner.show_message("success", f"Snapshot saved to {saved}", 5000))
        job.failed.connect(lambda message: self.banner.show_message("error", message))
        job.start()

    def choose_output_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for recordings and snapshots",
                                                  str(self.settings.output_dir))
        if folder:
            self.settings.output_dir = Path(folder)
            self._show_output_dir()

    def _show_output_dir(self) -> None:
        folder = str(self.settings.output_dir)
        metrics = self.output_dir_button.fontMetrics()
        self.output_dir_button.setText(metrics.elidedText(folder, Qt.TextElideMode.ElideMiddle, 230))
        self.output_dir_button.setToolTip(f"Recordings and snapshots go to {folder}")

    def _probe_virtual_camera(self) -> None:
        from engine.virtual_camera import probe_virtual_camera

        job = Job("virtual camera probe", lambda progress, cancel: probe_virtual_camera())
        job.succeeded.connect(lambda out: self._on_virtual_camera_probe(*out))
        job.start()

    def _on_virtual_camera_probe(self, available: bool, reason: str) -> None:
        self.virtual_camera_reason = reason
        self.virtual_camera_box.setEnabled(available)
        self.virtual_camera_box.setToolTip(reason)
        self.virtual_camera_hint.setText(reason if not available else "Shows the output to video-call apps.")
        self.virtual_camera_hint.setToolTip(reason)

    def set_virtual_camera(self, on: bool) -> None:
        from engine.virtual_camera import VirtualCamera

        camera = self.bridge.virtual_camera
        if camera is not None:
            self.bridge.virtual_camera = None
            camera.close()
        if on:
            if self.reenactor is None:
                self.virtual_camera_box.setChecked(False)
                return
            try:
                self.bridge.virtual_camera = VirtualCamera(self.reenactor.output_size)
            except MediaError as exc:
                self.banner.show_message("error", str(exc))
                self.virtual_camera_box.setChecked(False)

    # ------------------------------------------------------------------ fullscreen

    def toggle_fullscreen_output(self, on: bool | None = None) -> None:
        on = self._fullscreen_view is None if on is None else on
        if on and self._fullscreen_view is None:
            view = VideoView("OUTPUT", "Waiting for output…")
            view.setWindowTitle("Mimic — output")
            for act in (self.act_fullscreen, self.act_record, self.act_snapshot, self.act_mirror, self.act_neutral):
                view.addAction(act)
            escape = QAction(view, shortcut=QKeySequence("Escape"))
            escape.triggered.connect(lambda: self.act_fullscreen.setChecked(False))
            view.addAction(escape)
            if self.output_view.current_image() is not None and self.bridge.latest is not None:
                view.set_frame(self.bridge.latest.result.image)
            view.showFullScreen()
            self._fullscreen_view = view
        elif not on and self._fullscreen_view is not None:
            self._fullscreen_view.close()
            self._fullscreen_view.deleteLater()
            self._fullscreen_view = None
        if self.act_fullscreen.isChecked() != on:
            self.act_fullscreen.setChecked(on)

    # ------------------------------------------------------------------ drag & drop, shutdown

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if self._dropped_path(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        path = self._dropped_path(event)
        if path is not None:
            event.acceptProposedAction()
            self.choose_target_file(path)

    @staticmethod
    def _dropped_path(event) -> Path | None:
        for url in event.mimeData().urls():
            if url.isLocalFile() and target_kind(Path(url.toLocalFile())) is not None:
                return Path(url.toLocalFile())
        return None

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.settings.geometry = self.saveGeometry()
        self.settings.sync()
        for job in (self._target_job, self._model_job):
            if job is not None:
                job.cancel()
        recorder = self.bridge.stop_recording()
        if recorder is not None:
            recorder.stop()  # finishing the file matters more than a snappy exit
        self.set_virtual_camera(False)
        self.toggle_fullscreen_output(False)
        self.bridge.pipeline.stop()
        super().closeEvent(event)
