"""A usage error is not worth a restart: a pure decision the agent asks before the restart policy.

A typo in the job's own values (`params.lrr=0.01`) makes the script's argparse exit 2 on every
rank within seconds; restarting only repeats the same usage message until the budget is spent.
So a first attempt whose first failing rank exited 2 within USAGE_WINDOW_S of its start is not
restarted, unless the user said what exit code 2 means (a `restart.rules` entry matching it) or
the policy would not restart anyway (then its own reason stands).
"""

from __future__ import annotations

from runner.plan import RestartPlan, RuleAction
from runner.state import AttemptResult, WorkerState, first_failure

USAGE_EXIT_CODE = 2  # argparse's, click's and most CLIs' "bad command line"
USAGE_WINDOW_S = 30.0  # "the first seconds": room for a slow `import torch` before argparse runs
RESTART_IT = "restart.rules='[{exit_codes:[2],action:restart}]'"


def usage_error(policy: RestartPlan, history: list[AttemptResult]) -> str | None:
    """Why the last failed attempt is not restarted (a usage error), or None: the policy decides."""
    if not history or any(a.state is WorkerState.FAILED for a in history[:-1]):
        return None
    attempt = history[-1]
    cause = first_failure(attempt.failures)
    if (attempt.restart_count != 0 or cause is None or cause.reason != "exit"
            or cause.exit.exit_code != USAGE_EXIT_CODE or cause.time - attempt.start > USAGE_WINDOW_S):
        return None
    if any(USAGE_EXIT_CODE in rule.exit_codes for rule in policy.rules):
        return None  # the user said what exit code 2 means
    if policy.default is not RuleAction.RESTART or policy.max_restarts == 0:
        return None
    return (f"a usage error: exit status {USAGE_EXIT_CODE} {cause.time - attempt.start:.1f} s into the first "
            f"attempt, which a restart would only repeat; to restart it anyway, set {RESTART_IT}")
