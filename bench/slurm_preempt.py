"""slurm-preempt: a preemption of a running 2-node job on the loopback Slurm cluster
(tests/slurm_cluster.py), from Slurm's warning until every rank trains again, resumed from its
checkpoint in the requeued job. The same worker under both (bench/workers/preemptible.py: it
checkpoints on SIGUSR1 and on SIGTERM, exits on SIGTERM, stamps `resumed` once it restarted from
its checkpoint, after initialising gloo):

- `erun`: `erun +job=job.yaml nnodes=2 cluster=slurm cluster.warning_s=W`: erun's batch process
  passes the warning (SIGUSR1) to every worker once, requeues the job (`scontrol requeue`) when
  the step ends or half the warning later, and the requeued job continues the run directory;
- `sbatch + srun torchrun`: the usual hand-written recipe, `#SBATCH --signal=B:USR1@W` and
  `--requeue`, a bash trap on USR1 that runs `scontrol requeue "$SLURM_JOB_ID"` at once, and
  `srun torchrun` (head node from the node list) in the background. The trap does not pass the
  warning on: Slurm would signal every process of the step, and torchrun, which does not handle
  SIGUSR1, would die of it and take its workers down; the workers checkpoint on the SIGTERM of
  the requeue (within Slurm's KillWait), the usual way;
- `torchx dist.ddp`: not run. TorchX's slurm scheduler has no preemption handling (no warning
  signal, no requeue), so there is nothing to time: the row says so.

A run submits the job, waits until every rank trains (`ready`), then sends the warning as Slurm
does W seconds before a preemption or the time limit (`scancel --batch --signal=USR1 JOB`, to the
batch script only); the value runs from that moment until the last rank stamped `resumed`. Both
wait out Slurm's hold on a requeued job (the credential lifetime, 10 s on the test cluster), which
is most of the value. Full mode only: a run costs 40-60 s on 2 busy cores.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from bench.checks import SKIPPED
from bench.common import Row, last_stamp, log, wait_for_stamps, workdir, worker_script
from bench.config import BenchConfig
from bench.launchers import torchrun_argv
from bench.slurm import ERUN, QUEUE_DRAIN_S, RECIPE, TORCHX, job_env, start_cluster, submit
from bench.targets import SLURM_PREEMPT_CASE

NAME = "slurm-preempt"
TITLE = ("slurm-preempt: a running 2-node job (1 worker a node) on a loopback Slurm cluster, Slurm's "
         "warning until every rank trains again from its checkpoint in the requeued job")
CASE = SLURM_PREEMPT_CASE
WARNING_S = 4  # --signal=B:USR1@4 for both (erun: cluster.warning_s=4)
WORKER = "preemptible.py"
NO_TORCHX = "not run: TorchX's slurm scheduler has no preemption handling (no warning signal, no requeue)"


def recipe_script(out: Path, work: Path, mode: str = "gloo") -> Path:
    from runner.runtime.membership import free_port

    script = work / "recipe.sbatch"
    torchrun = " ".join(torchrun_argv())
    script.write_text(f"""#!/bin/bash
#SBATCH --job-name=recipe-preempt
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --output={work}/recipe-%j.out
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@{WARNING_S}
#SBATCH --requeue
trap 'scontrol requeue "$SLURM_JOB_ID"' USR1
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun {torchrun} --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d \\
    --rdzv-endpoint=$head:{free_port('127.0.0.1')} --rdzv-id=$SLURM_JOB_ID \\
    {worker_script(WORKER)} {out} {mode} &
wait
""")
    return script


def submit_argv(launcher: str, out: Path, work: Path, mode: str = "gloo") -> list[str]:
    if launcher == ERUN:
        (work / "job.yaml").write_text(f"entrypoint: {worker_script(WORKER)}\nargs: ['{out}', '{mode}']\n"
                                       "nproc: 1\n")
        return [sys.executable, "-m", "runner", "+job=job.yaml", "nnodes=2", "cluster=slurm",
                f"cluster.warning_s={WARNING_S}", f"hydra.run.dir={work / 'run'}"]
    return ["sbatch", "--parsable", str(recipe_script(out, work, mode))]


def measure(cluster: Any, launcher: str, timeout_s: float, mode: str = "gloo") -> float | None:
    """One run: the warning until both ranks stamped `resumed` (None: it did not get there)."""
    with workdir(f"slurm-preempt-{launcher.split()[0]}") as work:
        out = work / "stamps"
        out.mkdir()
        submitted = time.time()
        said = submit(submit_argv(launcher, out, work, mode), job_env(cluster), work)
        value = None
        if not wait_for_stamps(out, "ready", 0, 2, submitted + timeout_s):
            log(f"slurm-preempt under {launcher}: not all ranks trained within {timeout_s:g} s "
                f"(submission {said})")
        else:
            begin = time.time()  # Slurm's warning: to the batch script only (--signal=B:USR1)
            cluster.run(["scancel", "--batch", "--signal=USR1", *cluster.jobs()], check=False)
            ok = wait_for_stamps(out, "resumed", 0, 2, begin + timeout_s)
            end = last_stamp(out, "resumed", 0, 2)
            if ok and end is not None:
                value = end - begin
            else:
                log(f"slurm-preempt under {launcher}: not all ranks resumed within {timeout_s:g} s of "
                    f"the warning\n{tail_of(work)}")
        cluster.drain_jobs(QUEUE_DRAIN_S)  # the next run starts on an empty cluster
        return value


def tail_of(work: Path) -> str:
    """The batch output of a run that did not resume (erun's run directory, or the recipe's)."""
    found = sorted(work.glob("recipe-*.out")) + sorted(work.glob("run/slurm.out"))
    return "\n".join(p.read_text(errors="replace")[-1500:] for p in found)


def run(cfg: BenchConfig) -> list[Row]:
    rows = {name: Row(NAME, CASE, name) for name in (ERUN, RECIPE, TORCHX)}
    rows[TORCHX].note = NO_TORCHX
    cluster, reason = start_cluster(cfg.slurm_preempt_reps, cfg.mode, NAME)
    if cluster is None:
        for name in (ERUN, RECIPE):
            rows[name].note = f"{SKIPPED} {reason}"
        log(f"slurm-preempt: skipped: {reason}")
        return list(rows.values())
    try:
        for _ in range(cfg.slurm_preempt_reps):
            for name in (ERUN, RECIPE):  # interleaved, so noise hits both alike
                rows[name].add(measure(cluster, name, cfg.slurm_timeout_s))
    finally:
        cluster.stop()
    return list(rows.values())
