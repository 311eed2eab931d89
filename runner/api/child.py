"""`python -m runner.api.child ERROR_FILE ERUN_ARGS...`: erun's command line (`runner.app`,
the CLI's own path: Hydra composes, the compiler plans, the agent runs; or `run-plan PLAN.json`,
a plan already compiled by `runner.compose`) in the child process
that `runner.launch` and `runner.compose` start, so the caller never hosts the agent.

An error erun raises on purpose is written to ERROR_FILE as JSON (a ConfigError's key,
problem, fix and source) for the caller to raise again, and the exit status is the CLI's.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from runner.errors import ConfigError, ErunError, ExitStatus


def as_data(error: ErunError) -> dict[str, Any]:
    if isinstance(error, ConfigError):
        return {"kind": "config", "key": error.key, "problem": error.problem, "fix": error.fix,
                "source": error.source}
    return {"kind": type(error).__name__, "message": str(error), "exit_status": int(error.exit_status)}


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m runner.api.child ERROR_FILE ERUN_ARGS...", file=sys.stderr)
        return 2
    try:
        if argv[1:2] == ["run-plan"]:  # runner.launch(fn, plan=...): a compiled plan, no Hydra
            from runner.cli import SUBCOMMANDS

            return SUBCOMMANDS["run-plan"](argv[2:])
        from runner.app import main as app_main

        return app_main(argv[1:])
    except ErunError as e:
        with open(argv[0], "w", encoding="utf-8") as f:
            json.dump(as_data(e), f)
        return int(e.exit_status)
    except KeyboardInterrupt:  # before the agent took over SIGINT
        return ExitStatus.for_signal(2)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
