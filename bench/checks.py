"""Did the suite itself work? The problems that make `python -m bench` exit 1.

Never about speed: a slow run or a missed target is a result, not a problem. A problem is a
suite that did not measure: a metric that raised, a metric with no successful erun run, or a
launcher that ran in a metric and never once succeeded there. Failures that are torchrun's own
and expected (its default shared store often does not recover a restart, and deadlocks when a
late node joins: bench/restart.py, bench/multinode.py) are results too.
"""

from __future__ import annotations

from collections.abc import Iterable

from bench.common import Row

SKIPPED = "skipped:"  # a row's note when its metric could not run here, or not in this mode


def base_metric(row: Row) -> str:
    """The metric module's name: "launch (erun agent part)" -> "launch"."""
    return row.metric.split(" (")[0]


def expected_to_fail(row: Row) -> bool:
    """torchrun with its default shared store: failing there is what the row shows."""
    return row.launcher == "torchrun" and (row.metric == "restart" or row.case.startswith("absorb"))


def no_erun_success(metric: str, rows: list[Row]) -> str | None:
    eruns = [r for r in rows if r.metric == metric and r.launcher.startswith("erun")]
    if eruns and all(r.runs == 0 and r.note.startswith(SKIPPED) for r in eruns):
        return None  # not measurable here, or not in this mode: the row says why (bench/slurm.py)
    if not any(r.ok for r in eruns):
        runs = sum(r.runs for r in eruns)
        return f"{metric}: no successful erun measurement ({runs} erun run(s))"
    return None


def never_succeeded(metric: str, rows: list[Row]) -> list[str]:
    """Launchers that ran in this metric and failed every run (expected failures aside)."""
    counted = [r for r in rows if base_metric(r) == metric and not expected_to_fail(r)]
    problems = []
    for launcher in dict.fromkeys(r.launcher for r in counted):
        mine = [r for r in counted if r.launcher == launcher]
        runs = sum(r.runs for r in mine)
        if runs and not any(r.ok for r in mine):
            problems.append(f"{metric}: {launcher} failed all {runs} run(s); see the log above")
    return problems


def problems(metrics: Iterable[str], rows: list[Row]) -> list[str]:
    """Every problem of the metrics that ran (crashes are recorded where they happen)."""
    found: list[str] = []
    for metric in metrics:
        missing = no_erun_success(metric, rows)
        found += ([missing] if missing else []) + never_succeeded(metric, rows)
    return found
