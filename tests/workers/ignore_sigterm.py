"""ignore_sigterm.py MARKER_DIR [FAILING_RANK]: ignore the stop signals (SIGTERM, SIGINT,
SIGHUP), say ready and hang: only SIGKILL ends it. FAILING_RANK instead exits 1 once every
rank is ready."""

import signal
import sys

from _common import hang, rank, ready, wait_all_ready

marker_dir = sys.argv[1]
if len(sys.argv) > 2 and rank() == int(sys.argv[2]):
    ready(marker_dir)
    wait_all_ready(marker_dir)
    sys.exit(1)
for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(signum, signal.SIG_IGN)
ready(marker_dir)
hang()
