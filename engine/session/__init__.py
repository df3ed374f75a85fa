"""One live session: source, reenactor, target, recording, virtual camera and options, and how they change.

This is the one place where an action of the user changes the engine's state (docs/app.md).
Qt-free: a GUI (or a test, or a script) calls the intent methods on its *owner thread* and listens
to the events. Slow work — building a reenactor, preparing a target, finishing a recording,
listing cameras — runs as a `Task` on a worker thread, and its outcome comes back to the owner
thread through `post` (the GUI posts into its event loop; `engine.tasks.EventQueue` does it without one), so
every state change happens on the owner thread, in the order the events report it. The live loop's newest
output and driving frame come the same way (session/outputs.py).

    intent (owner thread) ──▶ Session ──Task (worker)──▶ post ──▶ transition (owner thread) ──▶ events
                                 └──▶ LivePipeline (capture + inference threads) ──▶ sinks / viewers
                                                                     └──▶ post ──▶ Session.latest (owner thread)

The parts (session/session.py says which owns what): animation.py (source, model, target, options),
sound.py, sharing.py (recording, snapshots, virtual camera), outputs.py; events.py and state.py are
what they share with the views.
"""
from engine.session.animation import (
    IMAGE_SUFFIXES, LATENT_SUFFIXES, Animation, ReenactorFactory, prepare_target, target_kind,
)
from engine.session.events import (
    Changed, Event, Notice, Part, RecordingSaved, TargetApplied, TargetRef, TaskEnded, TaskProgress, TaskStarted,
)
from engine.session.outputs import LatestOutputs
from engine.session.session import Session
from engine.session.sharing import Sharing
from engine.session.sound import Sound
from engine.session.state import SessionContext, SessionState

__all__ = [
    "IMAGE_SUFFIXES", "LATENT_SUFFIXES", "Animation", "ReenactorFactory", "prepare_target", "target_kind",
    "Changed", "Event", "Notice", "Part", "RecordingSaved", "TargetApplied", "TargetRef", "TaskEnded",
    "TaskProgress", "TaskStarted", "LatestOutputs", "Session", "Sharing", "Sound", "SessionContext", "SessionState",
]
