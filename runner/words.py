"""Things in words for people, one function each: a path as the user would type it, how a process
ended, a clock time, a duration, a count. Used by every layer that talks to a person."""

from __future__ import annotations

import os
import time
from pathlib import Path


def display_path(path: str | Path, cwd: str | Path | None = None) -> str:
    """`path` as the user would type it: relative to `cwd` (default: the working directory) when
    it lies under it, else as given."""
    rel = os.path.relpath(path, cwd) if cwd is not None else os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def describe_exit(exit_code: int | None, signal: str | None) -> str:
    """How a process ended: `exited 3`, `killed by SIGKILL`; no code and no signal means it never
    ended, even after SIGKILL (the agent left it behind)."""
    if signal:
        return f"killed by {signal}"
    if exit_code is None:
        return "did not exit (stuck in uninterruptible sleep?)"
    return f"exited {exit_code}"


def clock(stamp: float) -> str:
    """Local wall-clock time with milliseconds."""
    return time.strftime("%H:%M:%S", time.localtime(stamp)) + f".{int(stamp % 1 * 1000):03d}"


def date_clock(stamp: float) -> str:
    return time.strftime("%Y-%m-%d ", time.localtime(stamp)) + clock(stamp)


def duration(seconds: float | None) -> str:
    """0.57 s, 42.0 s, 3 min 05 s, 2 h 03 min."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
