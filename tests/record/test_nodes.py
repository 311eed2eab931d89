"""A cluster job's record is its nodes' records merged (runner.record.nodes): pure logic, records
built in memory."""

from __future__ import annotations

from pathlib import Path

from runner.record.model import AttemptRecord, Event, FailureRecord, RankSpan, RunRecord
from runner.record.nodes import merged_run
from runner.state import JobState


def node(n: int, state: JobState, exit_code: int | None, attempts: list[AttemptRecord],
         events: list[Event]) -> RunRecord:
    return RunRecord(run_dir=Path(f"/runs/job/node_{n}"), state=state, attempts=attempts, events=events,
                     plan={}, exit_code=exit_code, has_summary=True)


def attempt(number: int, state: str, ranks: list[tuple[int, str]], start: float, end: float | None,
            failures: list[FailureRecord] | None = None) -> AttemptRecord:
    return AttemptRecord(number, start, end, state, restart_count=number,
                         ranks=[RankSpan(number, r, s, start=start, end=end) for r, s in ranks],
                         failures=failures or [])


def test_nodes_merge_into_one_job_worst_state_first_and_events_in_time_order() -> None:
    failure = FailureRecord(0, 3, 12.0, exit_code=1)
    stopped = attempt(0, "STOPPED", [(0, "STOPPED"), (1, "STOPPED")], 10.0, 13.0)
    first = node(0, JobState.FAILED, 143, [stopped],
                 [Event(10.0, "agent_start", {"host": "n1"}), Event(13.0, "job_end", {"state": "FAILED"})])
    second = node(1, JobState.FAILED, 1, [attempt(0, "FAILED", [(2, "STOPPED"), (3, "FAILED")], 10.5, 12.5,
                                                  [failure])],
                  [Event(10.5, "agent_start", {"host": "n2"}), Event(12.0, "worker_state", {"rank": 3})])
    job = merged_run(Path("/runs/job"), [first, second], {"name": "train"}, ["nnodes=2"], {"job_id": 42})
    # the failing node's exit code, not the other node's 143 (srun stopped it)
    assert (job.state, job.exit_code, job.cluster_job) == (JobState.FAILED, 1, "42")
    assert [a.attempt for a in job.attempts] == [0]
    merged = job.attempts[0]
    assert (merged.state, merged.start, merged.end) == ("FAILED", 10.0, 13.0)
    assert [s.rank for s in merged.ranks] == [0, 1, 2, 3] and merged.failures == [failure]
    assert [(e.time, e.get("node")) for e in job.events] == [(10.0, 0), (10.5, 1), (12.0, 1), (13.0, 0)]
    assert job.root_cause is None and job.nodes == [first, second]


def test_a_node_still_running_keeps_the_job_running_and_no_node_reads_as_not_started() -> None:
    done = node(0, JobState.SUCCEEDED, 0, [attempt(0, "SUCCEEDED", [(0, "SUCCEEDED")], 1.0, 2.0)], [])
    going = node(1, JobState.RUNNING, None, [attempt(0, "HEALTHY", [(1, "HEALTHY")], 1.0, None)], [])
    job = merged_run(Path("/runs/job"), [done, going], {}, [], {})
    assert (job.state, job.exit_code, job.attempts[0].state, job.attempts[0].end) == (
        JobState.RUNNING, None, "HEALTHY", None)
    pending = merged_run(Path("/runs/job"), [], {}, [], {"job_id": "7_1"})
    assert (pending.state, pending.attempts, pending.cluster_job) == (JobState.RUNNING, [], "7_1")
