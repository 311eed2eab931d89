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


class SignalInbox:
    """Installs handlers for the agent's signals; `fileno()` for the selector, `drain()` to read."""

    def __init__(self) -> None:
        self._recv, self._send = socket.socketpair()
        self._recv.setblocking(False)
        self._send.setblocking(False)
        self._previous: dict[int, Any] = {}
        self._old_wakeup = -1

    def install(self) -> None:
        for sig in (*STOP_SIGNALS, *FORWARD_SIGNALS):
            self._previous[sig] = signal.signal(sig, _note)
        self._old_wakeup = signal.set_wakeup_fd(self._send.fileno(), warn_on_full_buffer=False)

    def fileno(self) -> int:
        return self._recv.fileno()

    def drain(self) -> list[int]:
        """Signal numbers received since the last call, in order."""
        received: list[int] = []
        while True:
            try:
                data = self._recv.recv(512)
            except BlockingIOError:
                return received
            if not data:
                return received
            received.extend(data)

    def uninstall(self) -> None:
        signal.set_wakeup_fd(self._old_wakeup)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        self._recv.close()
        self._send.close()


def _note(signum: int, frame: FrameType | None) -> None:
    """The wakeup fd carries the signal; the handler only keeps Python from dying of it."""
