"""Is a recorded process still there? The OS's answer (psutil) for a rank's or the agent's pid.

A record that says RUNNING proves nothing by itself: an agent killed by SIGKILL (or a lost node)
never writes the job's end. The agent records its pid and host first (`RunRecord.agent`), so a
report on the same host can tell "still running" from "its agent was killed".
"""

from __future__ import annotations

import socket

from runner.record.alive import pid_alive
from runner.record.model import RunRecord


def agent_gone(record: RunRecord) -> bool | None:
    """True: the record says RUNNING but its agent's process is gone; False: it runs (or the job
    ended); None: unknown (an older record without the agent's pid, or another host's agent)."""
    if record.finished:
        return False
    agent = record.agent
    if agent is None or agent.get("host") != socket.gethostname():
        return None
    pid = agent.get("pid")
    return not pid_alive(int(pid), agent.time) if isinstance(pid, int) else None


def state_in_words(record: RunRecord) -> str:
    """SUCCEEDED, FAILED, ..., RUNNING, or KILLED when the agent died without recording the end."""
    return "KILLED" if agent_gone(record) else record.state.value
