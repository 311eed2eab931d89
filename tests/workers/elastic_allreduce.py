"""elastic_allreduce.py OUT_DIR [MODE]: init gloo from env://, all_reduce rank+1 and write
OUT_DIR/w<world>_r<rank>_c<restart count>.json (the sum and the rank variables). Then by MODE:
- none: exit 0;
- N (a number): keep all-reducing while the world has N ranks (the group is re-formed around
  it: a node joins, or one dies and this rank's all_reduce fails); exit 0 in any other world;
- fail0: rank 0 exits 1, the other ranks wait (to be stopped by their agent)."""

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

VARS = ("RANK", "LOCAL_RANK", "GROUP_RANK", "ROLE_RANK", "ROLE_NAME", "LOCAL_WORLD_SIZE", "WORLD_SIZE",
        "GROUP_WORLD_SIZE", "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT",
        "TORCHELASTIC_MAX_RESTARTS", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_USE_AGENT_STORE")

dist.init_process_group("gloo", timeout=timedelta(seconds=30))
world, rank = dist.get_world_size(), dist.get_rank()
value = torch.tensor([float(rank + 1)])
dist.all_reduce(value)
out = {"sum": value.item(), "world_size": world, "rank": rank, "env": {k: os.environ.get(k) for k in VARS}}
restarts = os.environ["TORCHELASTIC_RESTART_COUNT"]
path = Path(sys.argv[1]) / f"w{world}_r{rank}_c{restarts}.json"
path.with_suffix(".tmp").write_text(json.dumps(out))
os.replace(path.with_suffix(".tmp"), path)
mode = sys.argv[2] if len(sys.argv) > 2 else ""
deadline = time.monotonic() + 60
if mode == "fail0":
    if rank == 0:
        sys.exit(1)
    while time.monotonic() < deadline:
        time.sleep(0.1)
loop_while = int(mode) if mode.isdigit() else 0
while world == loop_while and time.monotonic() < deadline:
    time.sleep(0.2)
    dist.all_reduce(torch.tensor([1.0]))
dist.destroy_process_group()
