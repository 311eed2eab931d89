"""A server for torch's `FileTimerClient`, inside the agent, without importing torch.

Workers that use `torch.distributed.elastic.timer.FileTimerClient` (with TORCHELASTIC_TIMER_FILE)
send one JSON line per request through a FIFO: {"version", "pid", "scope_id",
"expiration_time", "signal"}; a negative expiration time releases the timer. torchrun's server
kills the worker on expiry and, when the pid is not a worker, the agent itself; erun reports an
expired timer as a hung rank and lets the restart policy decide. The agent is never killed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

TIMER_FILE_VAR = "TORCHELASTIC_TIMER_FILE"


@dataclass(frozen=True)
class Timer:
    pid: int
    scope_id: str
    expiration_time: float


class FileTimerServer:
    """Owns the FIFO; `fileno()` for the selector, `read()` when readable, `expired(now)`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_fifo():  # an earlier segment's, whose agent was killed (runner.record.continuation)
            path.unlink()
        os.mkfifo(path, 0o600)
        # O_RDWR keeps one writer open (ours), so the FIFO never reports EOF/HUP between clients.
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self._partial = b""
        self._timers: dict[tuple[int, str], Timer] = {}

    def fileno(self) -> int:
        return self._fd

    def read(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            if not data:
                return
            *lines, self._partial = (self._partial + data).split(b"\n")
            for line in lines:
                self._register(line)

    def _register(self, line: bytes) -> None:
        try:
            request = json.loads(line)
            timer = Timer(int(request["pid"]), str(request["scope_id"]), float(request["expiration_time"]))
        except (ValueError, KeyError, TypeError):
            return  # not a timer request: ignore rather than die
        key = (timer.pid, timer.scope_id)
        if timer.expiration_time < 0:
            self._timers.pop(key, None)
        else:
            self._timers[key] = timer

    def expired(self, now: float) -> list[Timer]:
        return sorted((t for t in self._timers.values() if t.expiration_time <= now),
                      key=lambda t: t.expiration_time)

    def next_expiry(self) -> float | None:
        return min((t.expiration_time for t in self._timers.values()), default=None)

    def clear(self) -> None:
        """A new attempt: timers of the old workers mean nothing."""
        self._timers.clear()

    def close(self) -> None:
        os.close(self._fd)
        self.path.unlink(missing_ok=True)
