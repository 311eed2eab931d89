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

from runner.record.disk import DroppedWrites
from runner.runtime.console import Console

READ_SIZE = 65536
# One pump reads at most this much, so one chatty rank cannot hold the loop (and the signals,
# exits and other ranks it serves) for longer than a few reads.
PUMP_BYTES = 4 * READ_SIZE
# A console line longer than this is split, as container log drivers split at 16 KiB: memory
# per stream stays bounded and a line without a newline costs linear time, not quadratic.
LINE_MAX = 16384
# Marks a console line that continues the one before (a split line); the log file has none.
CONTINUED = b"(cont) "
# What `close()` still reads from a pipe whose worker has ended (its children may hold it).
DRAIN_BYTES = 64 * 1024 * 1024


class ConsoleLines:
    """One stream's bytes in, console lines out: complete lines, and a line longer than LINE_MAX
    as pieces of LINE_MAX (continuations marked). Only new data is scanned and the kept tail is
    bounded, so a line without a newline costs linear time and bounded memory."""

    def __init__(self) -> None:
        self.partial = b""  # the unterminated tail, never longer than LINE_MAX
        self._continued = False  # whether `partial` continues a line already partly shown

    def feed(self, data: bytes) -> list[bytes]:
        """The console lines `data` completes (without their newlines)."""
        *lines, tail = data.split(b"\n")
        out: list[bytes] = []
        if lines:
            lines[0] = self.partial + lines[0]
            self.partial = b""
            for line in lines:
                out += self._pieces(line)
                self._continued = False
        self.partial += tail
        while len(self.partial) >= LINE_MAX:
            out.append(self._mark(self.partial[:LINE_MAX]))
            self.partial = self.partial[LINE_MAX:]
            self._continued = True
        return out

    def flush(self) -> bytes | None:
        """The unterminated tail as a last console line (None when there is none)."""
        if not self.partial:
            return None
        last, self.partial = self._mark(self.partial), b""
        return last

    def _pieces(self, line: bytes) -> list[bytes]:
        """A complete line as console lines of at most LINE_MAX bytes (continuations marked)."""
        if not line and self._continued:  # the newline right after a full piece: no empty line
            return []
        pieces = []
        for at in range(0, max(1, len(line)), LINE_MAX):
            pieces.append(self._mark(line[at:at + LINE_MAX]))
            self._continued = True
        return pieces

    def _mark(self, piece: bytes) -> bytes:
        return CONTINUED + piece if self._continued else piece


class FilteredCopy:
    """One attempt's filtered copy of one stream of all ranks (torchrun's filtered_stdout.log):
    the console lines that contain any of `needles`, behind their console prefix. torchrun
    matches the line with its newline; no needle can hold a newline, so the line alone does."""

    def __init__(self, path: Path, needles: tuple[str, ...], dropped: DroppedWrites | None = None,
                 mode: int = 0o600) -> None:
        self.path = path
        self._needles = tuple(n.encode() for n in needles)
        self._dropped = dropped or DroppedWrites()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
        try:  # truncated, as torchrun opens it ("w") for each attempt
            self._file = os.open(path, flags, mode)
        except OSError as e:
            self._file = -1
            self._dropped.count(0, path, e)

    def write(self, prefix: bytes, lines: list[bytes]) -> None:
        """Copy the lines that match (each behind `prefix`, newline-terminated)."""
        kept = [prefix + line + b"\n" for line in lines if any(n in line for n in self._needles)]
        if not kept:
            return
        data = b"".join(kept)
        if self._file >= 0:
            self._dropped.write(self._file, data, self.path)
        else:
            self._dropped.bytes += len(data)

    def close(self) -> None:
        if self._file >= 0:
            os.close(self._file)
            self._file = -1


class OutputStream:
    """One pipe of one worker: drains to a file, and line-wise to the console (`stream` is
    "stdout" or "stderr": where on the console its lines go)."""

    def __init__(self, fd: int, path: Path, console: Console | None, prefix: bytes,
                 stream: str = "stdout", dropped: DroppedWrites | None = None, mode: int = 0o600,
                 copy: FilteredCopy | None = None) -> None:
        self.fd = fd
        self._copy = copy  # where matching console lines are copied too (logs.duplicate_filters)
        self.path = path
        # A full disk must not stop the worker: what cannot be written is counted, not raised.
        self._dropped = dropped or DroppedWrites()
        try:
            self._file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, mode)
        except OSError as e:
            self._file = -1
            self._dropped.count(0, path, e)
        self._console = console
        self._stream = stream
        self._prefix = prefix
        self._lines = ConsoleLines()
        self.last_line = b""
        self.last_activity = time.monotonic()
        self.open = True

    def pump(self, max_bytes: int = PUMP_BYTES) -> bool:
        """Read what is there, up to `max_bytes`. False once the pipe is at EOF (the stream is
        then closed); True while it is open, though more may be waiting (the selector says)."""
        done = 0
        while self.open and done < max_bytes:
            try:
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                return True
            if not data:
                self.close()
                return False
            done += len(data)
            if self._file >= 0:
                self._dropped.write(self._file, data, self.path)
            else:
                self._dropped.bytes += len(data)
            self.last_activity = time.monotonic()
            self._echo(data)
        return self.open

    def drain(self, max_bytes: int = DRAIN_BYTES) -> None:
        """Read all that is waiting (up to `max_bytes`), then close."""
        self.pump(max_bytes)
        self.close()

    def _echo(self, data: bytes) -> None:
        out = self._lines.feed(data)
        if out:
            self.last_line = out[-1]
            self._write_console(out)

    def _write_console(self, lines: list[bytes]) -> None:
        if self._copy is not None:
            self._copy.write(self._prefix, lines)
        if self._console is None:
            return
        self._console.write(self._stream, b"".join(self._prefix + line + b"\n" for line in lines))

    def close(self) -> None:
        """Flush a last unterminated line and close the file (the pipe is the Process's)."""
        if not self.open:
            return
        self.open = False
        rest = self._lines.flush()
        if rest is not None:
            self.last_line = rest
            self._write_console([rest])
        if self._file >= 0:
            os.close(self._file)


def make_prefix(template: str, rank: int, local_rank: int, role: str, attempt: int,
                space: bool = True) -> bytes:
    """The console prefix of a rank's lines; a space follows it unless `space` is off."""
    text = template.format(rank=rank, local_rank=local_rank, role=role, attempt=attempt)
    return (text + " ").encode() if space and text and not text.endswith(" ") else text.encode()


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
