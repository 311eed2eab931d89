"""The agent's event loop: one selector over everything that can happen while workers run.

It watches a pidfd per worker (readable the moment it exits), each worker's stdout and stderr
pipes, the signal inbox, torch's file-timer FIFO and the orphan guard's pidfd; nothing polls.
Each `turn` pumps output, notes exits and replaces a dead guard, and hands the signals that
arrived back to the agent, which decides what they mean.
"""

from __future__ import annotations

import selectors
import time

from runner.runtime.custody import Custody
from runner.runtime.filetimer import FileTimerServer
from runner.runtime.logs import OutputStream
from runner.runtime.signals import SignalInbox
from runner.runtime.workers import Worker, WorkerGroup

# The longest single wait: epoll rejects a timeout over ~24 days, and every caller loops until
# its deadline anyway.
MAX_SELECT_S = 3600.0


class EventLoop:
    """`open(...)` before the first worker, `watch(worker)` for each, `turn(...)` until done,
    `release(group)` after each attempt, `close()` at the end."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._inbox = SignalInbox()

    def open(self, custody: Custody, timers: FileTimerServer | None) -> None:
        """Take the agent's signals, and watch the file timers and the guard."""
        self._inbox.install()
        self._selector.register(self._inbox.fileno(), selectors.EVENT_READ, None)
        if timers is not None:
            self._selector.register(timers.fileno(), selectors.EVENT_READ, timers)
        self._selector.register(custody.fileno(), selectors.EVENT_READ, custody)

    def close(self) -> None:
        self._inbox.uninstall()
        self._selector.close()

    def watch(self, worker: Worker) -> None:
        """Register a fresh worker's pidfd and pipes."""
        assert worker.process is not None
        self._selector.register(worker.process.pidfd, selectors.EVENT_READ, worker)
        for stream in worker.streams:
            self._selector.register(stream.fd, selectors.EVENT_READ, stream)

    def turn(self, group: WorkerGroup | None, deadline: float | None, stopping: bool = False) -> list[int]:
        """Wait until something happens (or `deadline`, a monotonic time): pump output, note
        exits (STOPPED rather than FAILED while `stopping`). Returns the signals received."""
        timeout = None if deadline is None else min(MAX_SELECT_S, max(0.0, deadline - time.monotonic()))
        signums: list[int] = []
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                signums += self._inbox.drain()
            elif isinstance(key.data, OutputStream):
                if not key.data.pump():
                    self._selector.unregister(key.fd)
            elif isinstance(key.data, FileTimerServer):
                key.data.read()
            elif isinstance(key.data, Custody):
                key.data.guard_died()
            elif group is not None:
                self._on_exit(group, key.data, stopping)
        return signums

    def _on_exit(self, group: WorkerGroup, worker: Worker, stopping: bool) -> None:
        group.on_exit(worker, stopping)
        if not worker.running:
            assert worker.process is not None
            self._selector.unregister(worker.process.pidfd)

    def release(self, group: WorkerGroup) -> None:
        """Unregister and close what the group still holds, after a last drain of output."""
        for worker in group.workers:
            fds = [s.fd for s in worker.streams if s.open]
            if worker.process is not None and worker.process.pidfd not in worker.process.closed_fds:
                fds.append(worker.process.pidfd)
            for fd in fds:
                if fd in self._selector.get_map():
                    self._selector.unregister(fd)
        group.close()
