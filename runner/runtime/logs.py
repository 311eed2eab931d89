"""Worker output: every byte to the rank's log file, complete lines to the console with a prefix.

The agent reads each worker's stdout and stderr pipes in its event loop (`pump`), writes the
bytes to attempt_N/rank_R/{stdout,stderr}.log unchanged, and copies whole lines to its own
stdout/stderr (through the `Console`) prefixed with the rank (`[3]:`), if the plan shows that
rank on the console.
"""

from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path

from runner.runtime.console import Console

READ_SIZE = 65536


class OutputStream:
    """One pipe of one worker: drains to a file, and line-wise to the console (`stream` is
    "stdout" or "stderr": where on the console its lines go)."""

    def __init__(self, fd: int, path: Path, console: Console | None, prefix: bytes,
                 stream: str = "stdout") -> None:
        self.fd = fd
        self.path = path
        self._file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._console = console
        self._stream = stream
        self._prefix = prefix
        self._partial = b""
        self.last_line = b""
        self.last_activity = time.monotonic()
        self.open = True

    def pump(self) -> bool:
        """Read what is there. False once the pipe is at EOF (the stream is then closed)."""
        while self.open:
            try:
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                return True
            if not data:
                self.close()
                return False
            os.write(self._file, data)
            self.last_activity = time.monotonic()
            self._echo(data)
        return False

    def _echo(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if lines:
            self.last_line = lines[-1]
            self._write_console(lines)

    def _write_console(self, lines: list[bytes]) -> None:
        if self._console is None:
            return
        self._console.write(self._stream, b"".join(self._prefix + line + b"\n" for line in lines))

    def close(self) -> None:
        """Flush a last unterminated line and close the file (the pipe is the Process's)."""
        if not self.open:
            return
        self.open = False
        if self._partial:
            self.last_line = self._partial
            self._write_console([self._partial])
            self._partial = b""
        os.close(self._file)


def make_prefix(template: str, rank: int, local_rank: int, role: str, attempt: int) -> bytes:
    text = template.format(rank=rank, local_rank=local_rank, role=role, attempt=attempt)
    return (text + " ").encode() if text and not text.endswith(" ") else text.encode()


def tail(path: Path | str, lines: int = 20, max_bytes: int = 65536) -> list[str]:
    """The last lines of a log file, decoded leniently; [] when it is missing."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace").rstrip("\n")
    return list(deque(text.splitlines(), maxlen=lines)) if text else []
