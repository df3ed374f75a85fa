"""What every panel shares: the context it works in, the panel frame, and option controls.

An option control (slider, checkbox, combo) is created with its name and default; it restores the
value saved in the settings, sends it to the session at once (`Session.set_option`, which hands it
to every reenactor, now and after a model swap) and on every change, and saves each change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from app.gui.actions import WindowActions
from app.gui.bridge import SessionEvents
from app.gui.settings import AppSettings
from app.gui.widgets import hint, section_title
from engine import values
from engine.reenactor import ReenactorKind
from engine.session import Changed, Event, Part, Session


@dataclass
class PanelContext:
    session: Session
    settings: AppSettings
    actions: WindowActions
    events: SessionEvents


class Panel(QWidget):
    """A titled column of controls that re-renders when one of `parts` changes."""

    parts: frozenset[Part] = frozenset()

    def __init__(self, ctx: PanelContext, title: str) -> None:
        super().__init__()
        self.ctx = ctx
        self.session = ctx.session
        self.rows = QVBoxLayout(self)
        self.rows.setContentsMargins(0, 0, 0, 0)
        self.rows.setSpacing(6)
        if title:
            self.rows.addWidget(section_title(title))
        ctx.events.event.connect(self._on_event)

    def add_row(self, *widgets: QWidget, stretch_first: bool = False) -> QHBoxLayout | QWidget:
        """One widget as a row, or several side by side."""
        if len(widgets) == 1:
            self.rows.addWidget(widgets[0])
            return widgets[0]
        row = QHBoxLayout()
        for i, widget in enumerate(widgets):
            row.addWidget(widget, 1 if stretch_first and i == 0 else 0)
        self.rows.addLayout(row)
        return row

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Changed) and event.part in self.parts:
            self.render()
        else:
            self.on_event(event)

    def render(self) -> None:
        """Show the session's state."""

    def on_event(self, event: Event) -> None:
        """Any other session event (notices, tasks, …)."""


class ReenactorOptionsPanel(Panel):
    """Options that only one reenactor reads: its controls show while that reenactor runs; otherwise they
    are hidden and one line says whom they are for (a newcomer never moves a slider that does nothing)."""

    parts = frozenset({Part.MODEL})
    reenactor_kind: ReenactorKind | None = None  # the reenactor that reads these options
    not_running = ""  # the one line shown while another reenactor runs

    def __init__(self, ctx: PanelContext, title: str) -> None:
        super().__init__(ctx, title)
        self.controls = QWidget()
        outer, self.rows = self.rows, QVBoxLayout(self.controls)  # add_row fills the controls
        self.rows.setContentsMargins(0, 0, 0, 0)
        self.rows.setSpacing(6)
        self.reason = hint()
        outer.addWidget(self.controls)
        outer.addWidget(self.reason)

    @property
    def applies(self) -> bool:
        reenactor = self.session.state.reenactor
        return reenactor is not None and reenactor.kind == self.reenactor_kind

    def render(self) -> None:
        running = self.session.state.reenactor is not None
        self.controls.setVisible(self.applies)
        self.reason.setText(self.not_running if running else "Waiting for the model to load…")
        self.reason.setVisible(not self.applies)


def _bind(ctx: PanelContext, name: str, default: Any, kind: type,
          value_kind: values.Kind | None = None) -> Callable[[Any], None]:
    """Restore option `name`, send it to the session; returns the change handler (saves and sends).
    With `value_kind`, a saved value outside its range (a settings file edited by hand) restores `default`."""

    def changed(value: Any) -> None:
        value = kind(value)
        ctx.settings.set_option(name, value)
        ctx.session.set_option(name, value)

    saved = ctx.settings.option(name, default)
    ctx.session.set_option(name, value_kind.restore(saved, default) if value_kind is not None else saved)
    return changed


def option_checkbox(ctx: PanelContext, name: str, text: str, default: bool, tip: str = "") -> QCheckBox:
    changed = _bind(ctx, name, default, bool)
    box = QCheckBox(text)
    box.setToolTip(tip)
    box.setChecked(bool(ctx.session.state.options[name]))
    box.toggled.connect(changed)
    return box


def option_combo(ctx: PanelContext, name: str, choices: dict[str, str], default: str, tip: str = "") -> QComboBox:
    """choices: option value → what the user reads."""
    changed = _bind(ctx, name, default, str)
    combo = QComboBox()
    combo.setToolTip(tip)
    for value, label in choices.items():
        combo.addItem(label, value)
    combo.setCurrentIndex(max(0, combo.findData(ctx.session.state.options[name])))
    combo.currentIndexChanged.connect(lambda i: changed(combo.itemData(i)))
    return combo


def option_slider(ctx: PanelContext, name: str, text: str, kind: values.Kind, default: float,
                  steps: int = 100, tip: str = "", fmt: str = "{:.2f}") -> QWidget:
    """A labelled slider for a float option of `kind` (its range, `steps` notches); shows its value."""
    minimum, maximum = kind.low, kind.high
    changed = _bind(ctx, name, default, float, kind)
    to_value = lambda i: minimum + (maximum - minimum) * i / steps  # noqa: E731
    row = QWidget()
    row.setToolTip(tip)
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    label, value_label = QLabel(text), QLabel()
    slider = QSlider(Qt.Orientation.Horizontal, objectName=f"option:{name}")
    slider.setRange(0, steps)
    start = float(ctx.session.state.options[name])
    slider.setValue(round((start - minimum) / (maximum - minimum) * steps) if maximum > minimum else 0)
    value_label.setText(fmt.format(start))

    def moved(i: int) -> None:
        value_label.setText(fmt.format(to_value(i)))
        changed(to_value(i))

    slider.valueChanged.connect(moved)
    layout.addWidget(label)
    layout.addWidget(slider, 1)
    layout.addWidget(value_label)
    return row
