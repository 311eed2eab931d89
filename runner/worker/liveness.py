"""Worker side of hang detection: tell the agent this rank is alive. No torch, no Hydra.

    import runner

    for batch in loader:
        runner.heartbeat()          # or: with runner.step(): ...
        train_step(batch)

Outside erun (no ERUN_HEARTBEAT_FILE) both are no-ops, so a script keeps working under
torchrun. The heartbeat is the modification time of a per-rank file: one `utime` call at most
every `MIN_INTERVAL_S`, cheap enough for every step.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

HEARTBEAT_VAR = "ERUN_HEARTBEAT_FILE"
MIN_INTERVAL_S = 0.2

_last = float("-inf")


def heartbeat() -> None:
    """Mark this rank alive now. The agent declares it hung after `health.heartbeat_timeout_s`
    without a beat (counted from the first beat: ranks that never beat are not watched)."""
    global _last
    path = os.environ.get(HEARTBEAT_VAR)
    now = time.monotonic()
    if not path or now - _last < MIN_INTERVAL_S:
        return
    _last = now
    try:
        os.utime(path)
    except FileNotFoundError:
        with open(path, "a"):
            pass


@contextlib.contextmanager
def step() -> Iterator[None]:
    """Beat at the start and at the end of a step."""
    heartbeat()
    yield
    heartbeat()
