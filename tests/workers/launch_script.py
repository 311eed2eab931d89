"""launch_script.py MODE [MARKER_DIR]: a caller of runner.launch whose functions live in
`__main__` (shipped by value). Prints `RESULT <json>` last.

gloo: 2 ranks init gloo, all_reduce rank+1, return {rank, world_size, sum}.
compat: the same through runner.compat's elastic_launch(LaunchConfig(...), fn)(*args).
hang: each rank writes MARKER_DIR/ready_a0_r<rank> and sleeps; a Ctrl-C of this process must
stop them all (prints RESULT {"interrupted": true, "run_dir": ...}).
hang_thread: as hang, but the SIGINT comes from a thread of this process, to itself, once a line
arrives on stdin: Python's C handler runs in that thread, and the main thread, waiting in the
pump's select, sees no EINTR (as when a Ctrl-C lands just before it enters select).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import runner


def allreduce(scale: float, offset: float = 0.0) -> dict[str, float]:
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    value = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(value)
    print(f"rank {dist.get_rank()} of {dist.get_world_size()}: sum {value.item()}", flush=True)
    out = {"rank": dist.get_rank(), "world_size": dist.get_world_size(), "sum": value.item() * scale + offset}
    dist.destroy_process_group()
    return out


def hang(marker_dir: str) -> None:
    path = Path(marker_dir) / f"ready_a0_r{os.environ['RANK']}"
    path.write_text(str(os.getpid()))
    time.sleep(60)


def sigint_from_a_thread_on_stdin() -> None:
    """A thread that, given a line on stdin, sends SIGINT to itself (thread-directed): the main
    thread is not interrupted, only the flag Python's handler sets and its wakeup fd tell it."""

    def read_then_interrupt() -> None:
        sys.stdin.readline()
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    threading.Thread(target=read_then_interrupt, daemon=True).start()


def main(mode: str, rest: list[str]) -> dict[str, object]:
    if mode == "gloo":
        result = runner.launch(allreduce, 2.0, nproc=2, kwargs={"offset": 1.0})
        return {"return_values": result.return_values, "state": result.state, "run_dir": str(result.run_dir)}
    if mode == "compat":
        from runner.compat import LaunchConfig, elastic_launch

        config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=2, max_restarts=0)
        return {"return_values": elastic_launch(config, allreduce)(3.0)}
    if mode == "hang_thread":
        sigint_from_a_thread_on_stdin()
    try:
        runner.launch(hang, rest[0], nproc=2, run_dir="hang_run")
    except KeyboardInterrupt:
        return {"interrupted": True, "run_dir": str(Path("hang_run").absolute())}
    return {"interrupted": False}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(sys.argv[1], sys.argv[2:])), flush=True)
