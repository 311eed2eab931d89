"""What the agent tells people while a job runs: one place that writes each note twice."""

from __future__ import annotations

from typing import Any

from runner.record.writer import EventLog
from runner.runtime.console import Console


class Notes:
    """Each note goes to the console (`erun: ...`) and, as a `note` event, to events.jsonl, so
    what a person saw and what the record says never disagree."""

    def __init__(self, events: EventLog, console: Console) -> None:
        self._events = events
        self._console = console

    def note(self, message: str, **fields: Any) -> None:
        self._events.write("note", message=message, **fields)
        self._console.note(message)
