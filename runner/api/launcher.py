"""`runner.launch(fn, *args, nproc=4, **job_keys)`: run a function on every rank under erun's
agent and get every rank's return value; `runner.compose(job_file, overrides)`: the plan of a
job file, as `erun +job=FILE OVERRIDES --dry-run=json` makes it.

Both go through the CLI's own path (runner.app: Hydra composes, runner.config.compile plans)
in a child process (runner.api.child), so the same mistakes raise the same ConfigError, and
the agent (its cgroup, its guard) never runs in the caller's process. The function travels by
value (runner.api.shipping); the workers are fresh interpreters with torchrun's environment.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.api.shipping import LaunchFolder, Sent, pack
from runner.api.stream import Output, run_child
from runner.errors import ConfigError, ErunError, ExitStatus

if TYPE_CHECKING:
    from runner.plan import JobPlan

# Set by runner.launch itself: the entrypoint is the shipped function, the run dir is run_dir=.
RESERVED = {"entrypoint": "the function is the entrypoint", "module": "the function is the entrypoint",
            "exec": "the function is the entrypoint", "call": "the function is the entrypoint",
            "args": "pass the function's arguments to runner.launch(fn, *args, kwargs={...})",
            "hydra": "give the run directory as runner.launch(..., run_dir=PATH)"}
SOURCE = "runner.launch()"  # where a ConfigError about launch's job keys says they were set
JOB_FILE = "launch.yaml"


@dataclass(frozen=True)
class LaunchResult:
    """How a launch ended (summary.json of its run directory) and what every rank returned."""

    state: str  # SUCCEEDED, FAILED or INTERRUPTED
    exit_code: int
    run_dir: Path
    return_values: dict[int, Any] = field(default_factory=dict)  # rank -> its return value
    failures: list[dict[str, Any]] = field(default_factory=list)  # summary.json's, every attempt
    root_cause: dict[str, Any] | None = None  # the first failure (by time), as summary.json has it

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCEEDED"


class JobFailedError(ErunError):
    """The job failed: the message is erun's failure report; `exception` and `traceback` are the
    first failing rank's (None and "" when it died without raising, e.g. by a signal)."""

    def __init__(self, report: str, result: LaunchResult, rank: int | None,
                 exception: BaseException | None, traceback: str) -> None:
        super().__init__(report)
        self.result, self.rank, self.exception, self.traceback = result, rank, exception, traceback


def launch(fn: Callable[..., Any], *args: Any, nproc: int | str | None = None,
           kwargs: Mapping[str, Any] | None = None, run_dir: str | os.PathLike[str] | None = None,
           plan: JobPlan | None = None, **job_keys: Any) -> LaunchResult:
    """Run `fn(*args, **kwargs)` on `nproc` workers (default 1) under erun's agent; the result
    with every rank's return value, or JobFailedError. `job_keys` are any job keys (restart,
    health, env, params, rdzv, logs, ...); a mistake is the CLI's ConfigError, raised before any
    worker starts. `plan` (from `runner.compose(job_file, overrides)`) gives every job key
    instead: the job file's settings, with `fn` as the entrypoint."""
    for key in job_keys:
        if key in RESERVED:
            raise ConfigError(key, "is set by runner.launch", RESERVED[key], SOURCE)
    if plan is not None and (job_keys or nproc is not None):
        key = "nproc" if nproc is not None else next(iter(job_keys))
        raise ConfigError(key, "is given with plan=, which already holds every job key",
                          "put it in the plan's overrides: runner.compose(FILE, ['KEY=VALUE'])", SOURCE)
    payload = pack(fn, args, dict(kwargs or {}))
    folder = LaunchFolder(Path(tempfile.mkdtemp(prefix="erun-launch-")))
    try:
        folder.payload.write_bytes(payload)
        if plan is not None:
            return _launch_plan(plan, folder, run_dir)
        nproc = 1 if nproc is None else nproc
        name = job_keys["name"] if isinstance(job_keys.get("name"), str) else job_name(fn)
        job = {"nproc": nproc, **job_keys, "name": name,
               "module": "runner.api.worker", "args": [str(folder.payload), str(folder.root)]}
        job_file = folder.root / JOB_FILE
        job_file.write_text(json.dumps(job, default=str))  # JSON is YAML: strings stay strings
        where = Path(run_dir).absolute() if run_dir is not None else default_run_dir(job_name(name))
        overrides = [f"+job={job_file}", f"hydra.run.dir={quoted(str(where))}", "logs.panel=off"]
        code, output = _erun(overrides, folder.root, from_launch=True)
        return _outcome(code, where, folder, output)
    finally:
        shutil.rmtree(folder.root, ignore_errors=True)


def _launch_plan(plan: JobPlan, folder: LaunchFolder, run_dir: str | os.PathLike[str] | None) -> LaunchResult:
    """A composed plan with the shipped function as its entrypoint, run as `erun run-plan` runs a
    plan (no Hydra: the plan is already compiled). Its run directory: `run_dir`, else the
    plan's own while it holds no run, else a fresh one as launch's default."""
    import dataclasses
    import uuid

    from runner.paths import RunPaths
    from runner.plan import EntrypointKind, EntrypointPlan

    if run_dir is not None:
        where = Path(run_dir).absolute()
    elif not RunPaths(Path(plan.run_dir)).events.exists():
        where = Path(plan.run_dir)
    else:
        where = default_run_dir(job_name(plan.name))
    entry = EntrypointPlan(EntrypointKind.MODULE, "runner.api.worker",
                           (str(folder.payload), str(folder.root)), python=plan.entrypoint.python)
    # The job file's config (ERUN_CONFIG) is written only by the command line's path: not here.
    launched = dataclasses.replace(plan, entrypoint=entry, run_dir=str(where), run_id=uuid.uuid4().hex[:12],
                                   logs=dataclasses.replace(plan.logs, panel="off"), config_file=None)
    plan_file = folder.root / "plan.json"
    plan_file.write_text(json.dumps(launched.to_dict()))  # as composed: secrets stay redacted
    code, output = _erun(["run-plan", str(plan_file)], folder.root, from_launch=True)
    return _outcome(code, where, folder, output)


def compose(job_file: str | os.PathLike[str], overrides: Sequence[str] = ()) -> JobPlan:
    """The plan `erun +job=JOB_FILE OVERRIDES...` would run (compiled, nothing started)."""
    from runner.plan import JobPlan

    with tempfile.TemporaryDirectory(prefix="erun-compose-") as tmp:
        code, output = _erun([f"+job={job_file}", *overrides, "--dry-run=json"], Path(tmp), keep_stdout=True)
    if code != 0:
        raise ErunError(f"erun exited {code} composing {job_file} (see its output above)")
    return JobPlan.from_dict(json.loads(bytes(output.stdout)))


def _erun(args: list[str], tmp: Path, keep_stdout: bool = False,
          from_launch: bool = False) -> tuple[int, Output]:
    """The CLI's path in a child process; its ErunError raised again here."""
    error_file = tmp / "error.json"
    argv = [sys.executable, "-m", "runner.api.child", str(error_file), *args]
    code, output = run_child(argv, os.environ, os.getcwd(), keep_stdout)
    if error_file.exists():
        raise error_from(json.loads(error_file.read_text()), from_launch)
    return code, output


def error_from(data: dict[str, Any], from_launch: bool) -> ErunError:
    if data.get("kind") == "config":
        source = SOURCE if from_launch and data.get("source") else data.get("source")
        return ConfigError(data.get("key"), str(data.get("problem")), str(data.get("fix") or ""), source)
    error = ErunError(str(data.get("message")))
    error.exit_status = ExitStatus(int(data.get("exit_status", ExitStatus.JOB_FAILED)))
    return error


def _outcome(code: int, run_dir: Path, folder: LaunchFolder, output: Output) -> LaunchResult:
    from runner.paths import RunPaths
    from runner.record.read import read_json

    summary = read_json(RunPaths(run_dir).summary)
    sent = folder.last_returns()
    failures = [f for a in summary.get("per_attempt") or [] for f in a.get("failures") or []]
    cause = summary.get("root_cause") or first(failures)
    state = str(summary.get("state") or ("SUCCEEDED" if code == 0 else "FAILED"))
    result = LaunchResult(state, code, run_dir,
                          {r: s.value for r, s in sorted(sent.items()) if s.ok}, failures, cause)
    if code == 0 and result.succeeded:
        return result
    raise failed(result, sent, output)


def failed(result: LaunchResult, sent: dict[int, Sent], output: Output) -> JobFailedError:
    """erun's failure report, with the first failing rank's exception and traceback."""
    report = ("\n".join(output.report)
              or f"erun: job {result.state}, exit {result.exit_code}; run dir {result.run_dir}")
    rank = result.root_cause.get("rank") if result.root_cause else None
    raised = sent.get(rank) if isinstance(rank, int) else None
    if raised is None or raised.ok:  # no root cause sent one: the first rank that raised
        raised = next((s for _, s in sorted(sent.items()) if not s.ok), None)
    if raised is None:
        return JobFailedError(report, result, rank, None, "")
    return JobFailedError(report, result, raised.rank, raised.exception, raised.traceback)


def first(failures: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first failure by time (rank breaks ties), as erun's root cause."""
    return min(failures, key=lambda f: (f.get("time") or 0.0, f.get("rank") or 0), default=None)


def job_name(fn: Callable[..., Any] | str) -> str:
    """A name fit for a folder: the function's, or the `name` key given."""
    given = fn if isinstance(fn, str) else getattr(fn, "__name__", "")
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", given or "launch").strip("_")
    return name or "launch"


def default_run_dir(name: str) -> Path:
    """As the CLI's default (outputs/DATE/TIME_NAME), made unique: cells run again within a second."""
    now = datetime.datetime.now()
    base = Path.cwd() / "outputs" / now.strftime("%Y-%m-%d") / f"{now.strftime('%H-%M-%S')}_{name}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}_{n}")
    return candidate


def quoted(value: str) -> str:
    """A Hydra override value taken literally (a path with spaces, `=`, `,` or quotes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
