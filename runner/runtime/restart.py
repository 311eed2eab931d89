"""Restart decisions: a pure function of the policy, the attempts so far and the time.

Nothing here starts, stops or sleeps: the agent asks `decide()` after each failed attempt and
does what it says. The budget is recomputed from the history every time (an attempt that ran
healthy for `reset_after_s` gives it back; rules with action `always` do not spend it), so the
agent keeps no counters that could drift.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from runner.plan import BackoffKind, BackoffPlan, RestartPlan, RuleAction
from runner.state import AttemptResult, Failure, first_failure


@dataclass(frozen=True)
class RestartDecision:
    restart: bool
    reason: str
    delay_s: float = 0.0
    # Whether this restart spends one of the budget's restarts.
    charged: bool = False
    # Restarts spent from the budget, this one included (after any reset).
    spent: int = 0


def decide(
    policy: RestartPlan, history: list[AttemptResult],
    now: float | None = None, rng: random.Random | None = None, shared_spent: int = 0,
) -> RestartDecision:
    """After a failed attempt (the last in `history`): restart the group, or give up?

    `shared_spent`: restarts the job already charged to its budget, as the nodes of the last
    round agreed (several nodes share one budget); this node's own history may know fewer."""
    now = time.time() if now is None else now
    cause = first_failure(history[-1].failures)
    action = action_for(policy, cause)
    if action is RuleAction.GIVE_UP:
        return RestartDecision(False, f"{_describe(cause)}: not restarted (restart.rules: give_up)")
    loop = _crash_loop(policy, history, now)
    if loop:
        return RestartDecision(False, loop)
    spent = max(budget_spent(policy, history[:-1]), shared_spent)
    if _healthy_long_enough(policy, history[-1]):
        spent = 0
    delay = backoff_delay(policy.backoff, _streak(policy, history), rng)
    if action is RuleAction.ALWAYS:
        why = f"{_describe(cause)}: restarted without spending budget (restart.rules: always)"
        return RestartDecision(True, why, delay, False, spent)
    if spent >= policy.max_restarts:
        why = "no restarts allowed (restart.max_restarts=0)" if policy.max_restarts == 0 else (
            f"restart budget spent ({spent} of {policy.max_restarts})")
        return RestartDecision(False, why, spent=spent)
    return RestartDecision(True, f"restart {spent + 1} of {policy.max_restarts}", delay, True, spent + 1)


def budget_spent(policy: RestartPlan, history: list[AttemptResult]) -> int:
    """Restarts charged to the budget by the failed attempts in `history` (replayed)."""
    spent = 0
    for i, attempt in enumerate(history):
        if attempt.state.value != "FAILED":
            continue
        decision = decide(policy, history[: i + 1], now=attempt.end or 0.0)
        spent = decision.spent if decision.restart else spent
    return spent


def action_for(policy: RestartPlan, cause: Failure | None) -> RuleAction:
    """The first rule that matches the root cause, else the policy's default."""
    if cause is None:
        return policy.default
    for rule in policy.rules:
        if (cause.exit.exit_code in rule.exit_codes
                or (cause.exit.signal_name or "") in rule.signals
                or cause.reason in rule.reasons):
            return rule.action
    return policy.default


def backoff_delay(backoff: BackoffPlan, n: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before the n-th consecutive restart (n >= 1)."""
    if backoff.kind is BackoffKind.NONE:
        return 0.0
    base = backoff.initial_s
    if backoff.kind is BackoffKind.EXPONENTIAL:
        base = backoff.initial_s * backoff.multiplier ** (max(1, n) - 1)
    base = min(base, backoff.max_s)
    if backoff.jitter:
        base *= 1 + (rng or random).uniform(-backoff.jitter, backoff.jitter)
    return max(0.0, base)


def _crash_loop(policy: RestartPlan, history: list[AttemptResult], now: float) -> str:
    if policy.crash_loop_failures <= 0:
        return ""
    since = now - policy.crash_loop_window_s
    recent = sum(1 for a in history if a.state.value == "FAILED" and (a.end or now) >= since)
    if recent <= policy.crash_loop_failures:
        return ""
    return (f"crash loop: {recent} failures within {policy.crash_loop_window_s:g} s "
            f"(restart.crash_loop_failures={policy.crash_loop_failures})")


def _healthy_long_enough(policy: RestartPlan, attempt: AttemptResult) -> bool:
    if policy.reset_after_s <= 0 or attempt.end is None:
        return False
    return attempt.end - attempt.start >= policy.reset_after_s


def _streak(policy: RestartPlan, history: list[AttemptResult]) -> int:
    """Failures since the last attempt that ran healthy for `reset_after_s` (1 for the first)."""
    n = 0
    for attempt in reversed(history):
        n += 1
        if _healthy_long_enough(policy, attempt):
            break
    return n


def _describe(cause: Failure | None) -> str:
    if cause is None:
        return "the failure"
    if cause.reason != "exit":
        return f"rank {cause.rank} ({cause.reason})"
    return f"rank {cause.rank} {cause.exit.describe()}"
