"""The Qt-free session: every state transition of the app, driven without a display (real warp, real clip)."""
from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from engine.factory import create_reenactor, setup_for
from engine.session import (
    Changed,
    LatestOutputs,
    Notice,
    Part,
    RecordingSaved,
    Session,
    TargetApplied,
    TargetRef,
)
from engine.tasks import EventQueue
from engine.media.video_io import VideoReader, write_image

WAIT = 60.0  # s: generous bound on a busy 2-core machine (never a speed assertion)


class Made:
    """The real reenactor factory, remembering what it built."""

    def __init__(self) -> None:
        self.built = []

    def __call__(self, pack, progress=None):
        reenactor = create_reenactor(setup_for(pack), progress)
        self.built.append(reenactor)
        return reenactor


def open_graphs() -> list:
    """MediaPipe solution graphs that are still open in this process."""
    from mediapipe.python.solution_base import SolutionBase

    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, SolutionBase) and o._graph is not None]


def native_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def mediapipe_threads() -> set[str]:
    """Thread ids of this process's MediaPipe workers (they are named "mediapipe/<id>")."""
    found = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            name = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
        except OSError:  # ended meanwhile
            continue
        if name.startswith("mediapipe"):
            found.add(tid)
    return found


@pytest.fixture
def session(clip: Path, portrait: Path):
    queue, made, events = EventQueue(), Made(), []
    session = Session(made, queue.post)
    session.subscribe(events.append)
    session.start(str(clip), None, TargetRef(str(portrait), "image"))
    assert queue.pump(lambda: session.state.live and session.latest is not None, WAIT)
    session.queue, session.made, session.events = queue, made, events  # for the tests
    yield session
    session.close()


def test_start_animates_the_target_and_reports_each_part(session, portrait) -> None:
    state = session.state
    assert state.source_spec.endswith("carphone_pristine.mp4") and state.model_pack is None
    assert state.target == TargetRef(str(portrait), "image") and state.target_label == "astronaut.png"
    parts = {e.part for e in session.events if isinstance(e, Changed)}
    assert {Part.SOURCE, Part.MODEL, Part.TARGET} <= parts
    applied = [e for e in session.events if isinstance(e, TargetApplied)]
    assert len(applied) == 1 and applied[0].image is not None  # the portrait, for the gallery's thumbnail
    assert session.latest.result.image.shape[:2][::-1] == state.reenactor.output_size
    assert not session.busy


def test_recording_is_a_sink_of_the_live_loop(session, tmp_path) -> None:
    assert session.start_recording(tmp_path / "rec", side_by_side=True)
    assert session.state.recorder is not None
    assert session.queue.pump(lambda: session.frames_recorded >= 15, WAIT)
    session.stop_recording()
    assert session.state.recorder is None
    assert session.queue.pump(lambda: any(isinstance(e, RecordingSaved) for e in session.events), WAIT)
    stats = next(e for e in session.events if isinstance(e, RecordingSaved)).stats
    assert stats.error is None and stats.frames_written >= 15
    with VideoReader(stats.path) as video:
        first = next(iter(video))
    out_w, out_h = session.state.reenactor.output_size
    assert first.shape[1] > out_w  # side by side: the driver is in the file too


def test_a_failing_target_names_its_file_and_the_old_target_keeps_running(session, tmp_path) -> None:
    blank = write_image(tmp_path / "blank wall.png", np.full((256, 256, 3), 128, np.uint8))
    before = session.state.target
    session.choose_target_file(blank)
    assert session.queue.pump(lambda: any(isinstance(e, Notice) and e.kind == "error" for e in session.events), WAIT)
    message = next(e.text for e in session.events if isinstance(e, Notice) and e.kind == "error")
    assert message.startswith("blank wall.png: no face found in the target image")
    assert session.state.target == before and session.pipeline.reenactor is session.state.reenactor


def test_options_reach_the_reenactor_now_and_after_a_swap(session) -> None:
    got = []

    class Recording:
        def set_option(self, name, value):
            got.append((name, value))
            return True

    session.set_option("smoothing", 0.5)
    assert session.state.options == {"smoothing": 0.5}
    reenactor = session.state.reenactor
    reenactor.set_option = Recording().set_option  # a reenactor that takes options
    session.set_option("smoothing", 0.25)
    assert got == [("smoothing", 0.25)]


def test_ten_model_swaps_leave_no_mediapipe_graph_or_thread(session) -> None:
    """Counted as what this test opened: graphs and threads other tests left in the process do not count."""
    earlier = open_graphs()  # kept alive, so their ids stay theirs
    earlier_ids, earlier_threads = {id(g) for g in earlier}, mediapipe_threads()

    def ours() -> tuple[int, int]:
        """Graphs and MediaPipe threads opened since the test began that are still open."""
        return (sum(id(g) not in earlier_ids for g in open_graphs()), len(mediapipe_threads() - earlier_threads))

    def swap() -> None:
        before = session.state.reenactor
        session.load_model(None)
        assert session.queue.pump(lambda: session.state.reenactor is not before and not session.busy, WAIT)
        seen = session.pipeline.stats().processed
        assert session.queue.pump(lambda: session.pipeline.stats().processed > seen + 3, WAIT)  # the new one drives

    swap()
    session.join_retired(WAIT)
    threads, (graphs, workers) = native_threads(), ours()
    assert graphs >= 1 and workers >= 1  # the running warp's tracker: what a leak would add to every swap
    for _ in range(10):
        swap()
    session.join_retired(WAIT)
    assert len(session.made.built) == 12
    assert all(r._detector is None for r in session.made.built[:-1])  # every replaced one was closed
    now = ours()
    assert now[0] <= graphs and now[1] <= workers  # as after one swap: only the running warp's graph and workers
    assert native_threads() - threads < 10  # no thread left behind per swap (other tests' threads may come and go)
    live = session.made.built[-1]
    session.close()
    assert live._detector is None and ours() == (0, 0)  # closing the session closes the last one


def test_live_outputs_change_only_on_the_owner_thread() -> None:
    """The live loop's threads offer frames and results; `latest_frame` / `latest` change when the owner
    thread runs the hand-over, and a burst of offers is one hand-over of the newest."""
    queue, posted = EventQueue(), []
    outputs = LatestOutputs(lambda call: (posted.append(call), queue.post(call)))
    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(50)]
    capture = threading.Thread(target=lambda: [outputs.offer_frame(frame) for frame in frames])
    capture.start()
    capture.join()
    assert outputs.frame is None and outputs.result is None  # nothing changed on the capture thread
    assert len(posted) == 1  # one hand-over on its way, however many offers
    assert queue.pump(lambda: outputs.frame is not None, WAIT)
    assert outputs.frame is frames[-1]  # the newest
    outputs.offer_frame(frames[0])
    assert len(posted) == 2 and outputs.frame is frames[-1]  # the next offer posts again
