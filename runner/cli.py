"""The `erun` command: subcommands first, everything else is a Hydra job invocation.

A first argument without `=` that names a subcommand selects it (`erun run-plan plan.json`);
anything else (`+job=train.yaml nproc=8`, `-m`, `--cfg job`) goes to Hydra, in `runner.app`.
Errors the user can fix become one line on stderr and exit status 2, mapped here only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from runner.errors import ErunError, ExitStatus


def _run_plan(args: Sequence[str]) -> int:
    """`erun run-plan PLAN.json`: run a compiled plan as is (no Hydra)."""
    from runner.agent import run_plan_file

    if len(args) != 1:
        raise ErunError("usage: erun run-plan PLAN.json")
    return run_plan_file(args[0])


def _hydra(args: Sequence[str]) -> int:
    from runner.app import main as app_main

    return app_main(list(args))


SUBCOMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "run-plan": _run_plan,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = SUBCOMMANDS.get(args[0]) if args else None
    try:
        if command is not None:
            return command(args[1:])
        return _hydra(args)
    except ErunError as e:
        print(str(e) if str(e).startswith("erun:") else f"erun: error: {e}", file=sys.stderr)
        return int(e.exit_status)
    except KeyboardInterrupt:
        return ExitStatus.for_signal(2)
