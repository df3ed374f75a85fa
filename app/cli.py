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

# Sub-command modules, in the order they appear in --help.
COMMANDS = (
    "gui",
    "generate",
    "import_weights",
    "align",
    "render",
    "bench",
    "train",
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        args = parser.parse_args(["gui", *argv])
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        log.debug("command failed", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
