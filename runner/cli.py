"""The `erun` command: subcommands first, everything else is a Hydra job invocation.

A first argument without `=` that names a subcommand selects it (`erun run-plan plan.json`);
anything else (`+job=train.yaml nproc=8`, `-m`, `--cfg job`) goes to Hydra, in `runner.app`.
Errors the user can fix become one line on stderr and exit status 2, mapped here only.
"""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import ConfigError, ErunError, ExitStatus

if TYPE_CHECKING:
    from runner.plan import JobPlan


def _run_plan(args: Sequence[str]) -> int:
    """`erun run-plan PLAN.json [--run-dir DIR]`: run a compiled plan as is (no Hydra), in its own
    run directory or in DIR (a plan.json from an earlier run needs a new one)."""
    from runner.runtime.agent import Agent

    args = list(args)
    run_dir = None
    if "--run-dir" in args:
        at = args.index("--run-dir")
        run_dir = args[at + 1] if at + 1 < len(args) else None
        del args[at:at + 2]
        if run_dir is None:
            raise ConfigError("--run-dir", "needs a directory", "erun run-plan PLAN.json --run-dir DIR")
    if len(args) != 1:
        raise ConfigError(None, "usage: erun run-plan PLAN.json [--run-dir DIR]",
                          "give the plan file (a run directory's plan.json)")
    return Agent(_load_plan(args[0], run_dir)).run().exit_code


def _load_plan(path: str, run_dir: str | None) -> JobPlan:
    """The plan in `path` (written by the compiler, or by hand), moved to `run_dir` if given."""
    import dataclasses
    import json
    import uuid

    from runner.plan import JobPlan

    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigError(None, f"cannot read plan file {path}: {e.strerror}", "check the path") from None
    except ValueError as e:
        raise ConfigError(None, f"{path} is not JSON ({e})", "give a plan.json written by erun") from None
    plan = JobPlan.from_dict(data)
    if run_dir is not None:
        plan = dataclasses.replace(plan, run_dir=run_dir, run_id=uuid.uuid4().hex)
    return plan


def _report(args: Sequence[str]) -> int:
    """`erun report RUN_DIR [--html PATH]`: summary and an HTML timeline of a run or sweep."""
    from runner.report.run_report import main as report_main

    return report_main(args)


def _status(args: Sequence[str]) -> int:
    """`erun status RUN_DIR`: where a run started elsewhere stands now."""
    from runner.report.status import main as status_main

    return status_main(args)


def _torchrun(args: Sequence[str]) -> int:
    """`erun torchrun [torchrun flags] script args`: a torchrun command line, run by erun."""
    from runner.torchrun_job import main as torchrun_main

    return torchrun_main(args)


def _hydra(args: Sequence[str]) -> int:
    from runner.config import gcpause
    with gcpause.paused():  # runner.app resumes it where the job starts
        from runner.app import main as app_main

        return app_main(list(args))


def _runs(args: Sequence[str]) -> int:
    """`erun runs [-n N]`: the recent runs, newest first."""
    from runner.report.runs import main as runs_main

    return runs_main(args)


SUBCOMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    # Each imports its module when called, so `erun` starts fast.
    "run-plan": _run_plan,
    "report": _report,
    "status": _status,
    "torchrun": _torchrun,
    "runs": _runs,
}
# What `erun --help` says of each subcommand, one line each (besides Hydra's help of a job run).
SUBCOMMAND_HELP = {
    "torchrun": ("erun torchrun [torchrun flags] SCRIPT ARGS", "run a torchrun command line under erun"),
    "status": ("erun status [RUN_DIR]", "where a run stands now (default: the newest run)"),
    "report": ("erun report [RUN_DIR] [--html PATH]", "what happened in a run or a sweep, and an HTML page"),
    "runs": ("erun runs [-n N]", "the recent runs: state, name, start time, run directory"),
    "run-plan": ("erun run-plan PLAN.json [--run-dir DIR]", "run a compiled plan (a plan.json) as is"),
}
HELP_FLAGS = ("--help", "-h")
VERSION_FLAGS = ("--version",)


def subcommands_help() -> str:
    width = max(len(usage) for usage, _ in SUBCOMMAND_HELP.values())
    lines = ["== Subcommands (erun SUBCOMMAND --help for each) =="]
    return "\n".join(lines + [f"  {usage:<{width}}  {what}" for usage, what in SUBCOMMAND_HELP.values()])


def version_text() -> str:
    """erun's version and Hydra's (read from the installed metadata: Hydra is not imported)."""
    from importlib.metadata import PackageNotFoundError, version

    from runner import __version__

    try:
        hydra = version("hydra-core")
    except PackageNotFoundError:
        hydra = "not installed"
    return f"erun {__version__}\nHydra {hydra}"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = SUBCOMMANDS.get(args[0]) if args else None
    try:
        if command is not None:
            return command(args[1:])
        if any(a in VERSION_FLAGS for a in args):
            print(version_text(), flush=True)
            return 0
        status = _hydra(args)
        if any(a in HELP_FLAGS for a in args):
            print(f"\n{subcommands_help()}", flush=True)
        return status
    except ErunError as e:
        print(str(e) if str(e).startswith("erun:") else f"erun: error: {e}", file=sys.stderr)
        return int(e.exit_status)
    except KeyboardInterrupt:
        return ExitStatus.for_signal(2)
    except BrokenPipeError:
        if not _stdout_closed():  # some other pipe: a real failure, not a reader that left
            raise
        # `erun status RUN | head`: the reader has all it wanted.
        _silence_stdout()
        return 0


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on its end)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        events = poller.poll(0)
    except (OSError, ValueError):
        return False
    return any(mask & (select.POLLERR | select.POLLHUP) for _, mask in events)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so Python's exit-time flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
