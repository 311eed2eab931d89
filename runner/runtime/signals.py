"""Signals to the agent, delivered as events of its loop (no work in signal handlers).

Python runs handlers only between bytecodes of the main thread; with `set_wakeup_fd` the
signal number is also written to a socket the agent's selector watches, so a signal wakes
the loop at once even while it blocks in `select`.
"""

from __future__ import annotations

import signal
import socket
from types import FrameType
from typing import Any

# Stop the job: forward, wait the grace, kill, exit 128+N.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Forward to every worker and keep running (preemption notices).
FORWARD_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


class WakeupFd:
    """Python's signal wakeup fd set to a socket pair while installed: every signal's number
    comes out of `fileno()`, whatever the moment and the thread that ran the C handler."""

    def __init__(self) -> None:
        self._recv, self._send = socket.socketpair()
        self._recv.setblocking(False)
        self._send.setblocking(False)
        self.previous = -1  # the wakeup fd set before (an asyncio loop's), if any

    def install(self) -> None:
        """Raises ValueError outside the main thread (only it may set the wakeup fd)."""
        self.previous = signal.set_wakeup_fd(self._send.fileno(), warn_on_full_buffer=False)

    def fileno(self) -> int:
        return self._recv.fileno()

    def read(self) -> bytes:
        """The signal numbers written since the last call."""
        chunks = []
        while True:
            try:
                data = self._recv.recv(512)
            except BlockingIOError:
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)

    def restore(self) -> None:
        """The wakeup fd set before is the process's again."""
        signal.set_wakeup_fd(self.previous)

    def close(self) -> None:
        self._recv.close()
        self._send.close()


class SignalInbox:
    """Installs handlers for the agent's signals; `fileno()` for the selector, `drain()` to read."""

    def __init__(self) -> None:
        self._wakeup = WakeupFd()
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (*STOP_SIGNALS, *FORWARD_SIGNALS):
            self._previous[sig] = signal.signal(sig, _note)
        self._wakeup.install()

    def fileno(self) -> int:
        return self._wakeup.fileno()

    def drain(self) -> list[int]:
        """Signal numbers received since the last call, in order."""
        return list(self._wakeup.read())

    def uninstall(self) -> None:
        self._wakeup.restore()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        self._wakeup.close()


def _note(signum: int, frame: FrameType | None) -> None:
    """The wakeup fd carries the signal; the handler only keeps Python from dying of it."""
