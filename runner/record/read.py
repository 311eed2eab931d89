"""Reading a run record (written by runner.record.writer): the one place that knows its file formats.

    plan.json      the compiled plan, read as plain data (a report must open any plan it finds)
    events.jsonl   one JSON object a line; the last line may be half-written while the agent runs
    summary.json   the outcome: rewritten after each attempt with state RUNNING, final at the end

A run that is still going (or whose agent died) has a RUNNING summary or none: what the summary
lacks is rebuilt from the events, so the current attempt is always there. A Hydra multirun
directory (0/, 1/, ... each a run directory, maybe a multirun.yaml) reads as a `SweepRecord`.
Nothing here imports torch or Hydra: `erun report` and `erun status` start fast.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import ConfigError
from runner.overrides import as_typed
from runner.paths import POINT_DIR, RunPaths, SweepPaths
from runner.record.writer import read_json
from runner.state import JobState, WorkerState, first_failure
from runner.words import describe_exit

NOT_A_RUN_FIX = ("give the directory a job ran in (erun prints it when the job ends) "
                 "or a multirun sweep directory")


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


class MarkerKind(str, enum.Enum):
    """A moment worth a vertical line on the timeline."""

    RESTART = "restart"  # the policy decided to restart the group
    GIVE_UP = "give_up"  # the policy decided to stop
    WATCHDOG = "watchdog"  # a health watchdog condemned a rank
    KILL = "kill"  # ranks still running after the grace were SIGKILLed
    SIGNAL = "signal"  # a signal reached the agent (stop, or forwarded to the workers)


@dataclass(frozen=True)
class Event:
    """One line of events.jsonl: its wall-clock time, its kind and the rest of its fields."""

    time: float
    kind: str
    fields: Mapping[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    def describe(self) -> str:
        """The event in one line for people."""
        describe = _DESCRIBE.get(self.kind)
        if describe is not None:
            return describe(self)
        rest = ", ".join(f"{k}={v}" for k, v in self.fields.items())
        return f"{self.kind}: {rest}" if rest else self.kind


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
    """Why a rank failed in one attempt: it exited badly, or a watchdog stopped it (`reason`)."""

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

    def describe(self) -> str:
        how = describe_exit(self.exit_code, self.signal)
        if self.reason == "exit":
            return how
        what = f"{self.reason}: {self.message}" if self.message else self.reason
        return f"{what} (then {how})"


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


@dataclass(frozen=True)
class Marker:
    """A moment on the timeline, with what to say about it."""

    time: float
    kind: MarkerKind
    label: str
    rank: int | None = None


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
    read_at: float = field(default_factory=time.time)

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
        ends = [e.time for e in self.events if e.kind == "job_end"]
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
    def markers(self) -> list[Marker]:
        return [m for m in (marker_of(e) for e in self.events) if m is not None]

    @property
    def entrypoint(self) -> str:
        entry = self.plan.get("entrypoint")
        if not isinstance(entry, Mapping):
            return ""
        return " ".join(str(p) for p in (entry.get("kind"), entry.get("target"), *entry.get("args", ())))


@dataclass
class SweepPoint:
    """One point of a multirun: its directory, its overrides and its run (None before it started)."""

    name: str
    path: Path
    overrides: list[str]
    run: RunRecord | None


@dataclass
class SweepRecord:
    """A Hydra multirun directory: one run directory per point (0/, 1/, ...)."""

    sweep_dir: Path
    points: list[SweepPoint]
    read_at: float = field(default_factory=time.time)

    @property
    def runs(self) -> list[RunRecord]:
        return [p.run for p in self.points if p.run is not None]


# -- loading ---------------------------------------------------------------------------------


def load(path: str | Path) -> RunRecord | SweepRecord:
    """A run directory or a sweep directory; anything else is a ConfigError (exit 2)."""
    directory = Path(path)
    if not directory.exists():
        raise ConfigError(None, f"{directory} does not exist", NOT_A_RUN_FIX)
    if not directory.is_dir():
        raise ConfigError(None, f"{directory} is not a directory", NOT_A_RUN_FIX)
    if is_run_dir(directory):
        return load_run(directory)
    if point_dirs(directory) or SweepPaths(directory).multirun.exists():
        return load_sweep(directory)
    raise ConfigError(None, f"{directory} is not a run directory (no events.jsonl, summary.json or "
                      f"plan.json) nor a multirun sweep directory", NOT_A_RUN_FIX)


def load_run_dir(path: str | Path) -> RunRecord:
    """Like `load`, but a sweep directory is refused (for commands about one run)."""
    record = load(path)
    if isinstance(record, SweepRecord):
        names = ", ".join(p.name for p in record.points[:5]) or "none yet"
        raise ConfigError(None, f"{path} is a multirun sweep directory (points: {names})",
                          "give one point's directory, e.g. " + str(Path(path) / "0"))
    return record


def is_run_dir(directory: Path) -> bool:
    paths = RunPaths(directory)
    return any(p.is_file() for p in (paths.events, paths.summary, paths.plan))


def point_dirs(sweep_dir: Path) -> list[Path]:
    """The multirun points: numbered subdirectories (N, or N_retryK when `--resume` ran point N
    again) that hold a run or Hydra's .hydra folder; in order, each point's reruns after it."""
    found = [d for d in sweep_dir.iterdir() if d.is_dir() and POINT_DIR.fullmatch(d.name)
             and (is_run_dir(d) or RunPaths(d).hydra_dir.is_dir())]
    return sorted(found, key=SweepPaths.point_order)


def load_sweep(sweep_dir: Path) -> SweepRecord:
    points = [SweepPoint(d.name, d, typed_overrides(d), load_run(d) if is_run_dir(d) else None)
              for d in point_dirs(sweep_dir)]
    return SweepRecord(sweep_dir, points)


def load_run(run_dir: Path) -> RunRecord:
    """Read one run directory; a RUNNING or missing summary is completed from the events."""
    paths = RunPaths(run_dir)
    events, damaged = read_events(paths.events)
    summary = read_json(paths.summary)
    attempts = merge_attempts(attempts_from_summary(summary), attempts_from_events(events))
    state, exit_code, signal = job_state(summary, events)
    record = RunRecord(
        run_dir=run_dir, state=state, attempts=attempts, events=events, plan=read_json(paths.plan),
        exit_code=exit_code, signal=signal, overrides=typed_overrides(run_dir),
        damaged_lines=damaged, has_summary=bool(summary),
    )
    record.root_cause = root_cause(record, summary.get("root_cause"))
    return record


def read_events(path: Path) -> tuple[list[Event], int]:
    """The events so far, and how many lines could not be read (a half-written last one)."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return [], 0
    events: list[Event] = []
    damaged = 0
    for line in text.splitlines():
        event = parse_event(line)
        if event is not None:
            events.append(event)
        elif line.strip():
            damaged += 1
    return events, damaged


def parse_event(line: str) -> Event | None:
    try:
        data = json.loads(line)
        stamp = float(data.pop("time"))
        kind = str(data.pop("event"))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return Event(stamp, kind, data)


def read_overrides(run_dir: Path) -> list[str] | None:
    """The run's command-line overrides, from Hydra's .hydra/overrides.yaml (a YAML list), as
    recorded; None when the run has no readable list."""
    path = RunPaths(run_dir).overrides
    if not path.is_file():
        return None
    import yaml  # omegaconf's dependency; imported only when there is a file to read

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return [str(o) for o in data] if isinstance(data, list) else None


def typed_overrides(run_dir: Path) -> list[str]:
    """The run's overrides as the user typed them (`+job=NAME`), [] when none are recorded."""
    return [as_typed(o) for o in read_overrides(run_dir) or []]


# -- summary.json ----------------------------------------------------------------------------


def attempts_from_summary(summary: Mapping[str, Any]) -> list[AttemptRecord]:
    """The attempts summary.json has (all but the current one while the job runs)."""
    try:
        return [_attempt_from_dict(a) for a in summary.get("per_attempt", [])]
    except (KeyError, TypeError, ValueError, AttributeError):
        return []  # an odd summary: the events tell the same story


def _attempt_from_dict(data: Mapping[str, Any]) -> AttemptRecord:
    attempt = AttemptRecord(
        attempt=int(data["attempt"]), start=_float(data.get("start")), end=_float(data.get("end")),
        state=str(data.get("state", WorkerState.INIT.value)), master_port=data.get("master_port"),
        restart_count=data.get("restart_count"),
        killed_after_grace=[int(r) for r in data.get("killed_after_grace", [])],
    )
    attempt.ranks = sorted((_span_from_dict(attempt.attempt, w) for w in data.get("workers", [])),
                           key=lambda s: s.rank)
    attempt.failures = [_failure_from_dict(f) for f in data.get("failures", [])]
    return attempt


def _span_from_dict(attempt: int, data: Mapping[str, Any]) -> RankSpan:
    return RankSpan(
        attempt=attempt, rank=int(data["rank"]), state=str(data.get("state", WorkerState.INIT.value)),
        pid=data.get("pid"), start=_float(data.get("start")), end=_float(data.get("end")),
        exit_code=data.get("exit_code"), signal=data.get("signal"),
    )


def _failure_from_dict(data: Mapping[str, Any]) -> FailureRecord:
    return FailureRecord(
        attempt=int(data["attempt"]), rank=int(data["rank"]), time=float(data.get("time") or 0.0),
        reason=str(data.get("reason") or "exit"), exit_code=data.get("exit_code"), signal=data.get("signal"),
        message=str(data.get("message") or ""), traceback=str(data.get("traceback") or ""),
        stderr_tail=[str(line) for line in data.get("stderr_tail") or []],
        stdout_log=str(data.get("stdout_log") or ""), stderr_log=str(data.get("stderr_log") or ""),
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# -- events.jsonl ----------------------------------------------------------------------------


def attempts_from_events(events: Iterable[Event]) -> list[AttemptRecord]:
    """Replay group_state and worker_state events into attempts (the current one included)."""
    attempts: dict[int, AttemptRecord] = {}
    verdicts: dict[int, Event] = {}  # rank -> the watchdog note that condemned it, this attempt
    for event in events:
        if event.kind == "group_state":
            _on_group_state(attempts, event, verdicts)
        elif event.kind == "worker_state":
            _on_worker_state(attempts, event, verdicts)
        elif is_verdict(event):
            verdicts[int(event.get("rank"))] = event
    return [attempts[n] for n in sorted(attempts)]


def _attempt(attempts: dict[int, AttemptRecord], event: Event) -> AttemptRecord:
    number = int(event.get("attempt", 0))
    if number not in attempts:
        attempts[number] = AttemptRecord(number, start=event.time)
    return attempts[number]


def _on_group_state(attempts: dict[int, AttemptRecord], event: Event, verdicts: dict[int, Event]) -> None:
    attempt = _attempt(attempts, event)
    attempt.state = str(event.get("state"))
    if attempt.state == WorkerState.INIT.value:  # a new attempt: earlier verdicts are done
        verdicts.clear()
        attempt.start = event.time
        attempt.master_port = event.get("master_port")
        attempt.restart_count = event.get("restart_count")
    elif Outcome.of(attempt.state) is not Outcome.RUNNING:
        attempt.end = event.time


def _on_worker_state(attempts: dict[int, AttemptRecord], event: Event, verdicts: dict[int, Event]) -> None:
    attempt = _attempt(attempts, event)
    span = attempt.span(int(event.get("rank")))
    span.state = str(event.get("state"))
    if span.state == WorkerState.HEALTHY.value:
        span.pid, span.start = event.get("pid"), event.time
        return
    if span.outcome is Outcome.RUNNING:
        return  # UNHEALTHY: condemned, still running
    span.end, span.exit_code, span.signal = event.time, event.get("exit_code"), event.get("signal")
    if span.outcome is Outcome.FAILED:
        attempt.failures.append(_failure_from_event(span, verdicts.get(span.rank)))


def _failure_from_event(span: RankSpan, verdict: Event | None) -> FailureRecord:
    failure = FailureRecord(span.attempt, span.rank, span.end or 0.0, exit_code=span.exit_code,
                            signal=span.signal, message=describe_exit(span.exit_code, span.signal))
    if verdict is not None:
        failure.time, failure.reason = verdict.time, str(verdict.get("reason"))
        failure.message = verdict_message(verdict)
    return failure


def is_verdict(event: Event) -> bool:
    """A watchdog's note: it names a rank and a reason (a restart decision has `decision`)."""
    return (event.kind == "note" and "rank" in event.fields and "reason" in event.fields
            and "decision" not in event.fields)


def verdict_message(event: Event) -> str:
    """The watchdog's words without the agent's framing ("rank R: ...; stopping the group")."""
    message = str(event.get("message", ""))
    return message.removeprefix(f"rank {event.get('rank')}: ").removesuffix("; stopping the group")


def merge_attempts(summarised: list[AttemptRecord], replayed: list[AttemptRecord]) -> list[AttemptRecord]:
    """summary.json's attempts, then those only the events know (the one running now)."""
    known = {a.attempt for a in summarised}
    return summarised + [a for a in replayed if a.attempt not in known]


def job_state(summary: Mapping[str, Any], events: Sequence[Event]) -> tuple[JobState, int | None, str | None]:
    """The final summary decides; else a job_end event; else the job is still RUNNING."""
    state = _job_state_value(summary.get("state"))
    if state is not None and state is not JobState.RUNNING:
        return state, summary.get("exit_code"), summary.get("signal")
    end = next((e for e in reversed(events) if e.kind == "job_end"), None)
    if end is not None:
        return _job_state_value(end.get("state")) or JobState.FAILED, end.get("exit_code"), None
    return JobState.RUNNING, None, None


def _job_state_value(value: Any) -> JobState | None:
    try:
        return JobState(value)
    except ValueError:
        return None


def root_cause(record: RunRecord, recorded: Any) -> FailureRecord | None:
    """summary.json's root cause; else the first failure in time of the last attempt."""
    if record.state in (JobState.SUCCEEDED, JobState.RUNNING) or record.current is None:
        return None
    if isinstance(recorded, Mapping):
        match = [f for f in record.failures
                 if (f.attempt, f.rank) == (recorded.get("attempt"), recorded.get("rank"))]
        if match:
            return match[0]
    return first_failure(record.current.failures)


def marker_of(event: Event) -> Marker | None:
    """The timeline marker an event makes, if any."""
    if event.kind == "signal_forwarded":
        return Marker(event.time, MarkerKind.SIGNAL, f"forwarded {event.get('signal')} to the workers")
    if event.kind != "note":
        return None
    message = str(event.get("message", ""))
    if "decision" in event.fields:
        kind = MarkerKind.RESTART if event.get("decision") == "restart" else MarkerKind.GIVE_UP
        return Marker(event.time, kind, message)
    if is_verdict(event):
        return Marker(event.time, MarkerKind.WATCHDOG, message, int(event.get("rank")))
    if "ranks" in event.fields:
        return Marker(event.time, MarkerKind.KILL, message)
    if message.startswith("received SIG"):
        return Marker(event.time, MarkerKind.SIGNAL, message)
    return None


# -- for people ------------------------------------------------------------------------------


def _describe_group(event: Event) -> str:
    port = event.get("master_port")
    return f"attempt {event.get('attempt')}: group {event.get('state')}" + (f" (port {port})" if port else "")


def _describe_worker(event: Event) -> str:
    head = f"attempt {event.get('attempt')} rank {event.get('rank')}: {event.get('state')}"
    if event.get("pid") is not None:
        return f"{head} (pid {event.get('pid')})"
    if "exit_code" in event.fields or "signal" in event.fields:
        return f"{head} ({describe_exit(event.get('exit_code'), event.get('signal'))})"
    return head


def _describe_stop(event: Event) -> str:
    ranks = ", ".join(str(r) for r in event.get("ranks", []))
    return (f"attempt {event.get('attempt')}: {event.get('signal')} to rank(s) {ranks}, "
            f"grace {event.get('grace_s')} s")


_DESCRIBE: dict[str, Callable[[Event], str]] = {
    "note": lambda e: str(e.get("message", "")),
    "group_state": _describe_group,
    "worker_state": _describe_worker,
    "stop": _describe_stop,
    "swept": lambda e: f"swept leftover process(es) {', '.join(str(p) for p in e.get('pids', []))}",
    "signal_forwarded": lambda e: f"forwarded {e.get('signal')} to the workers",
    "job_end": lambda e: f"job ended: {e.get('state')} (exit {e.get('exit_code')})",
}
