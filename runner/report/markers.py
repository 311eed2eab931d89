"""The timeline's markers: which events of a run are moments worth a vertical line, and what to say.

The record keeps every event; deciding which of them a chart marks is the report's business, so it
lives here and not in runner.record.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from runner.record.model import Event, RunRecord
from runner.record.read import is_verdict


class MarkerKind(str, enum.Enum):
    """A moment worth a vertical line on the timeline."""

    RESTART = "restart"  # the policy decided to restart the group
    GIVE_UP = "give_up"  # the policy decided to stop
    WATCHDOG = "watchdog"  # a health watchdog condemned a rank
    KILL = "kill"  # ranks still running after the grace were SIGKILLed
    SIGNAL = "signal"  # a signal reached the agent (stop, or forwarded to the workers)


@dataclass(frozen=True)
class Marker:
    """A moment on the timeline, with what to say about it."""

    time: float
    kind: MarkerKind
    label: str
    rank: int | None = None


def run_markers(record: RunRecord) -> list[Marker]:
    """The run's markers, in the order of its events."""
    return [m for m in (marker_of(e) for e in record.events) if m is not None]


def marker_of(event: Event) -> Marker | None:
    """The timeline marker an event makes, if any."""
    if event.kind == "signal_forwarded":
        return Marker(event.time, MarkerKind.SIGNAL, f"forwarded {event.get('signal')} to the workers")
    if event.kind != "note":
        return None
    message = str(event.get("message", ""))
    if "decision" in event.fields:
        kind = MarkerKind.RESTART if event.get("decision") == "restart" else MarkerKind.GIVE_UP
        return Marker(event.time, kind, message)
    if is_verdict(event):
        return Marker(event.time, MarkerKind.WATCHDOG, message, int(event.get("rank")))
    if "ranks" in event.fields:
        return Marker(event.time, MarkerKind.KILL, message)
    if message.startswith("received SIG"):
        return Marker(event.time, MarkerKind.SIGNAL, message)
    return None
