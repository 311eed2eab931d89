"""The child process that hosts erun's agent, seen from the caller: started in a session of its
own (it dies with the caller: PR_SET_PDEATHSIG), its output copied whole line by whole line to
the caller's `sys.stdout` / `sys.stderr` as it comes (in a notebook: the cell), and stopped by
Ctrl-C (the notebook's interrupt button): the agent gets one SIGINT and stops every worker
with its grace; a second Ctrl-C kills the agent, whose workers die with it.

The Ctrl-C reaches the pump as the KeyboardInterrupt Python's handler raises in the main thread,
which runs only between bytecodes: not while the main thread waits in `select`. An EINTR ends
that wait only when the signal lands on the main thread inside the system call; one that lands
just before it (or on another thread) leaves it waiting for the child's next output (a worker
that prints nothing: for ever). So the pump also watches a wakeup fd (`signal.set_wakeup_fd`),
written by Python's C handler whatever the moment and the thread.
"""

from __future__ import annotations

import os
import selectors
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from runner.runtime import processes
from runner.runtime.signals import WakeupFd

REPORT_RULE = "=" * 72  # runner.runtime.final_report frames a failure report with it


@dataclass
class Output:
    """What came out of the child: every stdout byte when kept, and the failure report's lines."""

    keep_stdout: bool = False
    stdout: bytearray = field(default_factory=bytearray)
    report: list[str] = field(default_factory=list)
    _in_report: bool = False
    _partial: dict[str, bytes] = field(default_factory=dict)

    def take(self, stream: str, data: bytes, show: TextIO | None) -> None:
        if stream == "stdout" and self.keep_stdout:
            self.stdout += data
            return
        shown = self._partial.pop(stream, b"") + data
        if data:  # whole lines only; at the end (b""), what is left
            lines, newline, rest = shown.rpartition(b"\n")
            shown = lines + newline
            if rest:
                self._partial[stream] = rest
        if shown and show is not None:
            show.write(shown.decode(errors="replace"))
            show.flush()
        if stream == "stderr":
            self._note_report(shown.decode(errors="replace"))

    def _note_report(self, text: str) -> None:
        for line in text.splitlines():
            if line == REPORT_RULE:
                self._in_report = not self._in_report
                if self._in_report:
                    self.report = []
            if self._in_report or line == REPORT_RULE:
                self.report.append(line)


class Wakeup:
    """Python's signal wakeup fd (`runner.runtime.signals.WakeupFd`) for the pump while the child
    runs, set back after. The bytes (signal numbers) go on to the wakeup fd set before, if any
    (an asyncio loop's, in a notebook), so that loop still sees its signals."""

    def __init__(self) -> None:
        self._fd = WakeupFd()

    @classmethod
    def install(cls) -> Wakeup | None:
        """A wakeup fd set for this process; None outside the main thread (only the main thread
        may set it, and a signal raises in no other: the pump then has no Ctrl-C to pass on)."""
        wakeup = cls()
        try:
            wakeup._fd.install()
        except ValueError:
            wakeup._fd.close()
            return None
        return wakeup

    def fileno(self) -> int:
        return self._fd.fileno()

    def drain(self) -> None:
        """Empty the socket (the signal's own handler does the rest), passing the bytes on."""
        data = self._fd.read()
        if data and self._fd.previous >= 0:
            try:
                os.write(self._fd.previous, data)
            except OSError:  # full or closed: its owner's business, as for the kernel's writes
                pass

    def uninstall(self) -> None:
        self._fd.restore()
        self.drain()  # what came since the last turn goes on too
        self._fd.close()


def run_child(argv: Sequence[str], env: Mapping[str, str], cwd: str,
              keep_stdout: bool = False) -> tuple[int, Output]:
    """Run `argv`, copying its output as it comes; its exit status (KeyboardInterrupt raised
    again once it has stopped)."""
    wakeup = Wakeup.install()  # before the child: a Ctrl-C from its first instant wakes the pump
    try:
        return _run(argv, env, cwd, keep_stdout, wakeup)
    finally:
        if wakeup is not None:
            wakeup.uninstall()


def _run(argv: Sequence[str], env: Mapping[str, str], cwd: str, keep_stdout: bool,
         wakeup: Wakeup | None) -> tuple[int, Output]:
    child = processes.spawn(list(argv), env, cwd)
    output = Output(keep_stdout)
    interrupted = False
    try:
        while True:
            try:
                _pump(child, output, wakeup)
                break
            except KeyboardInterrupt:
                # First Ctrl-C: the agent stops its workers. Second: the agent dies (so do they).
                os.kill(child.pid, signal.SIGKILL if interrupted else signal.SIGINT)
                interrupted = True
        code = child.popen.wait()
    finally:
        if child.popen.poll() is None:  # an error of ours: never leave the agent behind
            os.kill(child.pid, signal.SIGKILL)
            child.popen.wait()
        child.close()
    if interrupted:
        raise KeyboardInterrupt
    return code, output


def _pump(child: processes.Process, output: Output, wakeup: Wakeup | None = None) -> None:
    """Copy the child's output until both its pipes are closed. A signal (its byte on `wakeup`)
    ends the wait: its handler then runs, a Ctrl-C raising KeyboardInterrupt from here."""
    streams = {child.stdout_fd: ("stdout", sys.stdout), child.stderr_fd: ("stderr", sys.stderr)}
    with selectors.DefaultSelector() as selector:
        for fd in streams:
            if fd not in child.closed_fds:
                selector.register(fd, selectors.EVENT_READ)
        if wakeup is not None:
            selector.register(wakeup.fileno(), selectors.EVENT_READ)
        while any(fd not in child.closed_fds for fd in streams):
            for key, _ in selector.select():
                if key.fd not in streams:
                    assert wakeup is not None
                    wakeup.drain()
                    continue
                name, show = streams[key.fd]  # type: ignore[index]
                data = _read(key.fd)
                if data is None:
                    continue
                output.take(name, data, show)
                if not data:
                    selector.unregister(key.fd)
                    os.close(key.fd)
                    child.closed_fds.add(key.fd)


def _read(fd: int) -> bytes | None:
    """What the pipe holds (b"": closed), or None when nothing after all."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
    except OSError:
        return b""
