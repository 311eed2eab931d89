"""A run on a cluster as one record: every node keeps its own record (run_dir/node_N/, written by
that node's agent), and reports read them together, on one timeline.

The job's record is the nodes' records merged: attempt K is every node's attempt K (its ranks are
global ranks, distinct across nodes), the events of all nodes in time order (each with a `node`
field), the job's state the worst node's (a node still running keeps the job RUNNING), the root
cause the earliest. Each node's own record stays in `RunRecord.nodes`; the Slurm job id recorded
at submission (slurm.json) in `RunRecord.cluster_job`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from runner.paths import RunPaths
from runner.record.model import AttemptRecord, Event, RunRecord
from runner.state import JobState, WorkerState

# The job's state from its nodes': the first that any node has, in this order.
JOB_ORDER = (JobState.RUNNING, JobState.FAILED, JobState.INTERRUPTED, JobState.SUCCEEDED)
# An attempt's state from its nodes': the first that any node's attempt has, in this order.
ATTEMPT_ORDER = (WorkerState.FAILED.value, WorkerState.STOPPED.value, WorkerState.UNHEALTHY.value,
                 WorkerState.HEALTHY.value, WorkerState.INIT.value, WorkerState.SUCCEEDED.value)


def is_cluster_run(run_dir: Path) -> bool:
    paths = RunPaths(run_dir)
    return paths.slurm_job.is_file() or bool(paths.node_dirs())


def merged_run(run_dir: Path, nodes: list[RunRecord], plan: Mapping[str, Any], overrides: list[str],
               job: Mapping[str, Any]) -> RunRecord:
    """The job submitted to a cluster (`job`: its slurm.json), its nodes' records merged (read by
    runner.record.read, in node order); before any node started, a RUNNING record with no
    attempts (the scheduler's view says pending)."""
    job_id = job.get("job_id")
    record = RunRecord(
        run_dir=run_dir, state=merged_state(nodes), attempts=merged_attempts(nodes),
        events=merged_events(nodes), plan=plan, exit_code=merged_exit(nodes), overrides=overrides,
        damaged_lines=sum(n.damaged_lines for n in nodes), has_summary=all(n.has_summary for n in nodes),
        nodes=nodes, cluster_job=str(job_id) if isinstance(job_id, (str, int)) and job_id != "" else None)
    causes = [n.root_cause for n in nodes if n.root_cause is not None]
    record.root_cause = min(causes, key=lambda c: c.time, default=None)
    signals = [n.signal for n in nodes if n.signal]
    record.signal = signals[0] if signals else None
    return record


def node_number(node_dir: Path) -> int:
    return int(node_dir.name.removeprefix("node_"))


def merged_state(nodes: list[RunRecord]) -> JobState:
    if not nodes:
        return JobState.RUNNING
    states = {n.state for n in nodes}
    return next((s for s in JOB_ORDER if s in states), JobState.RUNNING)


def merged_exit(nodes: list[RunRecord]) -> int | None:
    """The failing node's code: srun stops the others once one fails (they then exit 143)."""
    codes = [n.exit_code for n in nodes if n.exit_code is not None]
    if not codes or any(n.exit_code is None for n in nodes):
        return None
    own = [c for c in codes if 0 < c < 128]
    return min(own) if own else max(codes)


def merged_attempts(nodes: list[RunRecord]) -> list[AttemptRecord]:
    by_number: dict[int, list[AttemptRecord]] = {}
    for node in nodes:
        for attempt in node.attempts:
            by_number.setdefault(attempt.attempt, []).append(attempt)
    return [merged_attempt(number, parts) for number, parts in sorted(by_number.items())]


def merged_attempt(number: int, parts: list[AttemptRecord]) -> AttemptRecord:
    starts = [a.start for a in parts if a.start is not None]
    ends = [a.end for a in parts]
    states = {a.state for a in parts}
    counts = [a.restart_count for a in parts if a.restart_count is not None]
    return AttemptRecord(
        attempt=number, start=min(starts, default=None),
        end=None if None in ends or not ends else max(e for e in ends if e is not None),
        state=next((s for s in ATTEMPT_ORDER if s in states), parts[0].state),
        master_port=parts[0].master_port, restart_count=max(counts) if counts else None,
        ranks=sorted((s for a in parts for s in a.ranks), key=lambda s: s.rank),
        failures=sorted((f for a in parts for f in a.failures), key=lambda f: f.time),
        killed_after_grace=sorted(r for a in parts for r in a.killed_after_grace))


def merged_events(nodes: list[RunRecord]) -> list[Event]:
    """Every node's events, in time order, each naming its node."""
    events = [replace(e, fields={**e.fields, "node": node_number(node.run_dir)})
              for node in nodes for e in node.events]
    return sorted(events, key=lambda e: e.time)
