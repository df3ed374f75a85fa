"""Entry point of the standalone build: ``mimic [COMMAND] [ARGS]`` is ``python -m app [COMMAND] [ARGS]``.

Three packaging checks are reachable here too (see build_spec/bundle_check.py):
``--bundle-check``, ``--bundle-probe FILE`` and ``--bundle-screenshot PNG [GUI ARGS]``.
"""
from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if argv[:1] == ["--bundle-check"]:
        from bundle_check import run_checks

        return run_checks(argv[1:])
    if argv[:1] == ["--bundle-probe"] and len(argv) == 2:
        from bundle_check import probe

        return probe(Path(argv[1]))
    if argv[:1] == ["--bundle-screenshot"] and len(argv) >= 2:
        from bundle_check import screenshot

        return screenshot(Path(argv[1]), argv[2:])
    from app.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen app must not re-run main() in worker processes
    sys.exit(main(sys.argv[1:]))
