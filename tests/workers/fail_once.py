"""fail_once.py MARKER_DIR [RANK]: on attempt 0 that rank (default 1) exits 1 once every rank
is ready, while the others hang; on later attempts every rank exits 0 at once."""

import sys

from _common import attempt, fail_once_all_ready, rank

marker_dir = sys.argv[1]
failing = int(sys.argv[2]) if len(sys.argv) > 2 else 1
print(f"attempt {attempt()} rank {rank()} stdout", flush=True)
print(f"attempt {attempt()} rank {rank()} stderr", file=sys.stderr, flush=True)
if attempt() > 0:
    sys.exit(0)
fail_once_all_ready(marker_dir, failing)
