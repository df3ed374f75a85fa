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

from engine.errors import USER_ERRORS
from engine.runtime.memory import keep_freed_memory

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
            raise
        module.register(sub)
    return parser


TOP_LEVEL_FLAGS = {"-v", "--verbose"}


def with_default_command(argv: list[str]) -> list[str]:
    """`python -m app --source clip.mp4` means `python -m app gui --source clip.mp4` (README, Quick start).

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
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        log.debug("command failed", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
