"""Waiting on torch's rendezvous without losing the agent's signals.

torch's rendezvous calls block (waiting for nodes, connecting to a store). The agent's signal
handlers only wake its selector, so a blocking call runs in a thread here while the main thread
notes stop signals: one arrives, and the wait ends at once with `Interrupted`. `PACER` stands
in for torch's pause between state reads, so an abandoned wait leaves torch's code promptly.
No torch import: runner.runtime.rendezvous installs the pacer into torch.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from runner.runtime.membership import Interrupted
from runner.runtime.signals import STOP_SIGNALS

T = TypeVar("T")
# After a stop signal, how long the abandoned thread gets to leave torch's code.
ABANDON_WAIT_S = 2.0


class Abandoned(Exception):
    """Raised inside torch's wait when the agent stopped waiting."""


class Pacer:
    """Stands in for torch's `dynamic_rendezvous._delay` (1 s between state reads, 0 to 0.3 s of
    skew before the first): the same waits, scaled, cut short by `abandon()`. The waiting thread
    then leaves torch's code before the agent exits; a daemon thread still inside torch's C++
    store at interpreter exit aborts the process ("terminate called without an active
    exception")."""

    def __init__(self) -> None:
        self.scale = 1.0
        self._abandoned = threading.Event()

    def __call__(self, seconds: float | tuple[float, float]) -> None:
        if isinstance(seconds, tuple):
            seconds = random.uniform(*seconds)
        if self._abandoned.wait(seconds * self.scale):
            raise Abandoned("the agent stopped waiting for the rendezvous")

    def abandon(self) -> None:
        self._abandoned.set()


PACER = Pacer()


class NoAnswer(Exception):
    """The rendezvous call did not return within its time."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer within {seconds:g} s")
        self.seconds = seconds


@contextmanager
def stop_signals() -> Iterator[list[int]]:
    """Note stop signals while torch blocks; the agent's own handlers come back afterwards (and
    its wakeup fd still gets the signal)."""
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _: received.append(signum)) for sig in STOP_SIGNALS}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def interruptible(call: Callable[[], T], timeout_s: float | None = None) -> T:
    """Run a blocking rendezvous call in a thread; a stop signal raises `Interrupted` at once.
    Past `timeout_s`, raise `TimeoutError` (the thread is abandoned: it is a daemon)."""
    if threading.current_thread() is not threading.main_thread():
        return call()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as e:  # handed to the caller's thread
            outcome["error"] = e

    thread = threading.Thread(target=target, name="erun-rendezvous", daemon=True)
    with stop_signals() as stops:
        thread.start()
        while thread.is_alive():
            thread.join(0.1)
            if stops:
                PACER.abandon()  # torch's wait ends at its next pause: leave no thread inside torch
                thread.join(ABANDON_WAIT_S)
                raise Interrupted(stops[0])
            if deadline is not None and time.monotonic() > deadline:
                raise NoAnswer(timeout_s or 0.0)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]
