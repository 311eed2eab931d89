"""Reading a run record that may be damaged or hostile: bounded reads and checked values.

A run directory is data from anywhere (a crashed agent, a full disk, a careless edit, a person
who means harm): `erun status` and `erun report` read only regular files, at most a few MiB of
each (the end of events.jsonl, where the current attempt is), and take a value only when it has
the type and range the record promises. Anything else counts as a damaged line or is left out;
nothing here raises on bad data but `Unreadable` (a file that is no regular file).
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any

# events.jsonl is read from its end: the last 64 MiB hold far more than any report shows.
EVENTS_TAIL_BYTES = 64 * 1024 * 1024
# summary.json and plan.json: erun's own are a few KiB (a long job's summary a few MiB).
JSON_MAX_BYTES = 32 * 1024 * 1024
# Times are wall-clock seconds: anything before 1970 or after the year 5000 is not erun's.
TIME_RANGE = (0.0, 1e11)
# Counts, ranks, pids, exit codes: what a C int holds.
INT_RANGE = (-(2**63), 2**63 - 1)


class Unreadable(Exception):
    """A record file that is no regular file (a link to /dev/zero, a pipe, a folder)."""


def read_capped(path: Path, max_bytes: int, tail: bool = False) -> bytes | None:
    """At most `max_bytes` of a regular file (its end when `tail`); None when it is missing.
    Never blocks (a FIFO is opened non-blocking) and never reads a device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Unreadable(f"{path} cannot be read ({e.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable(f"{path} is not a regular file")
        start = max(0, info.st_size - max_bytes) if tail else 0
        return os.pread(fd, max_bytes, start)
    finally:
        os.close(fd)


def finite(value: Any, low: float = -math.inf, high: float = math.inf) -> float:
    """A real number within [low, high] (bool is not a number); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"not a number: {value!r:.40}")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"out of range: {value!r:.40}")
    return number


def stamp(value: Any) -> float:
    return finite(value, *TIME_RANGE)


def opt_stamp(value: Any) -> float | None:
    return None if value is None else stamp(value)


def integer(value: Any, low: int = INT_RANGE[0], high: int = INT_RANGE[1]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"not an integer in range: {value!r:.40}")
    return value


def opt_int(value: Any) -> int | None:
    return None if value is None else integer(value)


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"not a string: {value!r:.40}")
    return value


def opt_text(value: Any) -> str | None:
    return None if value is None else text(value)


def lenient(check: Any, value: Any) -> Any:
    """`check(value)`, or None when the value is bad (for fields a report can do without)."""
    try:
        return check(value)
    except ValueError:
        return None
