"""What `erun status` and `erun report` add for a job submitted to a cluster: Slurm's view of the
job (runner.cluster.jobview: pending, running, completed, requeued...) and one line per node
(its state, host, attempt and restarts). The nodes' records are merged into the job's
(runner.record.nodes), so the timeline, attempts and events already show every node.
"""

from __future__ import annotations

from pathlib import Path

from runner.cluster.jobview import views
from runner.record.model import RunRecord
from runner.words import plural


def is_cluster(record: RunRecord) -> bool:
    return record.cluster_job is not None or bool(record.nodes)


def cluster_facts(record: RunRecord) -> list[tuple[str, str]]:
    """(label, value) lines: `slurm:` the job's state as Slurm tells it now, `node N:` each node's."""
    if not is_cluster(record):
        return []
    facts = []
    if record.cluster_job is not None:
        view = views([record.cluster_job])[record.cluster_job]
        facts.append(("slurm:", f"job {record.cluster_job} {view.describe()}"))
    for number, node in node_records(record):
        host = node.agent.get("host") if node.agent is not None else None
        where = f" on {host}" if host else ""
        current = node.current
        how = (f", attempt {current.attempt} ({plural(node.restarts, 'restart')})" if current is not None
               else ", no attempt yet")
        facts.append((f"node {number}:", f"{node.state.value}{where}{how}"))
    if not record.nodes:
        facts.append(("nodes:", "none started yet"))
    return facts


def node_records(record: RunRecord) -> list[tuple[int, RunRecord]]:
    return [(int(n.run_dir.name.removeprefix("node_")), n) for n in record.nodes]


def rank_run_dir(record: RunRecord, attempt: int, rank: int) -> Path:
    """The run directory holding a rank's logs: its node's for a cluster job."""
    for node in record.nodes:
        if any(s.rank == rank for a in node.attempts if a.attempt == attempt for s in a.ranks):
            return node.run_dir
    return record.run_dir


def rank_host(record: RunRecord, rank: int) -> str | None:
    """The host of the agent that ran `rank` (None: unknown, or not a cluster job)."""
    for node in record.nodes:
        if any(s.rank == rank for a in node.attempts for s in a.ranks):
            return str(node.agent.get("host")) if node.agent is not None else None
    return None
