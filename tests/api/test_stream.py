"""runner.api.stream's wakeup fd, in this process (no child): a signal makes the pump's socket
readable whatever thread ran Python's C handler, the wakeup fd set before still gets every
signal's byte and is set again afterwards; off the main thread there is none."""

from __future__ import annotations

import selectors
import signal
import socket
import threading
from collections.abc import Iterator

import pytest

from runner.api.stream import Wakeup


@pytest.fixture
def earlier_wakeup() -> Iterator[socket.socket]:
    """A wakeup fd already set (as an asyncio loop sets one) and a SIGUSR1 handler that does
    nothing; the reading end is yielded. Both are put back as they were after."""
    recv, send = socket.socketpair()
    recv.setblocking(False)
    send.setblocking(False)
    handler = signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    before = signal.set_wakeup_fd(send.fileno())
    yield recv
    signal.set_wakeup_fd(before)
    signal.signal(signal.SIGUSR1, handler)
    recv.close()
    send.close()


def readable(fd: int) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        return bool(selector.select(timeout=10.0))


def test_a_signal_handled_in_another_thread_wakes_the_pump(earlier_wakeup: socket.socket) -> None:
    wakeup = Wakeup.install()
    assert wakeup is not None
    try:
        # Thread-directed: the C handler runs in that thread; the main thread gets no EINTR.
        other = threading.Thread(target=lambda: signal.pthread_kill(threading.get_ident(), signal.SIGUSR1))
        other.start()
        other.join()
        assert readable(wakeup.fileno())
        wakeup.drain()
        assert earlier_wakeup.recv(16) == bytes([signal.SIGUSR1])  # passed on to the earlier one
    finally:
        wakeup.uninstall()
    signal.raise_signal(signal.SIGUSR1)
    assert earlier_wakeup.recv(16) == bytes([signal.SIGUSR1])  # the earlier one is set again


def test_a_signal_not_yet_drained_when_the_child_ends_is_passed_on(earlier_wakeup: socket.socket) -> None:
    wakeup = Wakeup.install()
    assert wakeup is not None
    signal.raise_signal(signal.SIGUSR1)
    wakeup.uninstall()
    assert earlier_wakeup.recv(16) == bytes([signal.SIGUSR1])


def test_no_wakeup_fd_off_the_main_thread() -> None:
    got: list[Wakeup | None] = []
    before = signal.set_wakeup_fd(-1)
    try:
        other = threading.Thread(target=lambda: got.append(Wakeup.install()))
        other.start()
        other.join()
        assert got == [None]
        assert signal.set_wakeup_fd(-1) == -1  # left alone
    finally:
        signal.set_wakeup_fd(before)
