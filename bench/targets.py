"""The targets erun is held to, each checked against a torchrun row of the same case.

A target passes when erun's median <= factor x the baseline's median (and, where asked, every
erun run succeeded). Restart targets compare with torchrun-fresh (a fresh store per attempt,
the torchrun that does recover); the default torchrun is shown in the restart table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.common import Row

ERUNS = ("erun", "erun-hydra", "erun-plan", "erun -m")
SLURM_CASE = "2 nodes x 1 worker: submit until all ranks initialised"  # bench/slurm.py's CASE
SLURM_PREEMPT_CASE = "2 nodes x 1 worker: warning until all ranks resumed"  # bench/slurm_preempt.py's


@dataclass(frozen=True)
class Target:
    name: str
    metric: str
    case: str
    factor: float
    baseline: str = "torchrun"
    all_ok: bool = False
    margin_s: float = 0.0  # passes within factor x baseline + this many seconds


@dataclass(frozen=True)
class Verdict:
    target: Target
    launcher: str
    erun: float | None
    base: float | None
    erun_ok: str
    result: str  # PASS | MISS | n/a
    floor: float | None = None  # the bare Popen loop: the best any cold start can do

    @property
    def floor_ratio(self) -> float | None:
        return None if self.floor is None or not self.base else self.floor / self.base

    @property
    def ratio(self) -> float | None:
        return None if self.erun is None or not self.base else self.erun / self.base

    def to_dict(self) -> dict[str, Any]:
        t = self.target
        return {"target": t.name, "launcher": self.launcher, "metric": t.metric, "case": t.case,
                "baseline": t.baseline, "factor": t.factor, "erun_median": self.erun,
                "baseline_median": self.base, "ratio": self.ratio, "erun_ok": self.erun_ok,
                "floor_median": self.floor, "floor_ratio": self.floor_ratio, "result": self.result}


def targets(rows: list[Row]) -> list[Target]:
    """The fixed targets, with one restart target per measured crash case."""
    fixed = [
        Target("launch 8 trivial workers", "launch", "trivial nproc=8", 0.3),
        Target("launch 1 torch worker to init", "launch", "torch init nproc=1", 0.65),
    ]
    # A failure in a group that ran a while (warm spares ready); the cold cases are shown, not judged.
    crash = sorted({r.case for r in rows if r.metric == "restart" and "ignores" not in r.case
                    and "(cold)" not in r.case})
    restarts = [Target(f"restart after crash ({case})", "restart", case, 0.5, "torchrun-fresh", all_ok=True)
                for case in crash]
    multinode = [  # faster than torchrun; torchrun's default store does not absorb at all (2.13)
        Target("2 nodes to init", "multi-node", "init 2 nodes x 1 worker", 1.0),
        Target("4 nodes to init", "multi-node", "init 4 nodes x 1 worker", 1.0),
        Target("absorb a late joiner", "multi-node", "absorb a late joiner (nnodes=1:2)", 1.0,
               "torchrun-fresh", all_ok=True),
    ]
    idle = [r.case for r in rows if r.metric == "overhead" and r.case.endswith("CPU idle supervision")]
    cpu = [Target("agent CPU over idle supervision", "overhead", case, 1.0) for case in idle[:1]]
    agents = sorted({r.case for r in rows if r.metric == "scale" and r.case.startswith("CPU per agent")})
    scale = [Target(f"agent CPU, {case.rsplit(', ', 1)[-1]}", "scale", case, 0.7) for case in agents]
    slurm = [  # submission to every rank initialised, faster than the hand-written recipe and TorchX
        Target("slurm: submit 2 nodes to init", "slurm", SLURM_CASE, 1.0, "sbatch + srun torchrun"),
        Target("slurm: submit 2 nodes to init", "slurm", SLURM_CASE, 1.0, "torchx dist.ddp"),
        # Slurm's warning until training resumed in the requeued job (TorchX has no preemption handling)
        Target("slurm: preemption warning to resumed", "slurm-preempt", SLURM_PREEMPT_CASE, 1.0,
               "sbatch + srun torchrun"),
    ]
    calls = sorted({r.case for r in rows if r.metric == "api"})
    api = [Target(f"runner.launch, {case}", "api", case, 0.5, "elastic_launch") for case in calls]
    return fixed + restarts + multinode + cpu + scale + api + slurm + sweep_targets(rows)


def sweep_targets(rows: list[Row]) -> list[Target]:
    """The sweep's, for the size measured (bench/sweep.py): 1.3x faster than Hydra's joblib
    launcher, and its first point running within 0.5 s of Hydra's basic launcher."""
    cases = sorted({r.case for r in rows if r.metric == "sweep"})
    first = [c for c in cases if c.startswith("first point")]
    walls = [Target("sweep 1.3x faster than joblib", "sweep", c, 1 / 1.3, "hydra joblib")
             for c in cases if c not in first]
    return walls + [Target("sweep: first point within 0.5 s of basic", "sweep", c, 1.0, "hydra basic",
                           margin_s=0.5) for c in first]


def median(rows: list[Row], metric: str, case: str, launcher: str) -> tuple[float | None, Row | None]:
    for row in rows:
        if (row.metric, row.case, row.launcher) == (metric, case, launcher):
            stats = row.stats
            return (stats.median if stats else None), row
    return None, None


def judge(target: Target, launcher: str, rows: list[Row]) -> Verdict | None:
    erun, erun_row = median(rows, target.metric, target.case, launcher)
    base, _ = median(rows, target.metric, target.case, target.baseline)
    if erun_row is None or erun_row.runs == 0:
        return None
    floor, _ = median(rows, target.metric, target.case, "floor")
    ok = f"{erun_row.ok}/{erun_row.runs}"
    if erun is None or base is None:
        return Verdict(target, launcher, erun, base, ok, "n/a", floor)
    within = erun <= target.factor * base + target.margin_s
    passed = within and (not target.all_ok or erun_row.ok == erun_row.runs)
    return Verdict(target, launcher, erun, base, ok, "PASS" if passed else "MISS", floor)


def verdicts(rows: list[Row]) -> list[Verdict]:
    found = (judge(t, launcher, rows) for t in targets(rows) for launcher in ERUNS)
    return [v for v in found if v is not None]
