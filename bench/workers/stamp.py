"""Timestamp files the bench reads: `<out>/<kind>_<attempt>_<rank>` holding time.time().

Imports nothing but the standard library's os and time, so a trivial worker stays trivial.
"""

from __future__ import annotations

import os
import time


def attempt() -> int:
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def write(out: str, kind: str, when: float | None = None) -> float:
    """Write the stamp atomically (write then rename), so a reader never sees half a number."""
    now = time.time() if when is None else when
    name = os.path.join(out, f"{kind}_{attempt()}_{rank()}")
    with open(name + ".tmp", "w") as f:
        f.write(repr(now))
    os.replace(name + ".tmp", name)
    return now
