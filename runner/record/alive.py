"""Is a recorded process still there? The OS's answer (psutil) for a pid the record names.

`erun status` and `erun report` ask it of a rank's or an agent's pid; an agent asks it before it
continues a run directory (a directory whose agent still runs is refused).
"""

from __future__ import annotations

# A process younger than its recorded start by more than this is another process with a reused pid.
PID_REUSE_SLACK_S = 2.0


def pid_alive(pid: int | None, started: float | None) -> bool:
    """True when `pid` runs, is no zombie, and is not a newer process that reused the pid."""
    import psutil

    if pid is None:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or process.create_time() <= started + PID_REUSE_SLACK_S
    except psutil.Error:
        return False
