"""A non-torch worker that writes a `start` stamp, then sleeps (idle supervision).

Usage: sleeper.py OUT_DIR SECONDS
"""

import sys
import time

from stamp import write

write(sys.argv[1], "start")
time.sleep(float(sys.argv[2]))
