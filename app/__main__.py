"""`python -m app` — the GUI by default, or a sub-command (see `python -m app --help`)."""
import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
