"""What erun shows on the terminal while a job runs, in one place.

Worker lines, the agent's notes and, on a terminal, a live status panel kept at the bottom of
the screen: before anything is written the panel is erased, after it the panel is drawn again,
so worker output stays readable above it. Off a terminal (CI, pipes, files) there is no panel
and no control code at all: plain prefixed lines only.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import TextIO

ERASE_LINE_UP = "\x1b[{n}F\x1b[J"  # cursor up n lines to column 1, clear to the end of screen


class Console:
    """Writes worker output and notes; `panel(rows)` shows a status panel when enabled."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, panel: bool = False) -> None:
        self._streams = {"stdout": out or sys.stdout, "stderr": err or sys.stderr}
        self._dead: set[str] = set()
        self.panel_enabled = panel
        self._rows: list[str] = []
        self._drawn = 0

    def write(self, stream: str, data: bytes) -> None:
        """Complete lines of worker output to our stdout or stderr."""
        if stream in self._dead:
            return
        self._erase()
        try:
            target = self._streams[stream]
            target.flush()
            os.write(target.fileno(), data)
        except OSError:  # closed (`erun ... | head`): the log files still get everything
            self._dead.add(stream)
        self._draw()

    def note(self, message: str) -> None:
        self.write("stderr", f"erun: {message}\n".encode())

    def panel(self, rows: list[str]) -> None:
        """Replace the panel's rows and redraw it (a no-op off a terminal)."""
        if not self.panel_enabled:
            return
        self._erase()
        self._rows = rows
        self._draw()

    def close(self) -> None:
        """Take the panel off the screen for good (the final report follows)."""
        self._erase()
        self._rows = []
        self.panel_enabled = False

    def _erase(self) -> None:
        if self._drawn:
            self._raw(ERASE_LINE_UP.format(n=self._drawn))
            self._drawn = 0

    def _draw(self) -> None:
        if not (self.panel_enabled and self._rows):
            return
        width = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
        self._raw("".join(row[:width] + "\n" for row in self._rows))
        self._drawn = len(self._rows)

    def _raw(self, text: str) -> None:
        try:
            err = self._streams["stderr"]
            err.flush()
            os.write(err.fileno(), text.encode())
        except OSError:
            self.panel_enabled = False


def wants_panel(mode: str, stream: TextIO | None = None) -> bool:
    """`logs.panel`: on, off, or auto (a real terminal that is not `dumb`)."""
    if mode in ("on", "off"):
        return mode == "on"
    stream = stream or sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and os.environ.get("TERM", "") not in ("", "dumb")
