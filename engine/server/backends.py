"""What the server runs: the landmark warp (one reenactor per session) or the paper's model (one loaded
model shared by every session, frames of several sessions batched through it)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from engine.errors import MimicError
from engine.reenactor import DriveResult, ProgressFn, Reenactor, ReenactorKind, TargetSpec, apply_option
from engine.server.config import default_batch
from engine.server.scheduler import Job

log = logging.getLogger(__name__)

# protocol option name → the reenactors' own option names (engine.reenactor.Configurable)
PAPER_OPTIONS = {"expression": "paper_expression", "smoothing": "paper_smoothing", "paste_back": "paper_paste_back",
                 "motion": "paper_motion"}


class ServerBackend(Protocol):
    kind: ReenactorKind  # which reenactor it serves (the app shows that reenactor's controls)
    batched: bool
    options: tuple[str, ...]  # the protocol options its reenactors take (the page shows only these)
    targets: tuple[str, ...]  # the target kinds its reenactors take: "image", "latent", "random"

    def describe(self) -> str:
        ...

    def new_reenactor(self) -> Reenactor:
        """A reenactor of a new session; shares the loaded model where there is one. It comes with the
        default target when `prepare_default` returned True, else with none yet."""
        ...

    def prepare_default(self, target: TargetSpec) -> bool:
        """Prepare the target every new session starts with, once (blocking); whether new reenactors
        come with it ready (else each session sets it itself)."""
        ...

    def set_option(self, reenactor: Reenactor, name: str, value: object) -> bool:
        """Apply one protocol option (engine.server.protocol.OPTIONS); whether this reenactor takes it."""
        ...

    def run(self, jobs: list[Job]) -> list[DriveResult | MimicError]:
        ...

    def close(self) -> None:
        ...


def drive_each(jobs: list[Job]) -> list[DriveResult | MimicError]:
    """One drive() per job, a failure confined to its own session."""
    results: list[DriveResult | MimicError] = []
    for job in jobs:
        try:
            results.append(job.reenactor.drive(job.frame))
        except MimicError as exc:
            results.append(exc)
        except Exception as exc:  # a bug in one session's frame must not fail the others
            log.exception("drive failed")
            results.append(MimicError(f"reenactor failed: {exc}"))
    return results


@dataclass
class WarpBackend:
    """The landmark warp: per session its own reenactor (its own MediaPipe graph and smoothing)."""

    kind: ClassVar[ReenactorKind] = ReenactorKind.WARP
    output_size: int = 512
    batched: bool = False
    options: tuple[str, ...] = ("expression", "smoothing", "head", "eyes", "mouth", "eye_contact")
    targets: tuple[str, ...] = ("image",)

    def describe(self) -> str:
        from engine.warp import WarpReenactor

        return f"{WarpReenactor.name} · CPU · OpenCV"

    def new_reenactor(self) -> Reenactor:
        from engine.warp import WarpConfig, WarpReenactor

        return WarpReenactor(WarpConfig(output_size=self.output_size))

    def prepare_default(self, target: TargetSpec) -> bool:
        """Checked once at start (a portrait without a face is an error now, not in every session); a
        prepared warp target holds per-session motion state, so each session prepares its own."""
        probe = self.new_reenactor()
        try:
            probe.set_target(target)
        finally:
            probe.close()
        return False

    def set_option(self, reenactor: Reenactor, name: str, value: object) -> bool:
        return apply_option(reenactor, name, value)

    def run(self, jobs: list[Job]) -> list[DriveResult | MimicError]:
        return drive_each(jobs)

    def close(self) -> None:
        return None


class PaperBackend:
    """The paper's model, loaded once; each session's reenactor is a fork sharing its networks.

    batch: at most this many sessions' frames per model run, by default per device (config.default_batch: one
    on a CPU). batched (batch > 1 and the eager runtime): they go through E_m → folded map → G together
    (engine.stylegan.batch); otherwise one at a time (the baseline of benchmarks/server_bench.py)."""

    kind = ReenactorKind.STYLEGAN

    def __init__(self, pack: Path, runtime: str = "auto", device: str = "auto", precision: str = "auto",
                 batch: int | None = None, progress: ProgressFn | None = None, options=None) -> None:
        from engine.stylegan import StyleGANReenactor

        kwargs = {} if options is None else {"options": options}
        self.shared = StyleGANReenactor.from_pack(Path(pack), runtime=runtime, device=device,
                                                  precision=precision, progress=progress, **kwargs)
        self.template = None  # a fork holding the default target (prepare_default)
        given = batch is not None
        self.batch = batch if given else default_batch(self.shared.runtime.device)  # at most, per model run
        self.batched = self.batch > 1 and self.shared.batches
        if given and self.batch > 1 and not self.batched:
            log.warning("batching needs the eager runtime (%s builds one-frame graphs): serving one frame at "
                        "a time", self.shared.runtime.name)
        self.options = tuple(PAPER_OPTIONS)
        self.targets = ("image", "latent", "random")

    def describe(self) -> str:
        return self.shared.describe()

    def new_reenactor(self) -> Reenactor:
        template = self.template
        return template.fork(same_target=True) if template is not None else self.shared.fork()

    def prepare_default(self, target: TargetSpec) -> bool:
        template = self.shared.fork()
        template.set_target(target)  # the inversion, once for every session
        self.template = template
        return True

    def set_option(self, reenactor: Reenactor, name: str, value: object) -> bool:
        return name in PAPER_OPTIONS and apply_option(reenactor, PAPER_OPTIONS[name], value)

    def run(self, jobs: list[Job]) -> list[DriveResult | MimicError]:
        if not self.batched or len(jobs) == 1:
            return drive_each(jobs)
        from engine.stylegan.batch import drive_batch

        return drive_batch([job.reenactor for job in jobs], [job.frame for job in jobs])

    def close(self) -> None:
        self.shared.close()
