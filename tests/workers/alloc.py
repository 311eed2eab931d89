"""alloc.py MARKER_DIR MB: rank 1 allocates and touches MB MiB, says ready and hangs; the
other ranks say ready and hang."""

import sys

from _common import hang, rank, ready

held = bytearray(int(sys.argv[2]) * 2**20 if rank() == 1 else 0)
for i in range(0, len(held), 4096):
    held[i] = 1
ready(sys.argv[1])
hang()
