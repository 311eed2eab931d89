"""fail_after.py SECONDS CODE [ATTEMPTS]: every rank runs SECONDS, then exits CODE on the first
ATTEMPTS attempts (default: all of them) and 0 after."""

import sys
import time

from _common import attempt

seconds, code = float(sys.argv[1]), int(sys.argv[2])
failing_attempts = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
time.sleep(seconds)
sys.exit(code if attempt() < failing_attempts else 0)
