"""die_by_signal.py SIGNAME MARKER_DIR [RANK]: that rank (every rank if none) kills itself
with SIGNAME after a few stderr lines; the others hang after writing their ready marker."""

import os
import signal
import sys

from _common import hang, rank, ready

signame, marker_dir = sys.argv[1], sys.argv[2]
if len(sys.argv) > 3 and rank() != int(sys.argv[3]):
    ready(marker_dir)
    hang()
for i in range(30):
    print(f"stderr line {i} of rank {rank()}", file=sys.stderr, flush=True)
signum = getattr(signal, signame)
if signum != signal.SIGKILL:
    signal.signal(signum, signal.SIG_DFL)
os.kill(os.getpid(), signum)
hang(5)
