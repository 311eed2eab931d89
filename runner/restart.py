"""Restart decisions: a pure function of the policy, the history and the latest outcome."""

from __future__ import annotations

from dataclasses import dataclass

from runner.plan import RestartPlan
from runner.state import AttemptResult


@dataclass(frozen=True)
class RestartDecision:
    restart: bool
    reason: str


def decide(policy: RestartPlan, history: list[AttemptResult]) -> RestartDecision:
    """After a failed attempt (the last in `history`): restart the group, or give up?"""
    restarts_done = len(history) - 1
    if restarts_done >= policy.max_restarts:
        spent = "no restarts allowed" if policy.max_restarts == 0 else (
            f"restart budget spent ({restarts_done} of {policy.max_restarts})")
        return RestartDecision(False, spent)
    return RestartDecision(
        True, f"restart {restarts_done + 1} of {policy.max_restarts}",
    )
