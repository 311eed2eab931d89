"""both_streams.py: print `out RANK` on stdout and `err RANK` on stderr, then exit 0. Each line is
one write: under `python -u`, print() writes the text and its newline separately, and two
ranks on one terminal would interleave them (`err 1err 0`)."""

import os

from _common import rank

os.write(1, f"out {rank()}\n".encode())
os.write(2, f"err {rank()}\n".encode())
