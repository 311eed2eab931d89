"""Reading a run record (written by runner.record.writer): loading, and the one reader per file format.

    plan.json              the compiled plan, read as plain data (a report must open any plan it finds)
    events.jsonl           one JSON object a line; the last line may be half-written while the agent runs
    summary.json           the outcome: rewritten after each attempt with state RUNNING, final at the end
    .hydra/overrides.yaml  Hydra's record of the run's command-line overrides
    job.yaml               the resolved job config, as text (the report page shows it)
    attempt_N/rank_R/*.log the last line a rank wrote (erun status), read from the end

A run that is still going (or whose agent died) has a RUNNING summary or none: what the summary
lacks is rebuilt from the events, so the current attempt is always there. A Hydra multirun
directory (0/, 1/, ... each a run directory, maybe a multirun.yaml) reads as a `SweepRecord`.
What comes out is the data of runner.record.model; words and drawings are the reports' job.
Every file is read bounded and every value checked (runner.record.checked): a damaged or
hostile record reads as what can be trusted of it, never as a traceback or an endless read.
Nothing here imports torch or Hydra: `erun report` and `erun status` start fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from runner.errors import ConfigError
from runner.overrides import as_typed
from runner.paths import POINT_DIR, RunPaths, SweepPaths
from runner.record import checked, nodes
from runner.record.checked import integer, opt_int, opt_stamp, opt_text, stamp, text
from runner.record.model import (
    AGENT_EVENT,
    AttemptRecord,
    Event,
    FailureRecord,
    Outcome,
    PointRecord,
    RankSpan,
    RunRecord,
    SweepRecord,
)
from runner.record.segments import segments_from_events
from runner.state import JobState, WorkerState, first_failure
from runner.words import describe_exit

NOT_A_RUN_FIX = ("give the directory a job ran in (erun prints it when the job ends) "
                 "or a multirun sweep directory")


# -- loading ---------------------------------------------------------------------------------


def load(path: str | Path) -> RunRecord | SweepRecord:
    """A run directory or a sweep directory; anything else is a ConfigError (exit 2)."""
    directory = Path(path)
    if not directory.exists():
        raise ConfigError(None, f"{directory} does not exist", NOT_A_RUN_FIX)
    if not directory.is_dir():
        raise ConfigError(None, f"{directory} is not a directory", NOT_A_RUN_FIX)
    if is_run_dir(directory):
        return load_any_run(directory)
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
    points = [PointRecord(d.name, d, typed_overrides(d), load_any_run(d) if is_run_dir(d) else None)
              for d in point_dirs(sweep_dir)]
    return SweepRecord(sweep_dir, points)


def load_any_run(run_dir: Path) -> RunRecord:
    """A run directory: one agent's record, or a cluster job's nodes merged (runner.record.nodes)."""
    if not nodes.is_cluster_run(run_dir):
        return load_run(run_dir)
    paths = RunPaths(run_dir)
    return nodes.merged_run(run_dir, [load_run(d) for d in paths.node_dirs()], read_json(paths.plan),
                            typed_overrides(run_dir), read_json(paths.slurm_job))


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
        damaged_lines=damaged, has_summary=bool(summary), segments=segments_from_events(events),
    )
    record.root_cause = root_cause(record, summary.get("root_cause"))
    return record


# -- plan.json, summary.json: JSON objects ---------------------------------------------------


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file, or {} when it is missing or unreadable (summary.json comes late)."""
    try:
        raw = checked.read_capped(path, checked.JSON_MAX_BYTES)
        data = json.loads(raw) if raw is not None else {}
    except (checked.Unreadable, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def attempts_from_summary(summary: Mapping[str, Any]) -> list[AttemptRecord]:
    """The attempts summary.json has (all but the current one while the job runs)."""
    try:
        return [_attempt_from_dict(a) for a in summary.get("per_attempt", [])]
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        return []  # an odd summary: the events tell the same story


def _attempt_from_dict(data: Mapping[str, Any]) -> AttemptRecord:
    attempt = AttemptRecord(
        attempt=integer(data["attempt"], 0, MAX_INDEX), start=opt_stamp(data.get("start")),
        end=opt_stamp(data.get("end")), state=text(data.get("state", WorkerState.INIT.value)),
        master_port=opt_int(data.get("master_port")), restart_count=opt_int(data.get("restart_count")),
        killed_after_grace=[integer(r) for r in _list(data.get("killed_after_grace"))],
    )
    attempt.ranks = sorted((_span_from_dict(attempt.attempt, w) for w in _list(data.get("workers"))),
                           key=lambda s: s.rank)
    attempt.failures = [_failure_from_dict(f) for f in _list(data.get("failures"))]
    return attempt


def _span_from_dict(attempt: int, data: Mapping[str, Any]) -> RankSpan:
    return RankSpan(
        attempt=attempt, rank=integer(data["rank"], 0, MAX_INDEX), state=text(data.get("state", "INIT")),
        pid=opt_int(data.get("pid")), start=opt_stamp(data.get("start")), end=opt_stamp(data.get("end")),
        exit_code=opt_int(data.get("exit_code")), signal=opt_text(data.get("signal")),
    )


def _failure_from_dict(data: Mapping[str, Any]) -> FailureRecord:
    return FailureRecord(
        attempt=integer(data["attempt"], 0, MAX_INDEX), rank=integer(data["rank"], 0, MAX_INDEX),
        time=stamp(data.get("time") or 0.0), reason=text(data.get("reason") or "exit"),
        exit_code=opt_int(data.get("exit_code")), signal=opt_text(data.get("signal")),
        message=text(data.get("message") or ""), traceback=text(data.get("traceback") or ""),
        stderr_tail=[text(line) for line in _list(data.get("stderr_tail"))],
        stdout_log=text(data.get("stdout_log") or ""), stderr_log=text(data.get("stderr_log") or ""),
    )


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"not a list: {value!r:.40}")
    return value

# -- events.jsonl ----------------------------------------------------------------------------


def read_events(path: Path) -> tuple[list[Event], int]:
    """The events so far (the last EVENTS_TAIL_BYTES of them), and how many lines could not be
    read (a half-written last one, a line cut by the bound, a damaged one)."""
    try:
        raw = checked.read_capped(path, checked.EVENTS_TAIL_BYTES, tail=True)
    except checked.Unreadable as e:
        raise ConfigError(None, str(e), f"restore the run's {path.name}, or move it away to read the "
                          "rest of the record") from None
    if raw is None:
        return [], 0
    if len(raw) == checked.EVENTS_TAIL_BYTES:  # maybe cut: its first line is likely a part
        raw = raw[raw.find(b"\n") + 1:] if b"\n" in raw else b""
    events: list[Event] = []
    damaged = 0
    for line in raw.decode("utf-8", errors="replace").splitlines():
        event = parse_event(line)
        if event is not None:
            events.append(event)
        elif line.strip():
            damaged += 1
    return events, damaged


def parse_event(line: str) -> Event | None:
    """One line as an Event; None when it is no JSON object or a field the readers use has the
    wrong type or range (runner.record.checked)."""
    try:
        data = json.loads(line)
        if not isinstance(data, dict):
            return None
        when, kind = stamp(data.pop("time")), text(data.pop("event"))
        for key in REQUIRED.get(kind, ()):
            if key not in data:
                return None
        for key, check in FIELD_CHECKS.items():
            if key in data:
                check(data[key])
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    return Event(when, kind, data)


# The largest attempt number or rank a record may name.
MAX_INDEX = 10**9


def _index(value: Any) -> int:
    return integer(value, 0, MAX_INDEX)


def _indices(value: Any) -> list[int]:
    return [_index(v) for v in _list(value)]


# The fields the readers use, checked on every event that has them.
FIELD_CHECKS = {
    "attempt": _index, "rank": _index, "state": text, "pid": opt_int, "exit_code": opt_int,
    "master_port": opt_int, "restart_count": opt_int, "signal": opt_text, "message": text,
    "reason": text, "ranks": _indices,
}
REQUIRED = {"group_state": ("attempt", "state"), "worker_state": ("attempt", "rank", "state")}

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

# -- .hydra/overrides.yaml ------------------------------------------------------------------


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

# -- job.yaml ---------------------------------------------------------------------------------


def read_job_config(run_dir: Path) -> str | None:
    """The resolved job config the workers read, as text; None when the run has none."""
    try:
        return RunPaths(run_dir).job_config.read_text(errors="replace")
    except OSError:
        return None

# -- attempt_N/rank_R/{stdout,stderr}.log ---------------------------------------------------

TAIL_BYTES = 4096


def run_paths(run_dir: Path) -> RunPaths:
    """The run directory's paths, its rank folders named as its plan.json says (logs.layout)."""
    return RunPaths.of(run_dir, read_json(RunPaths(run_dir).plan))


def read_result(run_dir: Path, attempt: int, rank: int = 0) -> Any:
    """What a rank passed to `runner.result` (or returned from a `call`) in an attempt; None."""
    try:
        return json.loads(run_paths(run_dir).result(attempt, rank).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def last_output(run_dir: Path, attempt: int, rank: int) -> tuple[str, float] | None:
    """The rank's last non-blank output line (of stdout or stderr, whichever was written last)
    and when it was written; None before the rank wrote anything."""
    paths = run_paths(run_dir)
    found = []
    for path in (paths.stdout(attempt, rank), paths.stderr(attempt, rank)):
        try:
            with path.open("rb") as f:
                f.seek(max(0, f.seek(0, 2) - TAIL_BYTES))
                data = f.read()
            written = path.stat().st_mtime
        except OSError:
            continue
        lines = [line for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]
        if lines:
            found.append((written, lines[-1].strip()))
    if not found:
        return None
    written, line = max(found)
    return line, written

# -- the run as a whole ---------------------------------------------------------------------


def merge_attempts(summarised: list[AttemptRecord], replayed: list[AttemptRecord]) -> list[AttemptRecord]:
    """summary.json's attempts, then those only the events know (the one running now)."""
    known = {a.attempt for a in summarised}
    return summarised + [a for a in replayed if a.attempt not in known]


def job_state(summary: Mapping[str, Any], events: Sequence[Event]) -> tuple[JobState, int | None, str | None]:
    """The final summary decides; else a job_end event; else the job is still RUNNING. An agent
    that started after the last job_end (a continued run directory) runs the job again."""
    kinds = [e.kind for e in reversed(events)]
    if AGENT_EVENT in kinds and "job_end" in kinds and kinds.index(AGENT_EVENT) < kinds.index("job_end"):
        return JobState.RUNNING, None, None
    state = _job_state_value(summary.get("state"))
    if state is not None and state is not JobState.RUNNING:
        return state, checked.lenient(opt_int, summary.get("exit_code")), checked.lenient(
            opt_text, summary.get("signal"))
    end = next((e for e in reversed(events) if e.kind == "job_end"), None)
    if end is not None:
        return _job_state_value(end.get("state")) or JobState.FAILED, end.get("exit_code"), None
    return JobState.RUNNING, None, None


def _job_state_value(value: Any) -> JobState | None:
    try:
        return JobState(value)
    except (ValueError, TypeError):
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
