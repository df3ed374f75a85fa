"""The window's actions (menu entries, toolbar buttons and keyboard shortcuts), in one table.

Each action only names what it does; `MainWindow` connects it to the panel or session intent.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QAction, QKeySequence
from PyQt6.QtWidgets import QWidget


def make_action(owner: QWidget, text: str, keys: tuple[str, ...] = (), checkable: bool = False,
                tip: str = "") -> QAction:
    act = QAction(text, owner)
    act.setShortcuts([QKeySequence(k) for k in keys])
    act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    act.setCheckable(checkable)
    act.setToolTip(f"{tip or text} ({' / '.join(keys)})" if keys else tip or text)
    owner.addAction(act)
    return act


@dataclass
class WindowActions:
    record: QAction
    snapshot: QAction
    neutral: QAction
    fullscreen: QAction
    mirror: QAction
    landmarks: QAction
    open_target: QAction
    random: QAction
    load_pack: QAction
    use_warp: QAction
    remote: QAction
    import_weights: QAction
    open_video: QAction
    output_dir: QAction
    quit: QAction

    @staticmethod
    def create(owner: QWidget) -> "WindowActions":
        a = lambda *args, **kw: make_action(owner, *args, **kw)  # noqa: E731
        return WindowActions(
            record=a("Record", ("R", "Ctrl+R"), checkable=True, tip="Start/stop recording the output to MP4"),
            snapshot=a("Snapshot", ("S",), tip="Save the current output as PNG"),
            neutral=a("Re-take neutral", ("N",), tip="Take the next driving frame as your neutral face"),
            fullscreen=a("Fullscreen", ("F11", "F"), checkable=True, tip="The output alone, fullscreen (Esc leaves)"),
            mirror=a("Mirror", ("M",), checkable=True, tip="Mirror the camera image"),
            landmarks=a("Landmarks", checkable=True, tip="Draw the tracked face landmarks over the driver "
                        "(the driver view then shows the frames the model tracked, at its rate)"),
            open_target=a("Open target…", ("Ctrl+O",)),
            random=a("Random identity", tip="Invent a new face (needs a model pack)"),
            load_pack=a("Load model pack…", ("Ctrl+L",)),
            use_warp=a("Use landmark warp (no weights)"),
            remote=a("Remote server…", tip="Animate on a Mimic server (python -m app serve) instead of this machine"),
            import_weights=a("Import original weights…"),
            open_video=a("Use video file as source…"),
            output_dir=a("Output folder…"),
            quit=a("Quit", ("Ctrl+Q",)),
        )

    def all(self) -> list[QAction]:
        return [getattr(self, f.name) for f in fields(self)]

    def fill_menus(self, owner) -> None:
        """File, View and Record menus of a QMainWindow."""
        menu = owner.menuBar()
        file_menu = menu.addMenu("&File")
        for act in (self.open_target, self.open_video, None, self.load_pack, self.import_weights, self.use_warp, self.remote,
                    None, self.output_dir, None, self.quit):
            file_menu.addSeparator() if act is None else file_menu.addAction(act)
        view_menu = menu.addMenu("&View")
        for act in (self.mirror, self.landmarks, self.neutral, self.fullscreen):
            view_menu.addAction(act)
        record_menu = menu.addMenu("&Record")
        record_menu.addAction(self.record)
        record_menu.addAction(self.snapshot)
