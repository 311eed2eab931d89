"""What a root cause says: the one source for the agent's failure report (runner.runtime.final_report),
`erun report`'s text and its page, each a thin rendering of the same facts.

Works on the live `runner.state.Failure` and on the record's `FailureRecord` alike (both satisfy
`FailureLike`), so the console and the reports cannot drift apart on what they say.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class ExitLike(Protocol):
    """How a process ended, in words (runner.state.ExitInfo, or the record's RecordedExit)."""

    def describe(self) -> str: ...


class FailureLike(Protocol):
    """A rank's failure as the runtime holds it and as the record reads it back."""

    @property
    def rank(self) -> int: ...

    @property
    def attempt(self) -> int: ...

    @property
    def reason(self) -> str: ...

    @property
    def message(self) -> str: ...

    @property
    def exit(self) -> ExitLike: ...

    @property
    def traceback(self) -> str: ...

    @property
    def stderr_tail(self) -> Sequence[str]: ...

    @property
    def stdout_log(self) -> str: ...

    @property
    def stderr_log(self) -> str: ...


@dataclass(frozen=True)
class CauseFacts:
    """The facts of a root cause, each under its name; renderings choose layout, not content."""

    rank: int
    attempt: int
    what: str  # what happened, in one line (`failure_in_words`)
    message: str  # the worker's own words, "" when they only repeat `what`
    traceback: str  # from the error file, as written ("" when none)
    stderr_tail: tuple[str, ...]  # the last lines of its stderr; () when empty
    stderr_log: str
    stdout_log: str


def failure_in_words(failure: FailureLike) -> str:
    """`exited 3`, or a watchdog's reason and words followed by how the rank then ended."""
    how = failure.exit.describe()
    if failure.reason == "exit":
        return how
    what = f"{failure.reason}: {failure.message}" if failure.message else failure.reason
    return f"{what} (then stopped: {how})"


def cause_facts(cause: FailureLike) -> CauseFacts:
    """What every report says about a root cause."""
    return CauseFacts(
        rank=cause.rank, attempt=cause.attempt, what=failure_in_words(cause), message=_own_message(cause),
        traceback=cause.traceback, stderr_tail=tuple(cause.stderr_tail),
        stderr_log=cause.stderr_log, stdout_log=cause.stdout_log,
    )


def _own_message(cause: FailureLike) -> str:
    """The message of a rank that exited by itself, unless it only repeats the exit status (a
    watchdog's message is already in `what`)."""
    if cause.reason != "exit" or cause.message == cause.exit.describe():
        return ""
    return cause.message
