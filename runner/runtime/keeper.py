"""The agent's side of the run record: it never stops the workers.

`RecordKeeper` opens the run directory (a ConfigError, before any worker, when it cannot), and
then keeps writing events, worker logs and summary.json through a full disk or a run directory
deleted under it: what cannot be written is counted (`DroppedWrites`), the console says so once
when it starts, summary.json is tried again after each attempt and at the end, and the last
lines the agent prints say what was lost. The job's exit status stays the workers'.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from runner.paths import RunPaths, file_mode
from runner.plan import JobPlan
from runner.record import writer as record
from runner.record.continuation import Continuation, continuation_of
from runner.record.disk import DroppedWrites
from runner.runtime.console import Console
from runner.state import RunResult


class RecordKeeper:
    """events.jsonl, summary.json and the count of what could not be written, for one run."""

    def __init__(self, plan: JobPlan, console: Console) -> None:
        self.plan = plan
        self.console = console
        self.dropped = DroppedWrites(on_first=self._first_drop)
        self.mode = file_mode(plan.logs.private)
        self.paths = RunPaths(Path(plan.run_dir), plan.logs.layout, plan.nproc)
        self.events: record.EventLog | None = None
        self.summary_error: str | None = None  # why the last summary.json could not be written
        self.continuation = Continuation()  # what the run directory held before this agent
        self.started = time.time()

    def open(self) -> tuple[RunPaths, record.EventLog]:
        """The run directory with plan.json and an open events.jsonl (ConfigError if it cannot be,
        or if the agent of the run it holds still runs); a run it holds is continued."""
        self.continuation = continuation_of(Path(self.plan.run_dir))
        self.paths = record.open_run_dir(self.plan)
        try:
            self.events = record.EventLog(self.paths.events, self.dropped, self.mode)
        except OSError as e:
            raise record.unwritable(self.paths.events, e) from None
        return self.paths, self.events

    def summary(self, result: RunResult) -> bool:
        """Write summary.json; when it cannot be written, say why once and go on."""
        try:
            record.write_summary(self.paths, result, self.dropped, self.mode,
                                 lambda data: self.continuation.merge(data, self._segment(result)))
        except OSError as e:
            if self.summary_error is None:
                self.console.note(f"warning: cannot write {self.paths.summary} ({e.strerror or e}); "
                                  "the workers keep running, erun tries again after each attempt")
            self.summary_error = e.strerror or str(e)
            return False
        self.summary_error = None
        return True

    def _segment(self, result: RunResult) -> dict[str, Any]:
        """This agent's row of summary.json's segments."""
        done = result.state.value != "RUNNING"
        return {"segment": self.continuation.segment, "start": self.started,
                "end": time.time() if done else None, "state": result.state.value if done else None,
                "exit_code": result.exit_code if done else None,
                "attempts": [a.attempt for a in result.attempts], "host": socket.gethostname(),
                "pid": os.getpid()}

    def close(self, result: RunResult) -> None:
        """The final summary.json and the last events (as far as the disk allows)."""
        self.summary(result)
        if self.events is None:
            return
        if self.dropped.bytes:
            self.events.write("record_dropped", bytes=self.dropped.bytes, reason=self.dropped.first_error)
        self.events.write("job_end", state=result.state.value, exit_code=result.exit_code)
        self.events.close()

    def closing_lines(self) -> list[str]:
        """What the user must know about the record itself, after the job's own report."""
        lines = []
        if self.dropped.bytes:
            lines.append(f"erun: warning: {self.dropped.in_words()}; the workers were not stopped")
        if self.summary_error is not None:
            gone = "" if self.paths.run_dir.is_dir() else f" (the run directory {self.paths.run_dir} is gone)"
            lines.append(f"erun: warning: could not write {self.paths.summary}: {self.summary_error}{gone}; "
                         "the exit status is the job's")
        return lines

    def _first_drop(self, error: str) -> None:
        self.console.note(f"warning: cannot write the run record ({error}); the workers keep running, "
                          "what cannot be written is counted and reported at the end")
