"""Command-line entry point.

Every sub-command lives in its own module under ``app/commands`` and exposes
``register(subparsers)``; the module sets ``func`` on its parser, which is
called with the parsed arguments and returns an exit code. Commands talk to
``engine`` only; nothing here imports torch.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from app.console import LineStart, print_error, quiet_native_logs
from engine.errors import USER_ERRORS, MimicError
from engine.runtime.memory import keep_freed_memory
from engine.values import BadValue

# Sub-command modules, in the order they appear in --help.
COMMANDS = (
    "gui",
    "generate",
    "import_weights",
    "align",
    "render",
    "bench",
    "train",
    "serve",
)

log = logging.getLogger("mimic")


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, except that a value out of its kind's range (engine.values) is one `error:` line and
    exit 2 without the usage block: the command line was well formed, one value was not."""

    def _get_value(self, action: argparse.Action, arg_string: str):
        try:
            return super()._get_value(action, arg_string)
        except argparse.ArgumentError as exc:
            if isinstance(exc.__context__, BadValue):
                self.exit(2, f"error: {exc}\n")
            raise


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m app",
        description="Mimic: animate a portrait with your face, live.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"app.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"app.commands.{name}":
                continue  # command not built into this copy
            if not exc.name or exc.name.split(".")[0] in ("app", "engine", "models", "training", "benchmarks"):
                raise
            _unavailable(sub, name, exc.name)  # a package it needs is not installed here (e.g. a GPU box)
            continue
        module.register(sub)
    return parser


def _unavailable(sub: argparse._SubParsersAction, command: str, package: str) -> None:
    """A command whose module needs a package that is missing here: listed, and one clear error when run
    (the others, e.g. `bench --report` on a machine with only torch and numpy, still work)."""
    name = command.replace("_", "-")
    p = sub.add_parser(name, help=f"(unavailable: needs {package}, not installed)", add_help=False,
                       prefix_chars="\0")  # no option is recognised: every argument lands in `rest`
    p.add_argument("rest", nargs="*")

    def fail(args: argparse.Namespace) -> int:
        raise MimicError(f"`{name}` needs the package {package!r}, which is not installed here "
                         "(pip install -r requirements.txt)")

    p.set_defaults(func=fail)


TOP_LEVEL_FLAGS = {"-v", "--verbose"}


def with_default_command(argv: list[str]) -> list[str]:
    """`python -m app --source clip.mp4` means `python -m app gui --source clip.mp4` (docs/app.md).

    The first argument that is not a top-level flag decides: another flag (or none at all) gets
    `gui` put in front of it; a word is left for argparse (a command, or "invalid choice"), as is -h.
    """
    i = 0
    while i < len(argv) and argv[i] in TOP_LEVEL_FLAGS:
        i += 1
    if i < len(argv) and (not argv[i].startswith("-") or argv[i] in ("-h", "--help")):
        return argv
    return [*argv[:i], "gui", *argv[i:]]


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()  # before any thread starts (engine.runtime.memory)
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(with_default_command(argv))
    native_filter = quiet_native_logs(args.verbose)  # before MediaPipe loads (app/console.py)
    stderr = sys.stderr
    sys.stderr = LineStart(stderr)  # an error line never continues a progress bar's line
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        log.debug("command failed", exc_info=True)
        print_error(str(exc))
        return 2
    except KeyboardInterrupt:
        print(("" if sys.stderr.at_line_start else "\n") + "interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stderr = stderr
        if native_filter is not None:
            native_filter.stop()
