"""`python -m runner` is `erun`."""

import os
import sys

from runner.cli import main


def finish(code: int) -> None:
    """Exit with `code`. An agent started as `python -m runner run-plan PLAN` (each sweep point's)
    has written, flushed and closed its whole record when its run ends: the interpreter's own
    finalization (about 50 ms of a core for the agent's modules) would only delay the exit that
    the sweep's next point waits for, so it is skipped, unless torch was imported (its rendezvous
    handlers and exit hooks get the finalization they expect)."""
    if sys.argv[1:2] == ["run-plan"] and "torch" not in sys.modules:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # closed, or a reader gone: as the interpreter ignores it
                pass
        os._exit(code)
    raise SystemExit(code)


if __name__ == "__main__":
    finish(main())
