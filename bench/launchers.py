"""The launchers under test: each turns the same `Job` into a command line.

- `erun`: `python -m runner run-plan plan.json` (the agent, no Hydra);
- `erun-hydra`: `python -m runner +job=job.yaml nproc=N ...` (the user-facing CLI), once
  runner/app.py exists;
- `torchrun`: `torchrun --standalone --nproc-per-node N SCRIPT` (c10d on a free port: the
  documented single-node form, which also keeps it off port 29500 on a shared machine), with
  the default shared agent store, or with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 (`torchrun-fresh`);
- `floor`: bench/floor.py, a bare Popen loop: the physical floor.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bench.common import BENCH_DIR, REPO_DIR

# What the `erun` and `erun-hydra` launchers prewarm: spares are off by default since they are
# opt-in, and the bench shows warm (these) and cold (`erun-cold`) restarts side by side.
WARM_MODULES = ("torch",)


@dataclass(frozen=True)
class Job:
    """The same workload for every launcher: `python -u script args` in nproc workers."""

    script: str
    args: tuple[str, ...]
    nproc: int
    max_restarts: int = 0
    stop_grace_s: float = 10.0


@dataclass(frozen=True)
class Command:
    """What to run, with which extra environment, and (erun) where its run record goes."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    run_dir: Path | None = None


class Launcher(Protocol):
    name: str

    def available(self) -> str | None:
        """None when usable, else why not (printed in the table)."""

    def command(self, job: Job, work: Path) -> Command:
        """The command line for job; work is a fresh temporary directory for this run."""


class ErunPlan:
    """erun's agent on a hand-written plan (`erun run-plan`): no Hydra in the path. Defaults
    everywhere but warm spares, which are opt-in: `warm=True` turns them on explicitly
    (restart.prewarm.modules=[torch], as restart=warm), `warm=False` leaves them off: cold restarts."""

    def __init__(self, warm: bool = True) -> None:
        self.warm = warm
        self.name = "erun" if warm else "erun-cold"

    def available(self) -> str | None:
        return None

    def command(self, job: Job, work: Path) -> Command:
        from runner.plan import EntrypointKind, EntrypointPlan, JobPlan, LogsPlan, PrewarmPlan, RestartPlan

        run_dir = work / "run"
        entrypoint = EntrypointPlan(EntrypointKind.SCRIPT, job.script, job.args)
        prewarm = PrewarmPlan(modules=WARM_MODULES) if self.warm else PrewarmPlan(modules=())
        plan = JobPlan(
            entrypoint, job.nproc, str(run_dir), f"bench-{work.name}", logs=LogsPlan(console=False),
            restart=RestartPlan(job.max_restarts, job.stop_grace_s, prewarm=prewarm),
        )
        plan_file = work / "plan.json"
        plan_file.write_text(plan.to_json())
        return Command([sys.executable, "-m", "runner", "run-plan", str(plan_file)], run_dir=run_dir)


class ErunHydra:
    """The user-facing CLI: a job file composed by Hydra, then the same agent (spares on, as `erun`)."""

    name = "erun-hydra"

    def available(self) -> str | None:
        if not (REPO_DIR / "runner" / "app.py").exists():
            return "runner/app.py not written yet"
        return None

    def command(self, job: Job, work: Path) -> Command:
        job_file = work / "job.yaml"
        job_file.write_text(json.dumps({  # JSON is YAML
            "entrypoint": job.script, "args": list(job.args),
            "restart": {"max_restarts": job.max_restarts, "stop_grace_s": job.stop_grace_s,
                        "prewarm": {"modules": list(WARM_MODULES)}},
            "logs": {"console": False},
        }))
        run_dir = work / "run"
        argv = [sys.executable, "-m", "runner", f"+job={job_file}", f"nproc={job.nproc}",
                f"hydra.run.dir={run_dir}"]
        return Command(argv, run_dir=run_dir)


class Torchrun:
    """torch's launcher; share_store=False sets TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1."""

    def __init__(self, share_store: bool = True) -> None:
        self.share_store = share_store
        self.name = "torchrun" if share_store else "torchrun-fresh"

    def available(self) -> str | None:
        return None

    def command(self, job: Job, work: Path) -> Command:
        argv = [*torchrun_argv(), "--standalone", f"--nproc-per-node={job.nproc}",
                f"--max-restarts={job.max_restarts}", job.script, *job.args]
        env = {} if self.share_store else {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
        return Command(argv, env)


def torchrun_argv() -> list[str]:
    """The `torchrun` console script of this interpreter (not a shim on PATH, which would add
    a shell's start-up to torchrun's times), else `python -m torch.distributed.run`."""
    script = Path(sys.executable).parent / "torchrun"
    return [str(script)] if script.exists() else [sys.executable, "-m", "torch.distributed.run"]


class Floor:
    """bench/floor.py: spawn, wait, SIGKILL the rest on a failure, respawn. Nothing else."""

    name = "floor"

    def available(self) -> str | None:
        return None

    def command(self, job: Job, work: Path) -> Command:
        argv = [sys.executable, str(BENCH_DIR / "floor.py"), str(job.nproc), str(job.max_restarts),
                job.script, *job.args]
        return Command(argv)


ERUN = ErunPlan()
ERUN_COLD = ErunPlan(warm=False)
ERUN_HYDRA = ErunHydra()
TORCHRUN = Torchrun(share_store=True)
TORCHRUN_FRESH = Torchrun(share_store=False)
FLOOR = Floor()

BY_NAME: dict[str, Launcher] = {
    x.name: x for x in (ERUN, ERUN_COLD, ERUN_HYDRA, TORCHRUN, TORCHRUN_FRESH, FLOOR)}


def usable(names: tuple[str, ...]) -> list[Launcher]:
    """The named launchers, in order (unusable ones too: their rows say why)."""
    return [BY_NAME[name] for name in names]
