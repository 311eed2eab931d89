"""count_signals.py MARKER_DIR [SIGNAME]: count SIGNAME (default SIGUSR1) until MARKER_DIR/stop
exists, then write count_a<attempt>_r<rank> (how many arrived) and exit 0."""

import signal
import sys
import time
from pathlib import Path

from _common import HANG_S, attempt, rank, ready

marker_dir = Path(sys.argv[1])
signum = getattr(signal, sys.argv[2] if len(sys.argv) > 2 else "SIGUSR1")
got: list[int] = []
signal.signal(signum, lambda number, frame: got.append(number))
ready(str(marker_dir))
deadline = time.monotonic() + HANG_S
while not (marker_dir / "stop").exists() and time.monotonic() < deadline:
    time.sleep(0.02)
(marker_dir / f"count_a{attempt()}_r{rank()}").write_text(str(len(got)))
