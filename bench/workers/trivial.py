"""A non-torch worker: write a `start` stamp the moment it runs, then exit 0.

Usage: trivial.py OUT_DIR
"""

import sys

from stamp import write

write(sys.argv[1], "start")
