"""Shared by the test workers: who am I, and tell the test I am ready (so it never races)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

# A worker that hangs still ends by itself: a leak in a failing test cannot live forever.
HANG_S = 60.0


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def attempt() -> int:
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def per_rank(spec: str, default: str = "0") -> str:
    """`spec` is one value for every rank, or a comma list indexed by rank."""
    values = spec.split(",")
    return values[rank()] if rank() < len(values) else default


def ready(marker_dir: str, name: str = "ready") -> None:
    """Write MARKER_DIR/NAME_a<attempt>_r<rank> (holding the pid) atomically."""
    path = Path(marker_dir) / f"{name}_a{attempt()}_r{rank()}"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, path)


def wait_all_ready(marker_dir: str, timeout: float = 30.0) -> None:
    """Wait until every rank of this attempt has written its ready marker."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    deadline = time.monotonic() + timeout
    while len(list(Path(marker_dir).glob(f"ready_a{attempt()}_r*"))) < world:
        if time.monotonic() > deadline:
            sys.exit(4)
        time.sleep(0.02)


def hang(seconds: float = HANG_S) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
    print("hung for too long; giving up", file=sys.stderr)
    sys.exit(3)


def fail_once_all_ready(marker_dir: str, failing: int) -> None:
    """The failing rank exits 1 once every rank of this attempt is ready; the others hang (until
    the agent stops them)."""
    ready(marker_dir)
    if rank() != failing:
        hang()
    wait_all_ready(marker_dir)
    print("failing on purpose", file=sys.stderr, flush=True)
    sys.exit(1)
