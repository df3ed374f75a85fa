"""The app's persisted settings (QSettings), with types and defaults in one place."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from typing import Any

from PyQt6.QtCore import QByteArray, QSettings, QStandardPaths

from engine.session import TargetRef

MAX_RECENT_TARGETS = 12


RecentTarget = TargetRef  # a gallery entry: path + kind


def default_output_dir() -> Path:
    videos = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MoviesLocation)
    return Path(videos or Path.home()) / "Mimic"


class AppSettings:
    """Typed access to QSettings; every setter writes through."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else QSettings("Mimic", "Mimic")

    def _get(self, key: str, default, kind: type):
        value = self.store.value(key, default)
        if kind is bool:
            return value in (True, "true", "1", 1)
        try:
            return kind(value)
        except (TypeError, ValueError):
            return default

    # -- view
    @property
    def mirror(self) -> bool:
        return self._get("view/mirror", True, bool)

    @mirror.setter
    def mirror(self, value: bool) -> None:
        self.store.setValue("view/mirror", bool(value))

    # A camera is mirrored by default (a mirror is what people expect to see of themselves); a video
    # file is not (its recordings must not come out flipped). Each kind remembers its own choice.
    def mirror_for(self, source: str | None) -> bool:
        """The mirror setting for camera index `source` (digits, or None) or a video file."""
        if source is None or source.isdigit():
            return self.mirror
        return self._get("view/mirror_file", False, bool)

    def set_mirror_for(self, source: str | None, value: bool) -> None:
        if source is None or source.isdigit():
            self.mirror = value
        else:
            self.store.setValue("view/mirror_file", bool(value))

    @property
    def landmarks(self) -> bool:
        return self._get("view/landmarks", False, bool)

    @landmarks.setter
    def landmarks(self, value: bool) -> None:
        self.store.setValue("view/landmarks", bool(value))

    @property
    def geometry(self) -> QByteArray | None:
        value = self.store.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    @geometry.setter
    def geometry(self, value: QByteArray) -> None:
        self.store.setValue("window/geometry", value)

    # -- source
    @property
    def source(self) -> str:
        """Camera index as digits, or a video file path."""
        return self._get("source/spec", "0", str)

    @source.setter
    def source(self, value: str) -> None:
        self.store.setValue("source/spec", str(value))

    @property
    def resolution(self) -> str:
        return self._get("source/resolution", "1280x720", str)

    @resolution.setter
    def resolution(self, value: str) -> None:
        self.store.setValue("source/resolution", value)

    # -- model
    @property
    def model_pack(self) -> Path | None:
        value = self._get("model/pack", "", str)
        return Path(value) if value else None

    @model_pack.setter
    def model_pack(self, value: Path | None) -> None:
        self.store.setValue("model/pack", str(value) if value else "")

    # -- recording
    @property
    def remote_url(self) -> str:
        """The last Mimic server connected to (Model → Remote server…)."""
        return self._get("remote/url", "http://127.0.0.1:8443", str)

    @remote_url.setter
    def remote_url(self, value: str) -> None:
        self.store.setValue("remote/url", value)

    @property
    def remote_token(self) -> str:
        """Its token (kept in the settings file, readable by this user only on a shared machine)."""
        return self._get("remote/token", "", str)

    @remote_token.setter
    def remote_token(self, value: str) -> None:
        self.store.setValue("remote/token", value)

    @property
    def output_dir(self) -> Path:
        value = self._get("record/output_dir", "", str)
        return Path(value) if value else default_output_dir()

    @output_dir.setter
    def output_dir(self, value: Path) -> None:
        self.store.setValue("record/output_dir", str(value))

    @property
    def audio(self) -> str:
        """Recordings' sound: a microphone's name, "default", "source" (a video's own track) or "none"."""
        return self._get("record/audio", "default", str)

    @audio.setter
    def audio(self, value: str) -> None:
        self.store.setValue("record/audio", str(value))

    @property
    def side_by_side(self) -> bool:
        return self._get("record/side_by_side", False, bool)

    @side_by_side.setter
    def side_by_side(self, value: bool) -> None:
        self.store.setValue("record/side_by_side", bool(value))

    # -- targets
    @property
    def recent_targets(self) -> list[RecentTarget]:
        try:
            items = json.loads(self._get("targets/recent", "[]", str))
            return [RecentTarget(**item) for item in items][:MAX_RECENT_TARGETS]
        except (ValueError, TypeError):
            return []

    def remember_target(self, target: RecentTarget) -> list[RecentTarget]:
        """Move `target` to the front of the recent list; returns the new list."""
        items = [target] + [t for t in self.recent_targets if t.path != target.path]
        items = items[:MAX_RECENT_TARGETS]
        self.store.setValue("targets/recent", json.dumps([asdict(t) for t in items]))
        return items

    def forget_target(self, path: str) -> None:
        items = [t for t in self.recent_targets if t.path != path]
        self.store.setValue("targets/recent", json.dumps([asdict(t) for t in items]))

    # -- named options (panels' sliders, checkboxes, combos; see app/gui/panels/base.py)
    def option(self, name: str, default: Any) -> Any:
        """The saved value of option `name`, as the type of `default` (the default when absent or unreadable)."""
        return self._get(f"options/{name}", default, type(default))

    def set_option(self, name: str, value: Any) -> None:
        self.store.setValue(f"options/{name}", value)

    def sync(self) -> None:
        self.store.sync()
