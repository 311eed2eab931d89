"""The run record: plan.json, events.jsonl and summary.json in the run directory.

The event log is append-only JSON lines with a wall-clock `time`; every message the agent
prints for people is also a `note` event (runner.runtime.notes writes both). Reading them back is
runner.record.read's job.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.errors import ConfigError
from runner.paths import RunPaths
from runner.plan import JobPlan
from runner.record import index
from runner.record.model import AGENT_EVENT
from runner.state import RunResult


class EventLog:
    """Append-only events.jsonl."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"time": round(time.time(), 6), "event": event, **fields}, default=str)
        os.write(self._fd, line.encode() + b"\n")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def open_run_dir(plan: JobPlan) -> RunPaths:
    """Create the run directory; refuse one that already holds a run (never overwrite logs)."""
    paths = RunPaths(Path(plan.run_dir))
    if paths.events.exists():
        raise ConfigError(
            "run_dir", f"{plan.run_dir} already holds a run",
            "choose a new directory (hydra.run.dir=..., or run-plan --run-dir) "
            "so the earlier run's logs stay intact",
        )
    try:
        paths.run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError("run_dir", f"cannot be created: {e.strerror}",
                          "choose a writable directory (hydra.run.dir=...)") from None
    write_json(paths.plan, plan.to_dict())
    return paths


def record_start(events: EventLog, plan: JobPlan, environ: Mapping[str, str]) -> None:
    """The agent's pid and host (a report tells a killed agent from a running one), and the run
    in the per-user index of recent runs (`erun runs`)."""
    events.write(AGENT_EVENT, pid=os.getpid(), host=socket.gethostname())
    index.add_run(environ, plan.run_dir, plan.name or Path(plan.run_dir).name, os.getpid())


def write_summary(paths: RunPaths, result: RunResult) -> None:
    write_json(paths.summary, result.to_dict())


def write_json(path: Path, data: Any) -> None:
    """Write atomically, so a reader (erun status, a crash) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
