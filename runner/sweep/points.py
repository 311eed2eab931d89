"""The points of a sweep: what each is, how it is named, how it ended, and how a resumed sweep
finds the points that already succeeded.

erun's Hydra launcher (`hydra_plugins/erun_launcher`) composes and compiles every point first,
then `runner.sweep.run` runs them side by side on the node's slots, each prepared
(`PreparedPoint`) when it starts. This
module is data, no processes; the sweep directory's files are `runner.paths.SweepPaths`.

A point is identified by its overrides (as Hydra records them in .hydra/overrides.yaml), not by
its number, so a resumed sweep finds its points even when their order changed.
"""

from __future__ import annotations

import enum
import json
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from hydra.errors import CompactHydraException

from runner.devices import HostInfo
from runner.errors import COMMAND_LINE, ConfigError, ErunError, ExitStatus
from runner.overrides import override_key
from runner.paths import RunPaths, SweepPaths
from runner.record.read import read_json, read_overrides
from runner.sweep.prepared import PreparedPoint
from runner.words import display_path


class PointState(str, enum.Enum):
    """How a point ended. SKIPPED: it succeeded in an earlier run of the sweep (--resume)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    INTERRUPTED = "INTERRUPTED"
    SKIPPED = "SKIPPED"
    NOT_STARTED = "NOT_STARTED"  # the sweep was stopped (fail_fast, a signal) before its turn

    @property
    def ok(self) -> bool:
        return self in (PointState.SUCCEEDED, PointState.SKIPPED)


@runtime_checkable
class SweepSession(Protocol):
    """What the launcher needs from erun's Hydra session (`runner.app.Session`)."""

    def prepare_point(self, cfg: Any, host: HostInfo | None = None) -> PreparedPoint:
        """Compile one point (Hydra's config for it is current) against `host`; a ConfigError
        names the first mistake. A dry run prints the plan."""

    def compile_point(self, cfg: Any, host: HostInfo | None = None) -> Any:
        """The point's JobPlan alone (Hydra's config for it is current), against `host`: how a
        sweep checks every point before any starts; prints nothing, writes nothing."""

    def prepare_cluster_point(self, cfg: Any) -> tuple[Any, dict[str, str]]:
        """Compile one point for its cluster (runner.cluster): the backend's request and the
        files its run directory gets; submits nothing."""

    def sweep_context(self) -> SweepContext:
        """erun's environment, working directory and flags for this sweep."""

    def fail(self, error: ErunError, folders: Sequence[Path] = ()) -> None:
        """Stop with `error` (one line, exit 2) and drop the empty folders made for it."""

    def finish(self, exit_status: int) -> None:
        """The sweep's exit status."""


@dataclass(frozen=True)
class SweepContext:
    environ: Mapping[str, str]
    cwd: Path
    dry_run: bool
    wait: bool = False  # --wait: a sweep on a cluster follows its points to their end


class PointWork(Protocol):
    """What runs for a point, as one process: an erun job's agent (`runner.sweep.agents`) or a
    Hydra task function in a process of its own (`runner.sweep.tasks`)."""

    @property
    def nproc(self) -> int:
        """How many slots it needs."""

    @property
    def run_dir(self) -> Path:
        """Its run directory (Hydra's output dir for the point)."""

    @property
    def grace_s(self) -> float:
        """How long it gets to stop after a stop signal before it is killed."""

    @property
    def user_code(self) -> bool:
        """Whether its process runs user code (a Hydra task function): it is then always a fresh
        interpreter. One that runs none (an erun agent) may be a standby (`runner.sweep.standby`)."""

    @property
    def is_ready(self) -> bool:
        """Whether it is prepared: `command` then only writes its files and starts it."""

    def ready(self) -> None:
        """Prepare it now, while other points run (its folder is made; nothing starts). A point
        prepared but never started leaves an empty folder at most (`Sweep` removes it)."""

    def environ(self) -> dict[str, str]:
        """What its process gets on top of the sweep's environment (asked after `command`)."""

    def open_log(self) -> BinaryIO | None:
        """Where its own output also goes, unprefixed, open for appending (None: nowhere)."""

    def command(self, slots: tuple[str, ...], gpus: bool) -> list[str]:
        """Write what the process needs and return its argv; `slots` are its CPU slots or GPUs.
        Called once, when the point starts (it is prepared then if `ready` was not called)."""

    def signal(self, pid: int, signum: int) -> None:
        """Deliver a stop or forwarded signal to the running process `pid`."""

    def ended(self, exit_code: int) -> PointState:
        """How the point ended, once its process exited with `exit_code` (negative: a signal)."""


@dataclass(frozen=True)
class SweepPoint:
    """One point of the sweep as it will run (or was skipped)."""

    index: int
    overrides: tuple[str, ...]
    label: str
    work: PointWork | None = None  # None: skipped
    earlier_run: Path | None = None  # the run that already succeeded (skipped points)

    @property
    def run_dir(self) -> Path:
        if self.work is not None:
            return self.work.run_dir
        assert self.earlier_run is not None
        return self.earlier_run

    @property
    def nproc(self) -> int:
        return self.work.nproc if self.work is not None else 0


@dataclass
class PointResult:
    """How a point ended, for the summary."""

    point: SweepPoint
    state: PointState = PointState.PENDING
    exit_code: int | None = None
    start: float | None = None
    end: float | None = None
    slots: tuple[str, ...] = ()
    restarts: int | None = None
    attempts: int | None = None
    note: str = ""
    error: str = ""  # a failed task point's traceback
    result: Any = None  # the job's result (rank 0's `runner.result`, a task's return value)

    @property
    def duration(self) -> float | None:
        return None if self.start is None or self.end is None else self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "point": self.point.index, "label": self.point.label, "overrides": list(self.point.overrides),
            "state": self.state.value, "exit_code": self.exit_code, "restarts": self.restarts,
            "attempts": self.attempts, "start": self.start, "end": self.end, "duration_s": self.duration,
            "slots": list(self.slots), "run_dir": str(self.point.run_dir), "note": self.note,
            "result": as_json(self.result), "error": self.error,
        }


def as_json(value: Any) -> Any:
    """`value` when JSON can hold it, else its repr (a task may return anything)."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


class PointFailed(ErunError, CompactHydraException):
    """A point's JobReturn error: Hydra's sweepers raise it (the basic sweeper then stops, Optuna
    marks the trial failed); one line, as Hydra prints a compact error."""


class SweepStopped(ErunError):
    """A signal stopped the sweep: raised through Hydra's sweeper, so it launches no more batches;
    erun exits 128+N."""

    def __init__(self, signum: int) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"erun: the sweep was stopped by {name}; no further batch starts")
        self.exit_status = ExitStatus.for_signal(signum)  # type: ignore[assignment]  # 128+N: no member


def point_failed(result: PointResult, cwd: Path) -> PointFailed:
    note = f" ({result.note})" if result.note else ""
    code = "" if result.exit_code is None else f", exit {result.exit_code}"
    return PointFailed(f"erun: point {result.point.index} {result.point.label} {result.state.value}{note}"
                       f"{code}: {display_path(result.point.run_dir, cwd)}")


def exit_status(results: Sequence[PointResult], signum: int | None) -> int:
    """128+N when a signal stopped the sweep; 1 when any point did not succeed; else 0."""
    if signum is not None:
        return ExitStatus.for_signal(signum)
    return int(ExitStatus.SUCCESS if all(r.state.ok for r in results) else ExitStatus.JOB_FAILED)


# -- labels ----------------------------------------------------------------------------------


def labels(points: Sequence[Sequence[str]]) -> list[str]:
    """A short name per point from the overrides that differ between points: `[lr=0.1,nproc=2]`
    (a key's last part when that is unambiguous). A sweep of one point is `[0]`."""
    values: dict[str, set[str]] = {}
    for overrides in points:
        for o in overrides:
            values.setdefault(override_key(o), set()).add(o.split("=", 1)[1] if "=" in o else "")
    swept = [k for k, v in values.items() if len(v) > 1 or any(k not in map(override_key, p) for p in points)]
    tails = [k.rsplit(".", 1)[-1] for k in swept]
    short = {k: (t if tails.count(t) == 1 else k) for k, t in zip(swept, tails, strict=True)}
    out = []
    for i, overrides in enumerate(points):
        parts = [f"{short[override_key(o)]}={o.split('=', 1)[1]}" for o in overrides
                 if override_key(o) in short and "=" in o]
        out.append(f"[{','.join(parts)}]" if parts else f"[{i}]")
    return out


def shared_dir(points: Sequence[SweepPoint]) -> tuple[SweepPoint, SweepPoint] | None:
    """The first two points that would run in the same folder (a fixed `hydra.sweep.subdir`, or
    an override_dirname that leaves out a swept key), if any."""
    seen: dict[Path, SweepPoint] = {}
    for point in points:
        if point.work is None:
            continue  # skipped: its earlier run is not run again
        first = seen.setdefault(point.run_dir, point)
        if first is not point:
            return first, point
    return None


def shared_dir_error(points: Sequence[SweepPoint], cwd: Path) -> ConfigError | None:
    """The one-line error for two points sharing a folder, before anything starts."""
    pair = shared_dir(points)
    if pair is None:
        return None
    a, b = pair
    return ConfigError("hydra.sweep.subdir", f"puts point {a.index} {a.label} and point {b.index} {b.label} "
                       f"in the same folder {display_path(a.run_dir, cwd)}",
                       "make it differ per point, e.g. ${hydra.job.num}, or an override_dirname that "
                       "keeps every swept key", COMMAND_LINE)


def batch_labels(earlier: Sequence[PointResult], batch: Sequence[Sequence[str]]) -> list[str]:
    """The labels of a sweeper's next batch, named against every point so far (so a batch of one
    point still shows what varies)."""
    return labels([*(r.point.overrides for r in earlier), *batch])[len(earlier):]


# -- resume ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EarlierRun:
    run_dir: Path
    state: str


def earlier_runs(sweep_dir: Path) -> dict[frozenset[str], list[EarlierRun]]:
    """The runs already in a sweep directory, by their overrides (any subdirectory with
    .hydra/overrides.yaml); state is summary.json's, RUNNING or '' when it has none."""
    found: dict[frozenset[str], list[EarlierRun]] = {}
    if not sweep_dir.is_dir():
        return found
    for folder in sorted(sweep_dir.iterdir()):
        overrides = read_overrides(folder)
        if overrides is not None:
            found.setdefault(frozenset(overrides), []).append(EarlierRun(folder, recorded_state(folder)))
    return found


def recorded_state(run_dir: Path) -> str:
    """summary.json's state; a cluster job's (runner.cluster): SUCCEEDED when every node's is."""
    paths = RunPaths(run_dir)
    nodes = paths.node_dirs()
    if not nodes:
        return str(read_json(paths.summary).get("state", ""))
    states = {str(read_json(RunPaths(n).summary).get("state", "")) for n in nodes}
    return "SUCCEEDED" if states == {"SUCCEEDED"} else next(iter(states - {"SUCCEEDED"}))


def succeeded_run(runs: Iterable[EarlierRun]) -> Path | None:
    return next((r.run_dir for r in runs if r.state == "SUCCEEDED"), None)


def holds_run(folder: Path) -> bool:
    """A folder that already has something in it (an earlier run's record or logs)."""
    return folder.is_dir() and any(folder.iterdir())


def fresh_dir(natural: Path) -> Path:
    """`natural` if free, else the first free `natural_retryK` (an earlier run is never touched)."""
    if not holds_run(natural):
        return natural
    k = 1
    while holds_run(SweepPaths.retry(natural, k)):
        k += 1
    return SweepPaths.retry(natural, k)


def outcome_of(result: PointResult) -> None:
    """Fill restarts and attempts (and the state, for a skipped point) from the run's summary.json."""
    summary = read_json(RunPaths(result.point.run_dir).summary)
    result.restarts = summary.get("restarts")
    result.attempts = summary.get("attempts")
    result.result = summary.get("result", result.result)
    if result.point.work is None:  # skipped: its times are the earlier run's
        attempts = summary.get("per_attempt") or [{}]
        result.start, result.end = attempts[0].get("start"), attempts[-1].get("end")
