"""The results as Markdown (bench/results/latest.md, bench/RESULTS.md) and JSON."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench.common import Row
from bench.registry import METRICS
from bench.targets import Verdict

BASELINES = {"restart": "torchrun-fresh", "sweep": "hydra basic", "slurm": "sbatch + srun torchrun",
             "slurm-preempt": "sbatch + srun torchrun",
             "api": "elastic_launch"}
NOISE = ("Numbers are wall-clock on a shared machine; other jobs ran at the same time, so absolute "
         "times are noisy. Compare the ratios, and rerun before drawing conclusions from small gaps.")

FLOOR_NOTE = ("`floor/baseline` is the bare Popen loop (bench/floor.py) over the baseline: the best ratio "
              "a launcher of fresh interpreters could reach on this machine. erun's warm restarts hand "
              "the next attempt to interpreters that have already imported torch, so they can go below it.")


@dataclass
class Results:
    command: str
    mode: str
    started: float
    duration_s: float = 0.0
    rows: list[Row] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    survivors: int = 0
    durations: dict[str, float] = field(default_factory=dict)  # seconds per metric
    problems: list[str] = field(default_factory=list)  # why the suite did not work (bench/checks.py)

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command, "mode": self.mode, "machine": machine(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "duration_s": round(self.duration_s, 1), "survivors": self.survivors,
            "durations_s": {name: round(s, 1) for name, s in self.durations.items()},
            "problems": self.problems,
            "metrics": [{"name": m.name, "title": m.title, "pending": m.pending} for m in METRICS],
            "rows": [r.to_dict() for r in self.rows], "targets": [v.to_dict() for v in self.verdicts],
        }


def machine() -> dict[str, Any]:
    """What the numbers were measured on (no paths, no host names)."""
    try:
        torch = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch = "not installed"
    return {"cores": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(),
            "torch": torch, "os": f"{platform.system()} {platform.release()}"}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt(value: float | None, unit: str = "s") -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if unit == "MiB" else f"{value:.3f}"


def ratio(row: Row, rows: list[Row]) -> str:
    """erun's median over the baseline's median in the same case ("" for other launchers)."""
    if not row.launcher.startswith("erun") or row.stats is None:
        return ""
    baseline = BASELINES.get(row.metric, "torchrun")
    for other in rows:
        if (other.metric, other.case, other.launcher) == (row.metric, row.case, baseline) and other.stats:
            return f"{row.stats.median / other.stats.median:.2f}" if other.stats.median else ""
    return ""


def table(rows: list[Row], metric: str) -> list[str]:
    baseline = BASELINES.get(metric, "torchrun")
    lines = [f"| case | launcher | ok/runs | min | median | max | erun/{baseline} | note |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        s = row.stats
        cells = [fmt(v, row.unit) for v in ((s.min, s.median, s.max) if s else (None, None, None))]
        lines.append(f"| {row.case} | {row.launcher} | {row.ok}/{row.runs} | {' | '.join(cells)} | "
                     f"{ratio(row, rows)} | {row.note} |")
    return lines


def targets_table(verdicts: list[Verdict]) -> list[str]:
    lines = ["| target | launcher | erun median | baseline median | ratio | goal | erun ok/runs | result "
             "| floor/baseline |", "|---|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        t = v.target
        goal = (f"<= {t.factor:.3g} x {t.baseline}" + (f" + {t.margin_s:g} s" if t.margin_s else "")
                + (", all recover" if t.all_ok else ""))
        r = "-" if v.ratio is None else f"{v.ratio:.2f}"
        fr = "-" if v.floor_ratio is None else f"{v.floor_ratio:.2f}"
        lines.append(f"| {t.name} | {v.launcher} | {fmt(v.erun)} | {fmt(v.base)} | {r} | {goal} | "
                     f"{v.erun_ok} | **{v.result}** | {fr} |")
    return lines


def durations(results: Results) -> str:
    return ", ".join(f"{name} {s:.0f} s" for name, s in results.durations.items())


def problems(results: Results) -> list[str]:
    if not results.problems:
        return []
    return ["## Problems: the suite did not work", "", *(f"- {p}" for p in results.problems), ""]


def markdown(results: Results) -> str:
    m = machine()
    lines = [
        "# erun benchmark results", "",
        f"Command: `{results.command}` (mode {results.mode}, {results.duration_s:.0f} s: "
        f"{durations(results)}), {time.strftime('%Y-%m-%d', time.localtime(results.started))}.",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['os']}, Python {m['python']}, torch {m['torch']}.",
        "Times in seconds (peak RSS in MiB); min / median / max over the runs that succeeded.", "",
        f"> {NOISE}", "", *problems(results),
        "## Targets", "", *targets_table(results.verdicts), "", FLOOR_NOTE, "",
    ]
    for metric in METRICS:
        lines += [f"## {metric.title}", ""]
        if metric.pending:
            lines += [f"{metric.pending}.", ""]
            continue
        for name in sorted({r.metric for r in results.rows if r.metric.split(" ")[0] == metric.name}):
            mine = [r for r in results.rows if r.metric == name]
            lines += ([f"### {name}", ""] if name != metric.name else []) + table(mine, name) + [""]
    lines.append(f"Processes left behind after the run: {results.survivors}.")
    return "\n".join(lines) + "\n"


def command_line(argv: list[str]) -> str:
    """How the bench was invoked, without any path of this machine."""
    return " ".join(["python -m bench", *argv]) if argv else "python -m bench"


def echo(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
