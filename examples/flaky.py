"""A worker that fails once and recovers: rank 1 raises on the first attempt only.

TORCHELASTIC_RESTART_COUNT is 0 on the first attempt and counts restarts after that.
"""

import os
import sys
import time

rank = int(os.environ["RANK"])
attempt = int(os.environ["TORCHELASTIC_RESTART_COUNT"])
most = int(os.environ["TORCHELASTIC_MAX_RESTARTS"]) + 1
print(f"rank {rank}: attempt {attempt} of at most {most}", flush=True)
time.sleep(0.5)
if attempt == 0 and rank == 1:
    print("rank 1: failing on purpose (first attempt)", file=sys.stderr, flush=True)
    raise SystemExit(3)
print(f"rank {rank}: ok", flush=True)
