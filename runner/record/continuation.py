"""Continuing a run directory that already holds a run: what the new segment starts from.

A rerun into the same directory (`hydra.run.dir=.` twice, a fixed hydra.run.dir, `erun run-plan`
of the same plan) and a Slurm job requeued after a preemption continue the record instead of
refusing: the new agent appends a segment (runner.record.segments). Nothing of the earlier
segments is overwritten: their events stay (events.jsonl is appended to), their attempts keep
their attempt_N/ folders (the new attempts are numbered after them), and summary.json keeps their
attempts and lists every segment; its state is the latest segment's. TORCHELASTIC_RESTART_COUNT
goes on from the last attempt (the first attempt of the new segment is a restart of the job),
while the restart budget is the segment's own. A directory whose agent still runs is refused.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import ConfigError
from runner.paths import RunPaths
from runner.record import read
from runner.record.alive import pid_alive
from runner.record.model import AttemptRecord, RunRecord
from runner.record.segments import segment_dict


@dataclass(frozen=True)
class Continuation:
    """Where the next segment of a run directory starts (a fresh directory: segment 1, attempt 0)."""

    segment: int = 1
    first_attempt: int = 0
    restart_count: int = 0  # the first attempt's TORCHELASTIC_RESTART_COUNT
    earlier_attempts: tuple[Mapping[str, Any], ...] = ()  # summary.json's per_attempt rows
    earlier_segments: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def continues(self) -> bool:
        return self.segment > 1

    def merge(self, summary: dict[str, Any], segment: Mapping[str, Any]) -> dict[str, Any]:
        """This segment's summary (RunResult.to_dict()) with the earlier segments' attempts kept
        before its own and every segment listed; `segment` is this one's row."""
        if not self.continues:
            return {**summary, "segments": [dict(segment)]}
        own = summary.get("per_attempt", [])
        per_attempt = [*self.earlier_attempts, *own]
        restarts = summary.get("restarts") if own else max(0, self.restart_count - 1)  # none of its own yet
        return {**summary, "per_attempt": per_attempt, "attempts": len(per_attempt), "restarts": restarts,
                "segments": [*self.earlier_segments, dict(segment)]}


def continuation_of(run_dir: Path) -> Continuation:
    """The next segment of `run_dir` (segment 1 when it holds no run yet); a ConfigError when the
    agent of its latest segment still runs on this host."""
    paths = RunPaths(run_dir)
    if not (paths.events.is_file() or paths.summary.is_file()):
        return Continuation()
    record = read.load_run(run_dir)
    refuse_if_running(record)
    summarised = read.read_json(paths.summary).get("per_attempt")
    rows = [r for r in summarised if isinstance(r, Mapping)] if isinstance(summarised, list) else []
    known = {r.get("attempt") for r in rows}
    rows += [attempt_row(a) for a in record.attempts if a.attempt not in known]  # an agent killed mid-attempt
    last = record.attempts[-1] if record.attempts else None
    return Continuation(
        segment=(record.segments[-1].number if record.segments else 0) + 1,
        first_attempt=max((a.attempt for a in record.attempts), default=-1) + 1,
        restart_count=record.restarts + 1 if last is not None else 0,
        earlier_attempts=tuple(rows), earlier_segments=tuple(segment_dict(s) for s in record.segments))


def refuse_if_running(record: RunRecord) -> None:
    """A run directory whose latest agent is alive on this host: one agent a directory."""
    agent = record.agent
    if record.finished or agent is None or agent.get("host") != socket.gethostname():
        return
    pid = agent.get("pid")
    if isinstance(pid, int) and pid_alive(pid, agent.time):
        raise ConfigError("hydra.run.dir", f"{record.run_dir} holds a run whose agent (pid {pid}) is still "
                          "running", "wait for it to end (erun status), or choose a new directory")


def attempt_row(attempt: AttemptRecord) -> dict[str, Any]:
    """An attempt only the events know (its agent died before summary.json had it), as a row."""
    return {"attempt": attempt.attempt, "master_port": attempt.master_port,
            "restart_count": attempt.restart_count, "start": attempt.start, "end": attempt.end,
            "state": attempt.state, "killed_after_grace": list(attempt.killed_after_grace),
            "workers": [{"rank": s.rank, "pid": s.pid, "start": s.start, "end": s.end, "state": s.state,
                         "exit_code": s.exit_code, "signal": s.signal} for s in attempt.ranks],
            "failures": [{"rank": f.rank, "attempt": f.attempt, "time": f.time, "reason": f.reason,
                          "exit_code": f.exit_code, "signal": f.signal, "message": f.message}
                         for f in attempt.failures]}
