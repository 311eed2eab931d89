"""Restart decisions: policy + history -> restart or give up (no processes)."""

from __future__ import annotations

import pytest

from runner.errors import ConfigError
from runner.plan import RestartPlan
from runner.runtime.restart import decide
from runner.state import AttemptResult, WorkerState


def history(attempts: int) -> list[AttemptResult]:
    return [AttemptResult(attempt=i, master_port=30000 + i, start=float(i), state=WorkerState.FAILED)
            for i in range(attempts)]


def test_no_restarts_allowed_gives_up_after_the_first_failure() -> None:
    decision = decide(RestartPlan(max_restarts=0), history(1))
    assert not decision.restart
    assert decision.reason.startswith("no restarts allowed")


@pytest.mark.parametrize(("failed_attempts", "reason"), [(1, "restart 1 of 3"), (2, "restart 2 of 3"),
                                                          (3, "restart 3 of 3")])
def test_restarts_while_the_budget_lasts(failed_attempts: int, reason: str) -> None:
    decision = decide(RestartPlan(max_restarts=3), history(failed_attempts))
    assert decision.restart
    assert decision.reason == reason


def test_gives_up_when_the_budget_is_spent() -> None:
    decision = decide(RestartPlan(max_restarts=3), history(4))
    assert not decision.restart
    assert decision.reason == "restart budget spent (3 of 3)"


def test_decide_is_pure() -> None:
    policy, past = RestartPlan(max_restarts=1), history(1)
    assert decide(policy, past) == decide(policy, past)
    assert len(past) == 1


@pytest.mark.parametrize("fields", [{"max_restarts": -1}, {"stop_grace_s": -0.5}])
def test_restart_plan_rejects_negative_values(fields: dict[str, float]) -> None:
    with pytest.raises(ConfigError) as info:
        RestartPlan(**fields)  # type: ignore[arg-type]
    assert info.value.one_line().startswith("erun: error: `restart.")
