"""gloo_allreduce.py OUT_DIR [fail-once]: init gloo from env://, all_reduce rank+1, write
OUT_DIR/allreduce_a<attempt>_r<rank>.json. With fail-once, rank 1 exits 1 after the
all_reduce of attempt 0 (the restarted group must initialise again)."""

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

attempt = int(os.environ["TORCHELASTIC_RESTART_COUNT"])
dist.init_process_group("gloo")
value = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(value)
out = {
    "rank": dist.get_rank(),
    "world_size": dist.get_world_size(),
    "sum": value.item(),
    "torchelastic": dist.is_torchelastic_launched(),
}
(Path(sys.argv[1]) / f"allreduce_a{attempt}_r{dist.get_rank()}.json").write_text(json.dumps(out))
if sys.argv[2:] == ["fail-once"] and attempt == 0 and dist.get_rank() == 1:
    sys.exit(1)
dist.destroy_process_group()
