"""`erun status SWEEP_DIR`: every point of a sweep, where it stands now: its state and result, and
for a sweep submitted to Slurm (runner.sweep.slurm) each point's job id and Slurm's view of it
(runner.cluster.jobview, asked once for all points)."""

from __future__ import annotations

import json
from typing import Any

from runner.cluster.jobview import SlurmView, views
from runner.record.model import PointRecord, SweepRecord
from runner.record.read import read_result
from runner.report.cluster import rank_run_dir
from runner.report.text import INDENT
from runner.words import plural


def render(record: SweepRecord) -> str:
    jobs = [p.run.cluster_job for p in record.points if p.run is not None and p.run.cluster_job]
    seen = views(jobs) if jobs else {}
    header = ["point", "overrides", *(["slurm"] if jobs else []), "state", "restarts", "result"]
    common = set.intersection(*(set(p.overrides) for p in record.points)) if len(record.points) > 1 else set()
    rows = [header] + [row(p, seen, bool(jobs), common) for p in record.points]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [f"erun status: sweep {record.sweep_dir} ({plural(len(record.points), 'point')})"]
    lines += [INDENT + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if not record.points:
        lines.append(f"{INDENT}no points yet")
    return "\n".join(lines)


def row(point: PointRecord, seen: dict[str, SlurmView], slurm: bool, common: set[str]) -> list[str]:
    """The point's row; its overrides less those every point has."""
    run = point.run
    overrides = " ".join(o for o in point.overrides if o not in common) or "-"
    if run is None:
        return [point.name, overrides, *(["-"] if slurm else []), "not started", "-", "-"]
    job = run.cluster_job
    slurm_cell = [f"{job} {seen[job].describe()}" if job in seen else "-"] if slurm else []
    state = run.state.value
    if run.cluster_job is not None and not run.nodes:
        state = "-"  # no node has started: Slurm's view says why
    current = run.current
    result = None
    if current is not None and run.finished:
        result = read_result(rank_run_dir(run, current.attempt, 0), current.attempt, 0)
    restarts = str(run.restarts) if current is not None else "-"
    return [point.name, overrides, *slurm_cell, state, restarts, shown_result(result)]


def shown_result(value: Any, width: int = 24) -> str:
    """A result in a cell: `-` for none, cut short when long (as the sweep's own table)."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    return text if len(text) <= width else text[:width - 3] + "..."
