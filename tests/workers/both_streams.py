"""both_streams.py: print `out RANK` on stdout and `err RANK` on stderr, then exit 0."""

import sys

from _common import rank

print(f"out {rank()}", flush=True)
print(f"err {rank()}", file=sys.stderr, flush=True)
