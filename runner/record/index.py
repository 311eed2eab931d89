"""The per-user index of recent runs (`StatePaths.runs_index`): its one writer and its one reader.

Each agent appends a line when its run starts (run directory, name, start time, pid), so that
`erun status`, `erun report` and `erun runs` find the newest runs without being told where.
The index is a convenience: failing to write it never stops a job, a line that cannot be read
is skipped, and a run whose directory was deleted is left out, never an error. The run's state
is read from its own directory, never from here.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from runner.paths import OUTPUTS_DIR, RunPaths, StatePaths

# Past this many lines the index is cut to its newest KEEP_LINES (it is read whole).
MAX_LINES = 2000
KEEP_LINES = 1000


@dataclass(frozen=True)
class IndexEntry:
    """One run as the index knows it."""

    run_dir: Path
    name: str
    start: float
    pid: int | None = None


def add_run(environ: Mapping[str, str], run_dir: str, name: str, pid: int) -> None:
    """Append the run to the index (best effort: a read-only home never fails a job)."""
    path = StatePaths.of(environ).runs_index
    line = json.dumps({"run_dir": run_dir, "name": name, "start": round(time.time(), 3), "pid": pid})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(line + "\n")
        _trim(path)
    except OSError:
        pass


def _trim(path: Path) -> None:
    lines = path.read_text().splitlines()
    if len(lines) > MAX_LINES:
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text("\n".join(lines[-KEEP_LINES:]) + "\n")
        os.replace(tmp, path)


def recent_runs(environ: Mapping[str, str], cwd: Path, limit: int | None = None) -> list[IndexEntry]:
    """The runs whose directories still exist, newest first: the index's, else (none yet, or
    all deleted) the run directories under cwd/outputs."""
    indexed = _existing(_read_index(StatePaths.of(environ).runs_index), limit)
    return indexed or _existing(_outputs_runs(cwd / OUTPUTS_DIR), limit)


def _existing(entries: list[IndexEntry], limit: int | None) -> list[IndexEntry]:
    seen: set[Path] = set()
    found: list[IndexEntry] = []
    for entry in sorted(entries, key=lambda e: e.start, reverse=True):
        shown = job_dir(entry.run_dir)
        if shown in seen or not RunPaths(entry.run_dir).events.is_file():
            continue
        seen.add(shown)
        found.append(replace(entry, run_dir=shown))
        if limit is not None and len(found) >= limit:
            break
    return found


def job_dir(run_dir: Path) -> Path:
    """A cluster job's node (run_dir/node_N, whose agent indexed it) stands for its whole job."""
    parent = run_dir.parent
    if run_dir.name.startswith("node_") and RunPaths(parent).slurm_job.is_file():
        return parent
    return run_dir


def _read_index(path: Path) -> list[IndexEntry]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        try:
            data = json.loads(line)
            entries.append(IndexEntry(Path(data["run_dir"]), str(data.get("name") or ""),
                                      float(data["start"]), data.get("pid")))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a line cut short by a full disk, or an older format
    return entries


def _outputs_runs(outputs: Path) -> list[IndexEntry]:
    """outputs/DATE/TIME_NAME run directories (Hydra's default layout), by their first event."""
    if not outputs.is_dir():
        return []
    entries = []
    for events in outputs.glob(f"*/*/{RunPaths(Path()).events.name}"):
        try:
            with events.open() as f:
                start = float(json.loads(f.readline())["time"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        entries.append(IndexEntry(events.parent.resolve(), "", start))
    return entries
