"""exit_code.py CODES [DELAYS]: sleep DELAYS[rank] seconds, then exit with CODES[rank].

Each of CODES and DELAYS is one value for all ranks or a comma list by rank (`0,1`).
"""

import sys
import time

from _common import attempt, per_rank, rank

delay = float(per_rank(sys.argv[2])) if len(sys.argv) > 2 else 0.0
code = int(per_rank(sys.argv[1]))
print(f"rank {rank()} attempt {attempt()} out", flush=True)
time.sleep(delay)
print(f"rank {rank()} attempt {attempt()} exiting {code}", file=sys.stderr, flush=True)
sys.exit(code)
