"""What a root cause says is the same live (runner.state.Failure, the console) and read back from
summary.json (FailureRecord, `erun report` and its page): one source, runner.record.cause."""

from __future__ import annotations

import signal

import pytest
from conftest import failure

from runner.record.cause import cause_facts
from runner.record.read import attempts_from_summary
from runner.state import Failure


@pytest.mark.parametrize("live", [
    failure(1, 10.0, -signal.SIGSEGV, attempt=1, message="killed by SIGSEGV", stderr_tail=["segfault"]),
    failure(0, 4.0, 1, message="ValueError: bad", traceback="Traceback...\nValueError: bad\n"),
    failure(2, 5.0, -signal.SIGTERM, reason="heartbeat_timeout", message="no heartbeat for 1.0 s"),
], ids=["signal", "message", "watchdog"])
def test_the_console_and_the_record_say_the_same(live: Failure) -> None:
    summary = {"per_attempt": [{"attempt": live.attempt, "failures": [live.to_dict()]}]}
    [attempt] = attempts_from_summary(summary)
    [read_back] = attempt.failures
    assert cause_facts(read_back) == cause_facts(live)


def test_a_message_that_repeats_the_exit_is_not_said_twice() -> None:
    facts = cause_facts(failure(1, 1.0, 3, message="exited 3"))
    assert (facts.what, facts.message) == ("exited 3", "")


def test_a_watchdog_cause_says_its_reason_then_how_the_rank_ended() -> None:
    facts = cause_facts(failure(1, 1.0, -signal.SIGKILL, reason="stalled", message="no CPU use for 9.0 s"))
    assert facts.what == "stalled: no CPU use for 9.0 s (then stopped: killed by SIGKILL)"
    assert facts.message == ""
