"""Restart decisions at scale: a long history costs O(1) amortised per decision, and an agent
restarting a failing group hundreds of times stays quick and answers SIGTERM at once."""

from __future__ import annotations

import time

import pytest
from conftest import Erun, assert_sigterm_answered, read_events, wait_for

from runner.plan import BackoffPlan, EntrypointPlan, ExitRule, RestartPlan
from runner.runtime.restart import RestartLedger, budget_spent, decide
from runner.state import AttemptResult, ExitInfo, Failure, WorkerState


def failed(attempt: int, start: float, end: float, code: int = 1) -> AttemptResult:
    result = AttemptResult(attempt, 30000 + attempt, start, end, WorkerState.FAILED)
    result.failures = [Failure(rank=0, local_rank=0, attempt=attempt, time=end,
                               exit=ExitInfo(code, None), reason="exit")]
    return result


def test_a_thousand_failures_are_decided_in_well_under_a_second() -> None:
    policy = RestartPlan(100_000, reset_after_s=50, crash_loop_failures=500, crash_loop_window_s=10,
                         backoff=BackoffPlan("exponential", initial_s=1, max_s=30),
                         rules=(ExitRule(action="always", exit_codes=(7,)),))
    ledger, history, decisions = RestartLedger(policy), [], []
    began = time.perf_counter()
    for i in range(1000):
        history.append(failed(i, float(i), i + 0.9, code=7 if i % 3 == 0 else 1))
        decisions.append(decide(policy, history, now=i + 1.0, ledger=ledger))
    elapsed = time.perf_counter() - began
    assert elapsed < 0.5, f"1,000 decisions took {elapsed:.2f} s"
    assert all(d.restart for d in decisions)
    # Every third failure matched `always`: the other two thirds spent the budget.
    assert decisions[-1].spent == budget_spent(policy, history[:-1]) == 666
    assert decisions[-1].delay_s == 30  # the exponential backoff capped, not overflowed


def test_a_ledger_gives_the_same_answers_as_a_fresh_replay() -> None:
    policy = RestartPlan(3, reset_after_s=5, crash_loop_failures=4, crash_loop_window_s=10)
    spans = [(0, 1), (1, 2), (2, 9), (9, 10), (10, 11), (11, 12), (12, 13), (13, 14)]
    ledger, history = RestartLedger(policy), []
    for i, (start, end) in enumerate(spans):
        history.append(failed(i, start, end))
        assert decide(policy, history, now=end, ledger=ledger) == decide(policy, history, now=end)


def test_a_ledger_handed_another_history_starts_over() -> None:
    policy = RestartPlan(1)
    ledger = RestartLedger(policy)
    long_history = [failed(i, i, i + 1) for i in range(3)]
    assert not decide(policy, long_history, now=3, ledger=ledger).restart
    fresh = [failed(0, 0, 1)]
    assert decide(policy, fresh, now=1, ledger=ledger).restart


def test_budget_spent_of_a_long_history_is_linear() -> None:
    policy = RestartPlan(10**6)
    history = [failed(i, i, i + 1) for i in range(5000)]
    began = time.perf_counter()
    assert budget_spent(policy, history) == 5000
    assert time.perf_counter() - began < 1.0


@pytest.mark.slow
def test_hundreds_of_quick_failures_restart_fast_and_sigterm_is_prompt(erun: Erun, no_survivors: str) -> None:
    plan = erun.plan("", nproc=1, max_restarts=100_000, entrypoint=EntrypointPlan("exec", "/bin/false"))
    agent = erun.start(plan)

    def restarts() -> int:
        return sum(1 for e in read_events(agent.run_dir) if e.get("decision") == "restart")

    began = time.monotonic()
    wait_for(lambda: restarts() >= 200, timeout=60, what="200 restarts")
    assert time.monotonic() - began < 60
    assert_sigterm_answered(agent, finish_timeout=30)
