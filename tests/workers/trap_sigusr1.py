"""trap_sigusr1.py MARKER_DIR [SIGNAME]: on SIGNAME (default SIGUSR1) write
got_a<attempt>_r<rank> and exit 0. Says ready only once the handler is in place."""

import signal
import sys
import time

from _common import HANG_S, ready

marker_dir = sys.argv[1]
signum = getattr(signal, sys.argv[2] if len(sys.argv) > 2 else "SIGUSR1")
got: list[int] = []
signal.signal(signum, lambda number, frame: got.append(number))
ready(marker_dir)
deadline = time.monotonic() + HANG_S
while not got and time.monotonic() < deadline:
    time.sleep(0.02)
if not got:
    sys.exit(3)
ready(marker_dir, "got")
print(f"got {signal.Signals(got[0]).name}", flush=True)
