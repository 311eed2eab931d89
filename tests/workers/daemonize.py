"""daemonize.py MARKER_DIR [THEN]: start a daemon that sheds all erun marks on it (`env -i` drops
the job token, `setsid -f` leaves the group and the worker's parentage), write its pid to
MARKER_DIR/daemon_a<attempt>_r<rank>, then on attempt 0: exit THEN (a number, default 0) or
`hang`; on later attempts: exit 0 once attempt 0's daemon is gone, 3 if it lives after 20 s."""

import subprocess
import sys
import time
from pathlib import Path

from _common import attempt, hang, rank, ready

markers = Path(sys.argv[1])
then = sys.argv[2] if len(sys.argv) > 2 else "0"


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait(condition, seconds: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


pidfile = markers / f"daemon_a{attempt()}_r{rank()}"
script = f"echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile} && exec sleep 60"
subprocess.run(["env", "-i", "setsid", "-f", "sh", "-c", script], check=True)
wait(pidfile.exists)
if attempt() > 0:
    first = int((markers / f"daemon_a0_r{rank()}").read_text())
    sys.exit(0 if wait(lambda: gone(first)) else 3)
ready(str(markers))
if then == "hang":
    hang()
sys.exit(int(then))
