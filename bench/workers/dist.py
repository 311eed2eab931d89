"""A torch worker: init the gloo process group, stamp `init`, and maybe fail on attempt 0.

Usage: dist.py OUT_DIR [--fail-rank R] [--fail-mode exit|sigkill] [--stubborn-rank R] [--steady-s S]

Attempt 0 with --fail-rank: every rank inits and meets at a barrier, the group runs steady for
S seconds (as training would: a failure rarely hits a group that has just started); then rank
R stamps `fail` and exits 1 (or SIGKILLs itself), the --stubborn-rank ignores
SIGTERM, and the others sleep until the launcher stops them. Any later attempt (and any run
without --fail-rank) inits, stamps `init`, meets at a barrier and exits 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import time

import torch.distributed as dist
from stamp import attempt, rank, write


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--fail-rank", type=int, default=None)
    parser.add_argument("--fail-mode", choices=("exit", "sigkill"), default="exit")
    parser.add_argument("--stubborn-rank", type=int, default=None)
    parser.add_argument("--steady-s", type=float, default=0.2)
    return parser.parse_args()


def fail(out: str, mode: str) -> None:
    write(out, "fail")
    if mode == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(1)


def main() -> None:
    args = parse()
    if args.stubborn_rank == rank():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    dist.init_process_group("gloo")
    write(args.out, "init")
    dist.barrier()
    if args.fail_rank is None or attempt() > 0:
        dist.destroy_process_group()
        return
    time.sleep(args.steady_s)  # every rank has left the barrier: the failure hits a steady group
    if rank() == args.fail_rank:
        fail(args.out, args.fail_mode)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
