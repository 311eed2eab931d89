"""A record's segments and what a rerun continues from, on records built in memory or on disk
(no processes)."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from runner.errors import ConfigError
from runner.record.continuation import Continuation, continuation_of
from runner.record.model import Event
from runner.record.read import job_state
from runner.record.segments import segments_from_events
from runner.state import JobState


def event(time: float, kind: str, **fields: object) -> Event:
    return Event(time, kind, fields)


SEGMENT_1 = [event(1.0, "agent_start", pid=10, host="h", segment=1),
             event(2.0, "group_state", attempt=0, state="INIT"),
             event(3.0, "group_state", attempt=0, state="FAILED"),
             event(4.0, "group_state", attempt=1, state="INIT"),
             event(5.0, "preempted", message="Slurm warned"),
             event(6.0, "job_end", state="INTERRUPTED", exit_code=143)]


def test_segments_are_read_from_agent_starts_and_job_ends() -> None:
    events = [*SEGMENT_1, event(7.0, "agent_start", pid=11, host="h", segment=2),
              event(8.0, "group_state", attempt=2, state="INIT")]
    first, second = segments_from_events(events)
    assert (first.number, first.attempts, first.state, first.exit_code, first.preempted) == (
        1, [0, 1], "INTERRUPTED", 143, True)
    assert first.describe() == "INTERRUPTED (exit 143), attempts 0-1, preempted"
    assert (second.number, second.pid, second.attempts, second.state, second.end) == (2, 11, [2], None, None)
    assert second.describe() == "no end recorded, attempt 2"


def test_a_record_older_than_agent_start_is_one_segment() -> None:
    (only,) = segments_from_events(SEGMENT_1[1:])
    assert (only.number, only.start, only.attempts, only.state) == (1, 2.0, [0, 1], "INTERRUPTED")


def test_an_agent_started_after_the_last_job_end_runs_the_job_again() -> None:
    final = {"state": "INTERRUPTED", "exit_code": 143}
    assert job_state(final, SEGMENT_1)[0] is JobState.INTERRUPTED
    again = [*SEGMENT_1, event(7.0, "agent_start", pid=11, host="h", segment=2)]
    assert job_state(final, again) == (JobState.RUNNING, None, None)


def test_the_summary_keeps_earlier_attempts_and_lists_every_segment() -> None:
    going_on = Continuation(segment=2, first_attempt=2, restart_count=2,
                            earlier_attempts=({"attempt": 0}, {"attempt": 1}),
                            earlier_segments=({"segment": 1, "state": "FAILED"},))
    merged = going_on.merge({"state": "SUCCEEDED", "per_attempt": [{"attempt": 2}], "attempts": 1},
                            {"segment": 2, "state": "SUCCEEDED"})
    assert [a["attempt"] for a in merged["per_attempt"]] == [0, 1, 2] and merged["attempts"] == 3
    assert [s["segment"] for s in merged["segments"]] == [1, 2] and merged["state"] == "SUCCEEDED"
    waiting = going_on.merge({"state": "RUNNING", "per_attempt": [], "attempts": 0, "restarts": 0},
                             {"segment": 2})
    assert (waiting["attempts"], waiting["restarts"]) == (2, 1)  # the earlier segment's, until its own
    fresh = Continuation().merge({"per_attempt": [], "attempts": 0}, {"segment": 1})
    assert fresh["segments"] == [{"segment": 1}] and fresh["attempts"] == 0


def write_record(run_dir: Path, lines: list[dict[str, object]]) -> None:
    run_dir.mkdir()
    (run_dir / "events.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


DEAD_PID = 2**22 + 1  # above Linux's largest pid_max: no process has it


def test_a_killed_agent_s_attempt_is_kept_from_its_events(tmp_path: Path) -> None:
    """No summary.json (the agent was SIGKILLed): the attempts come from the events."""
    run_dir = tmp_path / "run"
    write_record(run_dir, [
        {"time": 1.0, "event": "agent_start", "pid": DEAD_PID, "host": socket.gethostname(), "segment": 1},
        {"time": 2.0, "event": "group_state", "attempt": 0, "state": "INIT", "restart_count": 0},
        {"time": 3.0, "event": "worker_state", "attempt": 0, "rank": 0, "state": "HEALTHY", "pid": 7}])
    going_on = continuation_of(run_dir)
    assert (going_on.segment, going_on.first_attempt, going_on.restart_count) == (2, 1, 1)
    assert [r["attempt"] for r in going_on.earlier_attempts] == [0]
    assert going_on.earlier_attempts[0]["workers"][0]["pid"] == 7


def test_a_directory_whose_agent_runs_here_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_record(run_dir, [{"time": time.time(), "event": "agent_start", "pid": os.getpid(),
                            "host": socket.gethostname(), "segment": 1}])
    with pytest.raises(ConfigError, match="still running") as info:
        continuation_of(run_dir)
    assert info.value.key == "hydra.run.dir"
    assert continuation_of(tmp_path / "new") == Continuation()
