"""heartbeat_hang.py MARKER_DIR: every rank beats with runner.heartbeat(); on attempt 0 rank 1
stops beating (hangs) once ready; on later attempts every rank beats for a second, exits 0."""

import sys
import time
from pathlib import Path

from _common import attempt, hang, rank, ready

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # runner, installed or not
import runner  # noqa: E402

marker_dir = sys.argv[1]
runner.heartbeat()
ready(marker_dir)
if attempt() == 0 and rank() == 1:
    hang()
end = time.monotonic() + (1.0 if attempt() > 0 else 60.0)
while time.monotonic() < end:
    with runner.step():
        time.sleep(0.05)
