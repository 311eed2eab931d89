"""slurm_rank.py MARKER_DIR [FAILING_RANK]: record what this rank saw (rank, node, restart count,
ERUN_JOB_DIR, Slurm's job id) in $ERUN_JOB_DIR/seen_a<attempt>_r<rank>.json; on attempt 0 the
failing rank (default: none) exits 1 once every rank is ready while the others hang; every
rank of a later attempt, and every rank without a failing one, exits 0."""

import json
import os
import sys
from pathlib import Path

from _common import attempt, fail_once_all_ready, rank

marker_dir = sys.argv[1]
failing = int(sys.argv[2]) if len(sys.argv) > 2 else -1
names = ("RANK", "WORLD_SIZE", "GROUP_RANK", "LOCAL_RANK", "TORCHELASTIC_RESTART_COUNT", "ERUN_JOB_DIR",
         "SLURM_JOB_ID", "MASTER_ADDR", "ERUN_RUN_DIR")
seen = {n: os.environ.get(n) for n in names}
Path(os.environ["ERUN_JOB_DIR"], f"seen_a{attempt()}_r{rank()}.json").write_text(json.dumps(seen))
print(f"attempt {attempt()} rank {rank()} of {seen['WORLD_SIZE']}", flush=True)
if attempt() > 0 or failing < 0:
    sys.exit(0)
fail_once_all_ready(marker_dir, failing)
