"""Restart policies beyond a budget: backoff, rules by exit code/signal/reason, the crash-loop
guard and the budget reset after healthy time. Pure decisions, no processes."""

from __future__ import annotations

import random

import pytest

from runner.errors import ConfigError
from runner.plan import BackoffKind, BackoffPlan, ExitRule, RestartPlan, RuleAction
from runner.runtime.restart import action_for, backoff_delay, budget_spent, decide
from runner.state import AttemptResult, ExitInfo, Failure, WorkerState


def failed(attempt: int, start: float, end: float, code: int | None = 1, sig: int | None = None,
           reason: str = "exit") -> AttemptResult:
    result = AttemptResult(attempt, 30000 + attempt, start, end, WorkerState.FAILED)
    result.failures = [Failure(rank=0, local_rank=0, attempt=attempt, time=end,
                               exit=ExitInfo(code, sig), reason=reason)]
    return result


def runs(*spans: tuple[float, float], **kw: object) -> list[AttemptResult]:
    return [failed(i, s, e, **kw) for i, (s, e) in enumerate(spans)]  # type: ignore[arg-type]


# -- backoff -------------------------------------------------------------------------------


def test_no_backoff_restarts_at_once() -> None:
    assert [backoff_delay(BackoffPlan(), n) for n in (1, 2, 5)] == [0.0, 0.0, 0.0]


def test_fixed_backoff_waits_the_same_each_time() -> None:
    plan = BackoffPlan(BackoffKind.FIXED, initial_s=2.5)
    assert [backoff_delay(plan, n) for n in (1, 2, 7)] == [2.5, 2.5, 2.5]


def test_exponential_backoff_doubles_up_to_the_cap() -> None:
    plan = BackoffPlan(BackoffKind.EXPONENTIAL, initial_s=1, max_s=10, multiplier=2)
    assert [backoff_delay(plan, n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_jitter_stays_within_its_fraction() -> None:
    plan = BackoffPlan(BackoffKind.FIXED, initial_s=10, jitter=0.2)
    rng = random.Random(7)
    delays = [backoff_delay(plan, 1, rng) for _ in range(200)]
    assert all(8.0 <= d <= 12.0 for d in delays)
    assert max(delays) - min(delays) > 1.0  # it does spread


def test_decision_carries_the_backoff_of_the_failure_streak() -> None:
    policy = RestartPlan(5, backoff=BackoffPlan("exponential", initial_s=1, max_s=60))
    delays = [decide(policy, runs(*[(i, i + 0.5) for i in range(n)]), now=n).delay_s for n in (1, 2, 3)]
    assert delays == [1, 2, 4]


# -- rules ---------------------------------------------------------------------------------


RULES = RestartPlan(
    max_restarts=3,
    rules=(ExitRule("give_up", exit_codes=(2,)), ExitRule("always", signals=("SIGKILL",)),
           ExitRule("give_up", reasons=("memory_limit",))),
)


def test_exit_code_rule_gives_up_with_budget_left() -> None:
    decision = decide(RULES, runs((0, 1), code=2), now=1)
    assert not decision.restart
    assert "exited 2" in decision.reason and "give_up" in decision.reason


def test_sigkill_always_restarts_without_spending_budget() -> None:
    history = runs((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), code=None, sig=9)
    decision = decide(RULES, history, now=5)
    assert decision.restart and not decision.charged
    assert budget_spent(RULES, history) == 0


def test_watchdog_reason_rule() -> None:
    assert not decide(RULES, runs((0, 1), code=None, sig=15, reason="memory_limit"), now=1).restart


def test_first_matching_rule_wins_and_default_applies_otherwise() -> None:
    rules = (ExitRule("restart", exit_codes=(1, 3)), ExitRule("give_up", exit_codes=(3,)))
    policy = RestartPlan(3, rules=rules, default=RuleAction.GIVE_UP)
    cause = runs((0, 1), code=3)[0].failures[0]
    assert action_for(policy, cause) is RuleAction.RESTART
    assert decide(policy, runs((0, 1), code=3), now=1).restart
    # Restart on listed codes only: anything else gives up.
    assert not decide(policy, runs((0, 1), code=7), now=1).restart


def test_signal_names_are_normalised() -> None:
    assert ExitRule("always", signals=("kill", "9", "SIGTERM")).signals == ("SIGKILL", "SIGKILL", "SIGTERM")


@pytest.mark.parametrize(("make", "key"), [
    (lambda: ExitRule("always"), "restart.rules"),
    (lambda: ExitRule("sometimes", exit_codes=(1,)), "restart.rules.action"),
    (lambda: ExitRule("always", signals=("SIGNOPE",)), "restart.rules.signals"),
    (lambda: BackoffPlan("linear"), "restart.backoff.kind"),
    (lambda: BackoffPlan("fixed", jitter=1.5), "restart.backoff.jitter"),
    (lambda: BackoffPlan("exponential", multiplier=0.5), "restart.backoff.multiplier"),
    (lambda: RestartPlan(crash_loop_failures=-1), "restart.crash_loop_failures"),
    (lambda: RestartPlan(reset_after_s=-1), "restart.reset_after_s"),
])
def test_bad_policies_name_their_key(make, key: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        make()
    assert f"`{key}`" in info.value.one_line()


# -- crash-loop guard and budget reset -----------------------------------------------------


def test_crash_loop_guard_gives_up_with_budget_left() -> None:
    policy = RestartPlan(100, crash_loop_failures=3, crash_loop_window_s=60)
    quick = runs((0, 1), (1, 2), (2, 3), (3, 4))
    decision = decide(policy, quick, now=4)
    assert not decision.restart
    assert decision.reason.startswith("crash loop: 4 failures within 60 s")


def test_crash_loop_guard_forgets_failures_outside_the_window() -> None:
    policy = RestartPlan(100, crash_loop_failures=3, crash_loop_window_s=60)
    spread = runs((0, 1), (100, 101), (200, 201), (300, 301))
    assert decide(policy, spread, now=301).restart


def test_budget_resets_after_a_healthy_run() -> None:
    policy = RestartPlan(1, reset_after_s=100)
    # Two quick failures spend the budget of one...
    assert not decide(policy, runs((0, 1), (1, 2)), now=2).restart
    # ...but an attempt that ran healthy for 100 s gives the budget back.
    decision = decide(policy, runs((0, 1), (1, 500)), now=500)
    assert decision.restart and decision.reason == "restart 1 of 1"


def test_backoff_streak_restarts_after_a_healthy_run() -> None:
    policy = RestartPlan(10, reset_after_s=100, backoff=BackoffPlan("exponential", initial_s=1))
    assert decide(policy, runs((0, 1), (1, 2), (2, 3)), now=3).delay_s == 4
    assert decide(policy, runs((0, 1), (1, 2), (2, 500)), now=500).delay_s == 1
