"""What `erun report` and `erun status` share in text: the indent, the fact line, the argument
parser whose mistakes are one-line ConfigErrors, and an event in one line for people.

Both commands print to a terminal; keeping these here lets each command stay one module that
imports no other command.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn

from runner.errors import ConfigError
from runner.record.model import AGENT_EVENT, PREEMPTED_EVENT, Event
from runner.words import describe_exit

INDENT = "  "
LABEL_WIDTH = 12  # "root cause:" and a space


class ArgParser(argparse.ArgumentParser):
    """argparse whose usage errors are erun's one-line ConfigError (exit 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(None, f"{self.prog}: {message}", f"see {self.prog} --help")


def fact(label: str, value: object) -> str:
    """`  label:      value`: one labelled line, values aligned."""
    return f"{INDENT}{label:<{LABEL_WIDTH}}{value}"


def describe_event(event: Event) -> str:
    """The event in one line for people (`node N: ...` for a cluster job's merged events)."""
    node = event.get("node")
    prefix = f"node {node}: " if node is not None else ""
    describe = _DESCRIBE.get(event.kind)
    if describe is not None:
        return prefix + describe(event)
    rest = ", ".join(f"{k}={v}" for k, v in event.fields.items() if k != "node")
    return prefix + (f"{event.kind}: {rest}" if rest else event.kind)


def _describe_group(event: Event) -> str:
    port = event.get("master_port")
    return f"attempt {event.get('attempt')}: group {event.get('state')}" + (f" (port {port})" if port else "")


def _describe_worker(event: Event) -> str:
    head = f"attempt {event.get('attempt')} rank {event.get('rank')}: {event.get('state')}"
    if event.get("pid") is not None:
        return f"{head} (pid {event.get('pid')})"
    if "exit_code" in event.fields or "signal" in event.fields:
        return f"{head} ({describe_exit(event.get('exit_code'), event.get('signal'))})"
    return head


def _describe_stop(event: Event) -> str:
    ranks = ", ".join(str(r) for r in event.get("ranks", []))
    return (f"attempt {event.get('attempt')}: {event.get('signal')} to rank(s) {ranks}, "
            f"grace {event.get('grace_s')} s")


_DESCRIBE: dict[str, Callable[[Event], str]] = {
    "note": lambda e: str(e.get("message", "")),
    "group_state": _describe_group,
    "worker_state": _describe_worker,
    "stop": _describe_stop,
    "swept": lambda e: f"swept leftover process(es) {', '.join(str(p) for p in e.get('pids', []))}",
    "signal_forwarded": lambda e: f"forwarded {e.get('signal')} to the workers",
    "job_end": lambda e: f"job ended: {e.get('state')} (exit {e.get('exit_code')})",
    AGENT_EVENT: lambda e: (f"agent started (pid {e.get('pid')} on {e.get('host')}), "
                            f"segment {e.get('segment', 1)}"),
    PREEMPTED_EVENT: lambda e: str(e.get("message", "preempted")),
}
