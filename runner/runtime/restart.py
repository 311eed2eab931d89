"""Restart decisions: a pure function of the policy, the attempts so far and the time.

Nothing here starts, stops or sleeps: the agent asks `decide()` after each failed attempt and
does what it says. The budget is what replaying the history gives (an attempt that ran healthy
for `reset_after_s` gives it back; rules with action `always` do not spend it). The replay is
folded into a `RestartLedger` of running counts, one attempt at a time, so a decision costs
O(1) amortised when the caller keeps the ledger (the agent does), and O(n) when it does not;
the answer is the same either way.
"""

from __future__ import annotations

import bisect
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


class RestartLedger:
    """Running counts over a prefix of a history: a cache, never a second source of truth.

    `fold(history)` takes in the attempts it has not seen yet, each decided as `decide` would
    have decided it when it ended. It starts over when handed a history other than the one it
    folded (another list, or another policy), so a stale ledger cannot change an answer."""

    def __init__(self, policy: RestartPlan) -> None:
        self.policy = policy
        self._start_over()

    def _start_over(self) -> None:
        self.spent = 0  # restarts charged by the folded attempts
        self.streak = 0  # folded attempts since (and including) the last healthy one
        self.folded = 0
        self._last: AttemptResult | None = None
        # End times of folded failures, sorted (ends arrive in order: appending is O(1));
        # failures without an end count as recent in every window, as they always did.
        self._ends: list[float] = []
        self._endless = 0

    def fold(self, history: list[AttemptResult], policy: RestartPlan | None = None) -> RestartLedger:
        """Take in history[self.folded:]; returns self."""
        if not self._continues(history, policy or self.policy):
            self.policy = policy or self.policy
            self._start_over()
        for attempt in history[self.folded:]:
            self._fold_one(attempt)
        return self

    def recent_failures(self, since: float, extra: AttemptResult | None = None) -> int:
        """Folded failures (and `extra`, if it failed) that ended at or after `since`."""
        count = len(self._ends) - bisect.bisect_left(self._ends, since) + self._endless
        if extra is not None and _failed(extra) and (not extra.end or extra.end >= since):
            count += 1
        return count

    def _continues(self, history: list[AttemptResult], policy: RestartPlan) -> bool:
        if policy != self.policy:
            return False
        return self.folded == 0 or (len(history) >= self.folded and history[self.folded - 1] is self._last)

    def _fold_one(self, attempt: AttemptResult) -> None:
        if _failed(attempt):
            # Decided as it was when it ended (budget, rules, crash loop, reset), against the
            # attempts before it: so the counts change only after the decision.
            decision = _decide_folded(self.policy, self, attempt, attempt.end or 0.0, None, 0)
            self.spent = decision.spent if decision.restart else self.spent
            if attempt.end:
                bisect.insort(self._ends, attempt.end)
            else:
                self._endless += 1
        self.streak = 1 if _healthy_long_enough(self.policy, attempt) else self.streak + 1
        self.folded += 1
        self._last = attempt


def decide(
    policy: RestartPlan, history: list[AttemptResult],
    now: float | None = None, rng: random.Random | None = None, shared_spent: int = 0,
    ledger: RestartLedger | None = None,
) -> RestartDecision:
    """After a failed attempt (the last in `history`): restart the group, or give up?

    `shared_spent`: restarts the job already charged to its budget, as the nodes of the last
    round agreed (several nodes share one budget); this node's own history may know fewer.
    `ledger`: the caller's running counts over this history (kept from call to call, it makes
    the decision O(1) amortised); without one, the history is folded afresh."""
    now = time.time() if now is None else now
    ledger = (ledger or RestartLedger(policy)).fold(history[:-1], policy)
    return _decide_folded(policy, ledger, history[-1], now, rng, shared_spent)


def _decide_folded(policy: RestartPlan, ledger: RestartLedger, last: AttemptResult, now: float,
                   rng: random.Random | None, shared_spent: int) -> RestartDecision:
    """`decide`, for the attempt `last` that follows the attempts `ledger` has folded."""
    cause = first_failure(last.failures)
    action = action_for(policy, cause)
    if action is RuleAction.GIVE_UP:
        return RestartDecision(False, f"{_describe(cause)}: not restarted (restart.rules: give_up)")
    loop = _crash_loop(policy, ledger, last, now)
    if loop:
        return RestartDecision(False, loop)
    spent = max(ledger.spent, shared_spent)
    healthy = _healthy_long_enough(policy, last)
    if healthy:
        spent = 0
    delay = backoff_delay(policy.backoff, 1 if healthy else ledger.streak + 1, rng)
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
    return RestartLedger(policy).fold(history).spent


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
        base = _capped_power(backoff, max(1, n) - 1)
    base = min(base, backoff.max_s)
    if backoff.jitter:
        base *= 1 + (rng or random).uniform(-backoff.jitter, backoff.jitter)
    return max(0.0, base)


def _capped_power(backoff: BackoffPlan, exponent: int) -> float:
    """initial * multiplier**exponent, without overflowing after many restarts."""
    try:
        return backoff.initial_s * backoff.multiplier ** exponent
    except OverflowError:
        return backoff.max_s


def _crash_loop(policy: RestartPlan, ledger: RestartLedger, last: AttemptResult, now: float) -> str:
    if policy.crash_loop_failures <= 0:
        return ""
    recent = ledger.recent_failures(now - policy.crash_loop_window_s, last)
    if recent <= policy.crash_loop_failures:
        return ""
    return (f"crash loop: {recent} failures within {policy.crash_loop_window_s:g} s "
            f"(restart.crash_loop_failures={policy.crash_loop_failures})")


def _failed(attempt: AttemptResult) -> bool:
    return attempt.state.value == "FAILED"


def _healthy_long_enough(policy: RestartPlan, attempt: AttemptResult) -> bool:
    if policy.reset_after_s <= 0 or attempt.end is None:
        return False
    return attempt.end - attempt.start >= policy.reset_after_s




def _describe(cause: Failure | None) -> str:
    if cause is None:
        return "the failure"
    if cause.reason != "exit":
        return f"rank {cause.rank} ({cause.reason})"
    return f"rank {cause.rank} {cause.exit.describe()}"
