"""The usage-error decision (no processes): exit 2 early in the first attempt is not restarted,
unless a rule says what exit 2 means or the policy would not restart anyway."""

from __future__ import annotations

from conftest import failure

from runner.plan import ExitRule, RestartPlan, RuleAction
from runner.runtime.usage_error import USAGE_WINDOW_S, usage_error
from runner.state import AttemptResult, WorkerState

POLICY = RestartPlan(max_restarts=3)


def attempt(code: int, after_s: float = 0.5, restart_count: int = 0, number: int = 0) -> AttemptResult:
    failed = failure(1, 100.0 + after_s, code, attempt=number)
    return AttemptResult(number, 30000, 100.0, 100.0 + after_s, WorkerState.FAILED,
                         restart_count=restart_count, failures=[failed])


def test_exit_2_early_in_the_first_attempt_is_a_usage_error() -> None:
    why = usage_error(POLICY, [attempt(2)])
    assert why is not None and "usage error" in why and "restart.rules=" in why and "exit_codes:[2]" in why


def test_late_other_codes_and_later_attempts_are_the_policys_to_decide() -> None:
    assert usage_error(POLICY, [attempt(2, after_s=USAGE_WINDOW_S + 1)]) is None
    assert usage_error(POLICY, [attempt(1)]) is None
    assert usage_error(POLICY, [attempt(2, restart_count=1)]) is None
    assert usage_error(POLICY, [attempt(1), attempt(2, number=1)]) is None
    assert usage_error(POLICY, []) is None


def test_a_rule_for_exit_2_or_a_policy_that_would_not_restart_keeps_its_word() -> None:
    ruled = RestartPlan(max_restarts=3, rules=(ExitRule(RuleAction.RESTART, exit_codes=(2,)),))
    assert usage_error(ruled, [attempt(2)]) is None
    assert usage_error(RestartPlan(max_restarts=0), [attempt(2)]) is None
    assert usage_error(RestartPlan(max_restarts=3, default=RuleAction.ALWAYS), [attempt(2)]) is None
