"""A torch worker for the multi-node bench: init gloo, stamp `init<world>` (so rounds of
different sizes do not collide), then exit once the world has reached TARGET ranks (after a
barrier), or wait to be stopped while it is smaller (a late joiner is on its way).

Usage: elastic.py OUT_DIR TARGET
"""

from __future__ import annotations

import sys
import time

from stamp import write

write(sys.argv[1], "start")  # before torch is imported: when the launcher spawned this worker

import torch.distributed as dist  # noqa: E402


def main() -> None:
    out, target = sys.argv[1], int(sys.argv[2])
    dist.init_process_group("gloo")
    world = dist.get_world_size()
    write(out, f"init{world}")
    if world < target:
        while True:  # the launcher stops this round when the joiner arrives
            time.sleep(1)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
