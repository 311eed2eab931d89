"""talk.py LINES SECONDS: print LINES lines, SECONDS apart, then exit 0."""

import sys
import time

from _common import rank

lines, pause = int(sys.argv[1]), float(sys.argv[2])
for i in range(lines):
    print(f"line {i} of rank {rank()}", flush=True)
    time.sleep(pause)
