"""Writes to the run directory that may fail (a full disk, a vanished folder): counted, never raised.

A logging failure must never stop the workers. Every byte the agent could not write (worker
output, events) is counted here; the agent says so once when it starts, and again at the end,
with the total (in the final report, the last event and summary.json when they can be written).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


class DroppedWrites:
    """Bytes that could not be written to the run record, and why (the first error)."""

    def __init__(self, on_first: Callable[[str], None] | None = None) -> None:
        self.bytes = 0
        self.first_error: str | None = None
        self.on_first = on_first
        self._saying = False

    def write(self, fd: int, data: bytes, path: Path | str) -> bool:
        """All of `data` to `fd` (or as much as fits); False when some was dropped."""
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view):]
            except OSError as e:
                self.count(len(view), path, e)
                return False
        return True

    def count(self, nbytes: int, path: Path | str, error: OSError) -> None:
        self.bytes += nbytes
        if self.first_error is not None:
            return
        self.first_error = f"{path}: {error.strerror or error}"
        if self.on_first is not None and not self._saying:
            self._saying = True  # the note itself may be dropped: say it once
            self.on_first(self.first_error)

    def in_words(self) -> str:
        return f"{self.bytes} byte(s) of logs and events were not written ({self.first_error})"
