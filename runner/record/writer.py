"""The run record: plan.json, events.jsonl and summary.json in the run directory.

The event log is append-only JSON lines with a wall-clock `time`; every message the agent
prints for people is also a `note` event (runner.runtime.notes writes both). Reading them back is
runner.record.read's job.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from runner.errors import ConfigError
from runner.paths import PRIVATE_FILE_MODE, RunPaths, dir_mode, file_mode
from runner.plan import JobPlan
from runner.record import index
from runner.record.disk import DroppedWrites
from runner.record.model import AGENT_EVENT
from runner.state import RunResult


class EventLog:
    """Append-only events.jsonl."""

    def __init__(self, path: Path, dropped: DroppedWrites | None = None,
                 mode: int = PRIVATE_FILE_MODE) -> None:
        self.path = path
        self.dropped = dropped or DroppedWrites()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, mode)

    def write(self, event: str, **fields: Any) -> None:
        """Append one event; a full disk drops it (counted), never stops the job."""
        line = json.dumps({"time": round(time.time(), 6), "event": event, **fields}, default=str)
        if self._fd >= 0:
            self.dropped.write(self._fd, line.encode() + b"\n", self.path)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def open_run_dir(plan: JobPlan) -> RunPaths:
    """Create the run directory (the user's only, unless `logs.private=false`) with plan.json
    (the latest segment's plan, when it continues a run: runner.record.continuation); refuse one
    that cannot be written."""
    paths = RunPaths(Path(plan.run_dir), plan.logs.layout, plan.nproc)
    make_run_dir(paths.run_dir, plan.logs.private)
    try:
        write_file(paths.plan, plan.to_json(redacted=True) + "\n", file_mode(plan.logs.private))
    except OSError as e:
        raise unwritable(paths.plan, e) from None
    return paths


def record_start(events: EventLog, plan: JobPlan, environ: Mapping[str, str], segment: int = 1) -> None:
    """The agent's pid and host (a report tells a killed agent from a running one) and its segment
    of the record, and the run in the per-user index of recent runs (`erun runs`)."""
    events.write(AGENT_EVENT, pid=os.getpid(), host=socket.gethostname(), segment=segment)
    index.add_run(environ, plan.run_dir, plan.name or Path(plan.run_dir).name, os.getpid())


def make_run_dir(run_dir: Path, private: bool = True) -> None:
    """mkdir -p, the last folder (and any made on the way) with erun's mode; ConfigError if it fails."""
    try:
        run_dir.mkdir(mode=dir_mode(private), parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError("run_dir", f"{run_dir} cannot be created: {e.strerror}",
                          "choose a writable directory (hydra.run.dir=...)") from None


def unwritable(path: Path, error: OSError) -> ConfigError:
    """A run directory that cannot take erun's first file: nothing has started yet."""
    return ConfigError("run_dir", f"cannot write {path}: {error.strerror or error}",
                       "choose a directory on a disk with space that you can write (hydra.run.dir=...)")


def write_start_files(files: Mapping[str, str], private: bool = True) -> None:
    """The files a run directory gets before the agent starts (job.yaml, .hydra/*.yaml);
    a read-only or full disk is a ConfigError, before any worker starts."""
    for name, text in files.items():
        path = Path(name)
        try:
            path.parent.mkdir(mode=dir_mode(private), parents=True, exist_ok=True)
            write_file(path, text, file_mode(private))
        except OSError as e:
            raise unwritable(path, e) from None


def write_summary(paths: RunPaths, result: RunResult, dropped: DroppedWrites | None = None,
                  mode: int = PRIVATE_FILE_MODE,
                  merge: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
    """summary.json (`merge` adds the earlier segments' part); OSError when it cannot be written
    (the caller says so, the job goes on)."""
    data = result.to_dict() if merge is None else merge(result.to_dict())
    if dropped is not None and dropped.bytes:
        data["dropped_bytes"] = dropped.bytes
        data["dropped_reason"] = dropped.first_error
    write_json(paths.summary, data, mode)


def write_json(path: Path, data: Any, mode: int = PRIVATE_FILE_MODE) -> None:
    """Write atomically, so a reader (erun status, a crash) never sees half a file."""
    write_file(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode)


def write_file(path: Path | str, data: str | bytes, mode: int = PRIVATE_FILE_MODE) -> None:
    """Replace `path` whole or not at all, never through a link: the bytes go to a new temporary
    file beside it (O_EXCL|O_NOFOLLOW: nothing planted there is followed or reused), which is
    then renamed over `path` (a rename replaces a link at `path`, it never writes its target).
    Every writer of erun's files uses this. On failure nothing is left behind and OSError rises."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view):]
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
