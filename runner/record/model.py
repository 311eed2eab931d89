"""The run record as data: what `runner.record.read` builds from a run directory and reports draw.

Plain dataclasses, filled in by the reader (attempt by attempt, rank by rank) and read by
`erun report`, `erun status` and sweeps; nothing here touches a file, so reports can be tested on
records built in memory. A Hydra multirun directory is a `SweepRecord` of `PointRecord`s.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.record.cause import failure_in_words
from runner.state import JobState, WorkerState
from runner.words import describe_exit

# The event the agent writes first: its pid and host (runner.record.writer.record_start). Each
# one opens a segment: a rerun into the same run directory (or a requeued Slurm job) appends one.
AGENT_EVENT = "agent_start"
# The batch script's note that Slurm warned of the job's end (runner.cluster.preempt).
PREEMPTED_EVENT = "preempted"


class Outcome(str, enum.Enum):
    """How one rank (or one attempt) ended, as the timeline colours it."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    RUNNING = "running"

    @classmethod
    def of(cls, state: str) -> Outcome:
        """A WorkerState value; the unfinished ones (INIT, HEALTHY, UNHEALTHY) are RUNNING."""
        return {
            WorkerState.SUCCEEDED.value: cls.SUCCEEDED,
            WorkerState.FAILED.value: cls.FAILED,
            WorkerState.STOPPED.value: cls.STOPPED,
        }.get(state, cls.RUNNING)


@dataclass(frozen=True)
class Event:
    """One line of events.jsonl: its wall-clock time, its kind and the rest of its fields."""

    time: float
    kind: str
    fields: Mapping[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


@dataclass(frozen=True)
class RecordedExit:
    """How a process ended, as the record has it: an exit code, or the killing signal's name."""

    exit_code: int | None
    signal: str | None = None

    def describe(self) -> str:
        return describe_exit(self.exit_code, self.signal)


@dataclass
class RankSpan:
    """One rank in one attempt: from spawned to ended (a bar on the timeline)."""

    attempt: int
    rank: int
    state: str = WorkerState.INIT.value
    pid: int | None = None
    start: float | None = None
    end: float | None = None
    exit_code: int | None = None
    signal: str | None = None

    @property
    def outcome(self) -> Outcome:
        return Outcome.of(self.state)

    def describe(self) -> str:
        if self.outcome is Outcome.RUNNING:
            return self.state
        return f"{self.state} ({describe_exit(self.exit_code, self.signal)})"


@dataclass
class FailureRecord:
    """Why a rank failed in one attempt: it exited badly, or a watchdog stopped it (`reason`).

    A `runner.record.cause.FailureLike`, as the runtime's `runner.state.Failure` is."""

    attempt: int
    rank: int
    time: float
    reason: str = "exit"
    exit_code: int | None = None
    signal: str | None = None
    message: str = ""
    traceback: str = ""
    stderr_tail: list[str] = field(default_factory=list)
    stdout_log: str = ""
    stderr_log: str = ""

    @property
    def exit(self) -> RecordedExit:
        return RecordedExit(self.exit_code, self.signal)

    def describe(self) -> str:
        return failure_in_words(self)


@dataclass
class AttemptRecord:
    """One start of the whole group: its ranks and the failures that ended it."""

    attempt: int
    start: float | None = None
    end: float | None = None
    state: str = WorkerState.INIT.value
    master_port: int | None = None
    restart_count: int | None = None  # None: an old record; the attempt number stands in
    ranks: list[RankSpan] = field(default_factory=list)
    failures: list[FailureRecord] = field(default_factory=list)
    killed_after_grace: list[int] = field(default_factory=list)

    @property
    def outcome(self) -> Outcome:
        return Outcome.of(self.state)

    def span(self, rank: int) -> RankSpan:
        """The rank's span, added when first seen."""
        for span in self.ranks:
            if span.rank == rank:
                return span
        span = RankSpan(self.attempt, rank)
        self.ranks.append(span)
        self.ranks.sort(key=lambda s: s.rank)
        return span

    def duration(self, now: float) -> float | None:
        if self.start is None:
            return None
        return (self.end if self.end is not None else now) - self.start


@dataclass
class SegmentRecord:
    """One agent's run in the directory: from its start to its job_end (a rerun, or a requeued
    Slurm job, continues the record with the next segment; attempt numbers go on)."""

    number: int
    start: float
    pid: int | None = None
    host: str = ""
    end: float | None = None
    state: str | None = None  # the job_end's state; None: no end recorded (running, or killed)
    exit_code: int | None = None
    attempts: list[int] = field(default_factory=list)
    preempted: bool = False

    def describe(self) -> str:
        """`FAILED (exit 1), attempts 0-1, preempted`: the segment in a few words."""
        how = f"{self.state} (exit {self.exit_code})" if self.state else "no end recorded"
        span = (f"attempt {self.attempts[0]}" if len(self.attempts) == 1 else
                f"attempts {self.attempts[0]}-{self.attempts[-1]}" if self.attempts else "no attempt")
        return f"{how}, {span}" + (", preempted" if self.preempted else "")


@dataclass
class RunRecord:
    """A run directory as read from disk: the job's state and what happened, attempt by attempt.

    `read_at` is "now" for everything still running (bars and durations end there).
    """

    run_dir: Path
    state: JobState
    attempts: list[AttemptRecord]
    events: list[Event]
    plan: Mapping[str, Any]
    exit_code: int | None = None
    signal: str | None = None
    root_cause: FailureRecord | None = None
    overrides: list[str] = field(default_factory=list)
    damaged_lines: int = 0
    has_summary: bool = False
    segments: list[SegmentRecord] = field(default_factory=list)
    read_at: float = field(default_factory=time.time)
    # A job submitted to a cluster (runner.record.nodes): each node's own record, the job's id.
    nodes: list[RunRecord] = field(default_factory=list)
    cluster_job: str | None = None

    @property
    def finished(self) -> bool:
        return self.state is not JobState.RUNNING

    @property
    def name(self) -> str:
        name, run_id = self.plan.get("name"), self.plan.get("run_id")
        parts = [str(name)] if name else []
        parts += [f"(run {run_id})"] if run_id else []
        return " ".join(parts) or self.run_dir.name

    @property
    def failures(self) -> list[FailureRecord]:
        return [f for a in self.attempts for f in a.failures]

    @property
    def agent(self) -> Event | None:
        """The latest agent's start event (pid, host); None in records older than it."""
        return next((e for e in reversed(self.events) if e.kind == AGENT_EVENT), None)

    @property
    def restarts(self) -> int:
        """The job's restarts: a multi-node regroup is an attempt, not a restart."""
        if not self.attempts:
            return 0
        last = self.attempts[-1]
        return last.restart_count if last.restart_count is not None else max(0, len(self.attempts) - 1)

    @property
    def current(self) -> AttemptRecord | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def ranks(self) -> list[int]:
        return sorted({s.rank for a in self.attempts for s in a.ranks})

    @property
    def start(self) -> float | None:
        times = [e.time for e in self.events[:1]]
        times += [a.start for a in self.attempts[:1] if a.start is not None]
        return min(times, default=None)

    @property
    def end(self) -> float | None:
        """When the job ended; None while it runs."""
        if not self.finished:
            return None
        ends = [e.time for e in self.events if e.kind == "job_end"][-1:]  # the latest segment's
        ends += [a.end for a in self.attempts[-1:] if a.end is not None]
        return ends[0] if ends else self.read_at

    @property
    def now(self) -> float:
        """Where the timeline stops: the job's end, or the time it was read."""
        end = self.end
        return end if end is not None else self.read_at

    @property
    def elapsed(self) -> float:
        start = self.start
        return 0.0 if start is None else max(0.0, self.now - start)

    @property
    def entrypoint(self) -> str:
        entry = self.plan.get("entrypoint")
        if not isinstance(entry, Mapping):
            return ""
        args = entry.get("args")
        args = args if isinstance(args, list) else []
        return " ".join(str(p) for p in (entry.get("kind"), entry.get("target"), *args))


@dataclass
class PointRecord:
    """One point of a multirun as read back: its directory, its overrides and its run (None
    before it started). The sweep's own plan of a point is runner.sweep.points.SweepPoint."""

    name: str
    path: Path
    overrides: list[str]
    run: RunRecord | None


@dataclass
class SweepRecord:
    """A Hydra multirun directory: one run directory per point (0/, 1/, ...)."""

    sweep_dir: Path
    points: list[PointRecord]
    read_at: float = field(default_factory=time.time)

    @property
    def runs(self) -> list[RunRecord]:
        return [p.run for p in self.points if p.run is not None]
