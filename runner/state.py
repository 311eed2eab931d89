"""States and results: what a worker, a group and a job can be, and how they ended.

Worker transitions (one worker = one rank in one attempt):

    INIT ──spawned──> HEALTHY ──exit 0──> SUCCEEDED
                         │
                         ├──exit != 0 / signal──> FAILED
                         └──stopped by the agent──> STOPPED

Group transitions (all ranks of one attempt):

    INIT ──all spawned──> HEALTHY ──all SUCCEEDED──> SUCCEEDED
                             │
                             ├──a rank FAILED──> UNHEALTHY ──others stopped──> FAILED
                             │                                  (restart policy decides what next)
                             └──agent signalled──> UNHEALTHY ──all stopped──> STOPPED
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from runner.words import describe_exit


class WorkerState(str, enum.Enum):
    """The life of one rank in one attempt, as in torch's elastic agent."""

    INIT = "INIT"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def finished(self) -> bool:
        return self in (WorkerState.STOPPED, WorkerState.SUCCEEDED, WorkerState.FAILED)


class JobState(str, enum.Enum):
    """How the whole job ended (summary.json `state`); RUNNING while it has not."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    INTERRUPTED = "INTERRUPTED"


@dataclass(frozen=True)
class ExitInfo:
    """A decoded wait status: an exit code, or the signal that killed the process."""

    exit_code: int | None
    signal: int | None = None

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitInfo:
        """Popen's convention: a negative return code is the killing signal."""
        if returncode < 0:
            return cls(exit_code=None, signal=-returncode)
        return cls(exit_code=returncode)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def signal_name(self) -> str | None:
        return signal_name(self.signal) if self.signal else None

    def describe(self) -> str:
        return describe_exit(self.exit_code, self.signal_name)


class _Timed(Protocol):
    @property
    def time(self) -> float: ...

    @property
    def rank(self) -> int: ...


F = TypeVar("F", bound=_Timed)


def first_failure(failures: Iterable[F]) -> F | None:
    """The root cause among an attempt's failures: the first in time (later ones are usually peers
    noticing it), the lowest rank on a tie. The one rule, for the runtime and the record alike."""
    return min(failures, key=lambda f: (f.time, f.rank), default=None)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@dataclass
class Failure:
    """Why a rank failed in one attempt, with what is needed to act on it."""

    rank: int
    local_rank: int
    attempt: int
    time: float
    exit: ExitInfo
    message: str = ""
    # "exit" when the rank ended by itself; a watchdog's reason (runner.runtime.health) when stopped by one.
    reason: str = "exit"
    traceback: str = ""
    stderr_tail: list[str] = field(default_factory=list)
    stdout_log: str = ""
    stderr_log: str = ""
    error_file: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "local_rank": self.local_rank,
            "attempt": self.attempt,
            "time": self.time,
            "exit_code": self.exit.exit_code,
            "signal": self.exit.signal_name,
            "reason": self.reason,
            "message": self.message,
            "traceback": self.traceback,
            "stderr_tail": self.stderr_tail,
            "stdout_log": self.stdout_log,
            "stderr_log": self.stderr_log,
        }


@dataclass
class WorkerResult:
    """One rank in one attempt, as recorded in summary.json."""

    rank: int
    local_rank: int
    pid: int | None
    start: float | None
    end: float | None
    state: WorkerState
    exit: ExitInfo | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "local_rank": self.local_rank,
            "pid": self.pid,
            "start": self.start,
            "end": self.end,
            "state": self.state.value,
            "exit_code": self.exit.exit_code if self.exit else None,
            "signal": self.exit.signal_name if self.exit else None,
        }


@dataclass
class AttemptResult:
    """One start of the whole group: its workers and the failures that ended it."""

    attempt: int
    master_port: int
    start: float
    end: float | None = None
    state: WorkerState = WorkerState.INIT
    # TORCHELASTIC_RESTART_COUNT of this attempt: the job's restart count, shared by all nodes
    # (an attempt that re-forms the group for a joining node does not spend a restart).
    restart_count: int = 0
    nodes: int = 1
    workers: list[WorkerResult] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    # Ranks that ignored SIGTERM and had to be SIGKILLed after the grace.
    killed_after_grace: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "master_port": self.master_port,
            "restart_count": self.restart_count,
            "nodes": self.nodes,
            "start": self.start,
            "end": self.end,
            "state": self.state.value,
            "workers": [w.to_dict() for w in self.workers],
            "failures": [f.to_dict() for f in self.failures],
            "killed_after_grace": self.killed_after_grace,
        }


@dataclass
class AttemptOutcome:
    """How one attempt ended: all succeeded, a rank failed, the membership changed, or a stop
    signal arrived."""

    result: AttemptResult
    signal: int | None = None
    regroup: bool = False

    @property
    def succeeded(self) -> bool:
        return self.result.state is WorkerState.SUCCEEDED


@dataclass
class RunResult:
    """The outcome of `Agent.run()`: what summary.json holds."""

    state: JobState
    exit_code: int
    attempts: list[AttemptResult]
    root_cause: Failure | None = None
    signal: int | None = None
    run_dir: str = ""
    # The job's result: what rank 0 of the last attempt passed to `runner.result` (or returned
    # from a `call` entrypoint), as JSON data; None when it reported none.
    result: Any = None

    @property
    def restarts(self) -> int:
        """The job's restarts (TORCHELASTIC_RESTART_COUNT of the last attempt): an attempt that
        only re-formed the group for a joining node is an attempt, not a restart."""
        return self.attempts[-1].restart_count if self.attempts else 0

    @property
    def failures(self) -> list[Failure]:
        return [f for a in self.attempts for f in a.failures]

    def to_dict(self) -> dict[str, Any]:
        cause = self.root_cause
        return {
            "state": self.state.value,
            "exit_code": self.exit_code,
            "attempts": len(self.attempts),
            "restarts": self.restarts,
            "signal": signal_name(self.signal) if self.signal else None,
            "root_cause": None if cause is None else {
                "rank": cause.rank,
                "attempt": cause.attempt,
                "exit_code": cause.exit.exit_code,
                "signal": cause.exit.signal_name,
                "message": cause.message,
            },
            "per_attempt": [a.to_dict() for a in self.attempts],
            "run_dir": self.run_dir,
            "result": self.result,
        }
