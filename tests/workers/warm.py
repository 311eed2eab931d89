"""warm.py OUT_DIR [THEN] [KILL_SPARE_OF]: a worker for restarts through warm spares.

Attempt 0: every rank waits until the agent has started the next attempt's spares (the
`spares` event in ERUN_RUN_DIR/events.jsonl), records itself, then rank 1 exits 1 (the
others hang until stopped). With KILL_SPARE_OF=R, rank 1 first SIGKILLs the spare meant for
local rank R. THEN `done` ends attempt 0 with every rank exiting 0 instead, `hold` with every
rank hanging. Later attempts record themselves, then THEN: `ok` exits 0, `raise` raises
ValueError, `mp` runs a function defined in __main__ in a multiprocessing `spawn` child.

The record, OUT_DIR/warm_a<attempt>_r<rank>.json: the environment, pid, argv, __name__,
__file__, sys.path[0] and whether `tomllib` (the tests' prewarm module) is already imported.
"""

import json
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

from _common import attempt, hang, rank


def record(out: str) -> None:
    data = {"env": dict(os.environ), "pid": os.getpid(), "argv": sys.argv, "name": __name__,
            "file": __file__, "path0": sys.path[0], "preloaded": "tomllib" in sys.modules,
            "cpus": sorted(os.sched_getaffinity(0))}
    path = Path(out) / f"warm_a{attempt()}_r{rank()}.json"
    path.with_suffix(".tmp").write_text(json.dumps(data))
    os.replace(path.with_suffix(".tmp"), path)


def spare_pids(timeout: float = 30.0) -> list[int]:
    events = Path(os.environ["ERUN_RUN_DIR"]) / "events.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in events.read_text().splitlines() if events.exists() else []:
            event = json.loads(line)
            if event.get("event") == "spares":
                return list(event["pids"])
        time.sleep(0.02)
    sys.exit(4)


def wait_for_records(out: str, timeout: float = 30.0) -> None:
    world = int(os.environ["WORLD_SIZE"])
    deadline = time.monotonic() + timeout
    while len(list(Path(out).glob(f"warm_a{attempt()}_r*.json"))) < world:
        if time.monotonic() > deadline:
            sys.exit(4)
        time.sleep(0.02)


def kill_and_wait(pid: int, timeout: float = 30.0) -> None:
    """SIGKILL the spare and wait until it is a zombie (dead, not yet reaped by the agent)."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except OSError:
            return
        time.sleep(0.01)


def square(x: int) -> int:
    return x * x


def main() -> None:
    out = sys.argv[1]
    then = sys.argv[2] if len(sys.argv) > 2 else "ok"
    if attempt() == 0:
        pids = spare_pids()
        record(out)
        if then == "done":
            return
        if rank() != 1 or then == "hold":
            hang()
        wait_for_records(out)  # every rank recorded its attempt 0 before the group is stopped
        if len(sys.argv) > 3:
            kill_and_wait(pids[int(sys.argv[3])])
        sys.exit(1)
    record(out)
    if then == "raise":
        raise ValueError("warm worker failed on purpose")
    if then == "mp":
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            assert pool.map(square, [7]) == [49]
        Path(out, f"mp_r{rank()}").write_text("49")


if __name__ == "__main__":
    main()
