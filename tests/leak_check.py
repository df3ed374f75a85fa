"""A live loop left running or a MediaPipe graph left open at the end of a test fails that test.

The hooks are imported into tests/conftest.py (or loaded with `-p tests.leak_check`). Instances are tracked as
they are made (a weak set each: no scan of every object after every test): the first time `engine.live` or
`mediapipe` is seen imported, its class is instrumented and one scan of the garbage collector picks up the
instances made before that. What a test's own setup, body or function-scoped fixtures made and left running
after its teardown is reported as an error of that test, then stopped or closed, so the next test starts clean.
Not counted: garbage (a collection runs before anything is reported), instances made while a module- or
session-scoped fixture was set up, and instances such a fixture's value holds (a graph a shared reenactor
opened on its first frame): they live as long as their scope. conftest's closing at the end of the session
stays as the safety net for those.
"""
from __future__ import annotations

import gc
import sys
import types
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class _Kind:
    """One kind of resource: where its class lives, when an instance is still open, how to close it."""

    what: str  # "live loop(s) left running"
    module: str
    class_path: str  # attribute path of the class inside `module`
    is_open: Callable[[Any], bool]
    close: Callable[[Any], None]
    seen: weakref.WeakSet = field(default_factory=weakref.WeakSet)
    instrumented: bool = False

    def instrument(self) -> None:
        """From now on every instance made is remembered; the ones made before are found once by a scan."""
        if self.instrumented or self.module not in sys.modules:
            return
        try:
            cls = _resolve(self.module, self.class_path)
        except (ImportError, AttributeError):
            return  # the module is partly imported right now: the next check instruments it
        original = cls.__init__

        def tracked_init(obj, *args, **kwargs) -> None:
            original(obj, *args, **kwargs)
            self.seen.add(obj)

        cls.__init__ = tracked_init
        self.instrumented = True
        self.seen.update(_instances_of(cls))

    def open_now(self) -> set[int]:
        return {id(o) for o in list(self.seen) if self.is_open(o)}

    def instances(self, ids: set[int]) -> list[Any]:
        return [o for o in list(self.seen) if id(o) in ids]


def _instances_of(cls: type) -> list[Any]:
    """Every live instance of `cls`, by one scan of the garbage collector's objects."""
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # isinstance over gc's objects touches torch's deprecated aliases
        for obj in gc.get_objects():
            try:
                if isinstance(obj, cls):
                    found.append(obj)
            except ReferenceError:  # a weakref.proxy whose object is gone
                continue
    return found


def _resolve(module: str, path: str) -> Any:
    obj: Any = sys.modules[module]
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


KINDS = (
    _Kind("live loop(s) left running", "engine.live", "LivePipeline",
          is_open=lambda p: p.running, close=lambda p: p.stop()),
    _Kind("MediaPipe graph(s) left open", "mediapipe.python.solution_base", "SolutionBase",
          is_open=lambda s: s._graph is not None, close=lambda s: s.close()),
)


class _Ledger:
    """What was open before the current test, what its wider-scoped fixtures opened since, and the values of
    the wider-scoped fixtures it used."""

    def __init__(self) -> None:
        self.before: dict[str, set[int]] = {}
        self.exempt: dict[str, set[int]] = {k.what: set() for k in KINDS}
        self.shared_values: list[Any] = []

    def snapshot(self) -> dict[str, set[int]]:
        for kind in KINDS:
            kind.instrument()
        return {k.what: k.open_now() for k in KINDS}


LEDGER = _Ledger()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest) -> Iterator[None]:
    before = LEDGER.snapshot() if fixturedef.scope != "function" else None
    result = yield
    if before is not None:  # a module/session fixture may hold a graph for its whole scope
        for what, ids in LEDGER.snapshot().items():
            LEDGER.exempt[what] |= ids - before[what]
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    LEDGER.before = LEDGER.snapshot()
    LEDGER.shared_values = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    finally:
        info = getattr(item, "_fixtureinfo", None)
        values = getattr(item, "funcargs", {})
        for name, defs in (info.name2fixturedefs.items() if info is not None else ()):
            if defs and defs[-1].scope != "function" and name in values:
                LEDGER.shared_values.append(values[name])


_OPAQUE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType, types.FrameType)


def _held_by(roots: Iterable[Any], wanted: set[int], limit: int = 200_000) -> set[int]:
    """The ids in `wanted` reachable from `roots` through instances and containers (not through classes,
    modules or functions, which would reach everything)."""
    found: set[int] = set()
    seen: set[int] = set()
    todo = deque(roots)
    while todo and len(seen) < limit and found != wanted:
        obj = todo.popleft()
        try:
            if id(obj) in seen or isinstance(obj, _OPAQUE):
                continue
        except ReferenceError:  # a weakref.proxy whose object is gone
            continue
        seen.add(id(obj))
        if id(obj) in wanted:
            found.add(id(obj))
        todo.extend(gc.get_referents(obj))
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    result = yield  # every fixture of the test is torn down first (windows closed, sessions stopped)
    leaks: list[str] = []
    for kind in KINDS:
        leaked = _suspects(kind)
        if leaked:
            gc.collect()  # garbage in reference cycles is not a leak: it goes now
            leaked = _suspects(kind)
        if leaked:
            leaked -= _held_by(LEDGER.shared_values, leaked)
        if leaked:
            for obj in kind.instances(leaked):  # close them now: the next test starts clean
                kind.close(obj)
            leaks.append(f"{len(leaked)} {kind.what}")
    LEDGER.shared_values = []
    if leaks:
        pytest.fail(f"{item.nodeid} leaked: {', '.join(leaks)} (stop or close them in the test or its fixtures)",
                    pytrace=False)
    return result


def _suspects(kind: _Kind) -> set[int]:
    """Ids of `kind` open now that were not open before the test and no wider-scoped fixture opened."""
    kind.instrument()
    return kind.open_now() - LEDGER.before.get(kind.what, set()) - LEDGER.exempt[kind.what]


def close_everything_open() -> dict[str, int]:
    """Stop or close every tracked instance still open, live loops first; how many of each kind were
    (conftest's safety net at the end of the session: what module-scoped fixtures left, whatever leaked)."""
    closed: dict[str, int] = {}
    for kind in KINDS:
        kind.instrument()
        still_open = [obj for obj in list(kind.seen) if kind.is_open(obj)]
        for obj in still_open:
            kind.close(obj)
        if still_open:
            closed[kind.what] = len(still_open)
    return closed
