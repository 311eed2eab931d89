"""A run record's segments: each agent that ran in the run directory, one after the other.

A run directory that already holds a run is continued, not refused (a rerun with the same
hydra.run.dir, a Slurm job requeued after a preemption): the new agent's `agent_start` opens a
segment, its attempts are numbered after the earlier ones, and its `job_end` closes it. Read
from events.jsonl alone, so a segment whose agent was killed (no summary) is there too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runner.record.model import AGENT_EVENT, PREEMPTED_EVENT, Event, SegmentRecord


def segments_from_events(events: Iterable[Event]) -> list[SegmentRecord]:
    """The segments the events tell of, in order; events before any agent_start (a record older
    than it) make one segment of their own."""
    segments: list[SegmentRecord] = []
    for event in events:
        if event.kind == AGENT_EVENT:
            number = event.get("segment")
            number = number if isinstance(number, int) and number > 0 else len(segments) + 1
            pid = event.get("pid")
            segments.append(SegmentRecord(number, event.time, pid if isinstance(pid, int) else None,
                                          str(event.get("host") or "")))
            continue
        if not segments:
            segments.append(SegmentRecord(1, event.time))
        current = segments[-1]
        if event.kind == "group_state" and event.get("state") == "INIT":
            current.attempts.append(int(event.get("attempt")))
        elif event.kind == "job_end":
            current.end, current.state = event.time, str(event.get("state"))
            code = event.get("exit_code")
            current.exit_code = code if isinstance(code, int) else None
        elif event.kind == PREEMPTED_EVENT:
            current.preempted = True
    return segments


def segment_dict(segment: SegmentRecord) -> dict[str, Any]:
    """A segment as summary.json lists it."""
    return {"segment": segment.number, "start": segment.start, "end": segment.end,
            "state": segment.state, "exit_code": segment.exit_code, "attempts": list(segment.attempts),
            "host": segment.host, "pid": segment.pid, "preempted": segment.preempted}

