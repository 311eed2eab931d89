"""A sweep's summary: one row per point (state, restarts, duration, slots, run dir), written as
sweep.json and sweep.md in the sweep directory and printed as a table when the sweep ends."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.paths import SweepPaths
from runner.sweep.points import PointResult
from runner.words import display_path

RESULT_WIDTH = 24  # a result wider than this is cut short in the table (sweep.json has it whole)


@dataclass
class SweepSummary:
    sweep_dir: Path
    slots: str
    results: list[PointResult]
    exit_status: int
    signal: str | None = None
    written_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"sweep_dir": str(self.sweep_dir), "slots": self.slots, "exit_status": self.exit_status,
                "signal": self.signal, "written_at": self.written_at,
                "points": [r.to_dict() for r in self.results]}

    def rows(self, cwd: Path) -> list[list[str]]:
        """The table; a `result` column when any point reported one (`runner.result`, a task's value)."""
        results = any(r.result is not None for r in self.results)
        header = ["point", "overrides", "state", "restarts", "duration", "slots",
                  *(["result"] if results else []), "run dir"]
        body = [[str(r.point.index), r.point.label, r.state.value + (f" ({r.note})" if r.note else ""),
                 "-" if r.restarts is None else str(r.restarts),
                 "-" if r.duration is None else f"{r.duration:.1f} s",
                 ",".join(r.slots) or "-", *([shown_result(r.result)] if results else []),
                 display_path(r.point.run_dir, cwd)] for r in self.results]
        return [header, *body]

    def table(self, cwd: Path) -> str:
        rows = self.rows(cwd)
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                         for row in rows)

    def markdown(self, cwd: Path) -> str:
        rows = self.rows(cwd)
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows[1:]]
        return "\n".join(lines) + "\n"

    def headline(self) -> str:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.state.value.lower()] = counts.get(r.state.value.lower(), 0) + 1
        how = ", ".join(f"{n} {state}" for state, n in counts.items())
        stopped = f"; stopped by {self.signal}" if self.signal else ""
        return f"erun: sweep of {len(self.results)} point(s) on {self.slots}: {how}{stopped}"

    def write(self, cwd: Path) -> None:
        import json

        from runner.config.redact import scrub
        from runner.record.writer import write_file

        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        paths = SweepPaths(self.sweep_dir)
        # A point's extra environment is its plan's secrets (runner.sweep.agents); the overrides name them.
        secrets = {k: v for r in self.results if r.point.work for k, v in r.point.work.environ().items()}
        data = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        write_file(paths.summary_json, scrub(data, secrets))
        write_file(paths.summary_md, scrub(f"{self.headline()}\n\n{self.markdown(cwd)}", secrets))



def shown_result(value: Any) -> str:
    """A result in a table cell: `-` for none, numbers as they are, anything else cut short."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    return text if len(text) <= RESULT_WIDTH else text[:RESULT_WIDTH - 3] + "..."
