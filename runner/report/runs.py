"""`erun runs [-n N]`: the recent runs, newest first; and which run `erun status` and `erun report`
take when given none (the newest).

The runs come from the per-user index (runner.record.index; a run whose directory was deleted
is left out), else from the working directory's outputs/. Each run's state is read from its own
record, so a run whose agent was killed shows as such (runner.report.status.agent_gone).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from runner.errors import ConfigError
from runner.paths import STATE_DIR_VAR
from runner.record import index
from runner.record import read as runlog
from runner.report.liveness import state_in_words
from runner.report.text import ArgParser
from runner.words import date_clock

DEFAULT_COUNT = 10
WHERE = f"erun looks in its index of recent runs (~/.local/state/erun, or ${STATE_DIR_VAR}) and in ./outputs"
NO_RUN_FIX = f"give the run directory (erun prints it when the job starts); {WHERE}"


def main(args: Sequence[str]) -> int:
    """The `runs` subcommand."""
    parser = ArgParser(prog="erun runs", description="List recent runs, newest first: state, name, "
                       "start time and run directory.")
    parser.add_argument("-n", type=int, default=DEFAULT_COUNT, metavar="N",
                        help=f"how many runs to list (default {DEFAULT_COUNT})")
    options = parser.parse_args(list(args))
    entries = index.recent_runs(os.environ, Path.cwd(), max(0, options.n))
    if not entries:
        print(f"erun runs: no runs yet ({WHERE})", flush=True)
        return 0
    print(render(entries), flush=True)
    return 0


def render(entries: Sequence[index.IndexEntry]) -> str:
    rows = [(_state(e.run_dir), e.name or "-", date_clock(e.start), str(e.run_dir)) for e in entries]
    widths = [max(len(r[i]) for r in rows + [("state", "name", "started", "")]) for i in range(3)]
    head = ("state", "name", "started", "run dir")
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
                     for row in [head, *rows]).rstrip()


def _state(run_dir: Path) -> str:
    try:
        return state_in_words(runlog.load_any_run(run_dir))
    except (OSError, ConfigError):
        return "?"


def newest_run_dir() -> Path:
    """The newest run (what `erun status` and `erun report` take when given none)."""
    entries = index.recent_runs(os.environ, Path.cwd(), 1)
    if not entries:
        raise ConfigError(None, "no run to show: none recorded yet", NO_RUN_FIX)
    return entries[0].run_dir
