"""slurm: a 2-node job on a real Slurm cluster on loopback (tests/slurm_cluster.py: munged,
slurmctld and two slurmd on this host), from submission until every rank initialised gloo.

- `erun`: `erun +job=job.yaml nnodes=2 cluster=slurm` (the user's command: it compiles the job,
  writes the batch script and sbatches it; srun then starts one erun agent per node);
- `sbatch + srun torchrun`: the usual hand-written recipe, a batch script that takes the head
  node from the node list (`scontrol show hostnames`) and runs `srun torchrun --nnodes=2
  --rdzv-backend=c10d --rdzv-endpoint=$head:PORT`;
- `torchx dist.ddp`: `torchx run -s slurm dist.ddp -j 2x1` (TorchX's slurm scheduler, which
  submits a heterogeneous job, one component per node), when torchx is installed
  (`pip install torchx`); otherwise the row says why it did not run.

Each value runs from just before the submitting command starts until the last rank wrote its
`init2` stamp (bench/workers/elastic.py: init gloo, stamp, barrier, exit); the job then leaves
the queue before the next run starts. The cluster needs root and Debian's slurm-wlm and munge
(scripts/setup.sh installs them): without them the metric is skipped, with the reason.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.checks import SKIPPED
from bench.common import (
    REPO_DIR,
    TOKEN_VAR,
    Row,
    last_stamp,
    log,
    python_path,
    wait_for_stamps,
    workdir,
    worker_script,
)
from bench.config import BenchConfig
from bench.launchers import torchrun_argv
from bench.targets import SLURM_CASE

NAME = "slurm"
TITLE = ("slurm: a 2-node job (1 worker a node) on a loopback Slurm cluster, submission until all ranks "
         "initialised gloo")
CASE = SLURM_CASE
ERUN, RECIPE, TORCHX = "erun", "sbatch + srun torchrun", "torchx dist.ddp"
SUBMIT_TIMEOUT_S = 60.0
WORKER = "elastic.py"  # init gloo, stamp init2, barrier, exit
QUEUE_DRAIN_S = 30.0


def cluster_module() -> ModuleType:
    """tests/slurm_cluster.py: the same cluster the tests run on."""
    path = REPO_DIR / "tests" / "slurm_cluster.py"
    spec = importlib.util.spec_from_file_location("erun_slurm_cluster", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torchx_missing() -> str | None:
    """Why TorchX cannot run here (None: it can)."""
    here = str(Path(sys.executable).parent)
    if importlib.util.find_spec("torchx") is None or shutil.which("torchx", path=here) is None:
        return "torchx is not installed (pip install torchx)"
    return None


def recipe_script(out: Path, work: Path, worker: str = WORKER) -> Path:
    from runner.runtime.membership import free_port

    script = work / "recipe.sbatch"
    torchrun = " ".join(torchrun_argv())
    script.write_text(f"""#!/bin/bash
#SBATCH --job-name=recipe
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --output={work}/recipe-%j.out
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun {torchrun} --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d \\
    --rdzv-endpoint=$head:{free_port('127.0.0.1')} --rdzv-id=$SLURM_JOB_ID \\
    {worker_script(worker)} {out} 2
""")
    return script


def submit_argv(launcher: str, out: Path, work: Path, worker: str = WORKER) -> list[str]:
    if launcher == ERUN:
        (work / "job.yaml").write_text(f"entrypoint: {worker_script(worker)}\nargs: ['{out}', '2']\n"
                                       "nproc: 1\n")
        return [sys.executable, "-m", "runner", "+job=job.yaml", "nnodes=2", "cluster=slurm",
                f"hydra.run.dir={work / 'run'}"]
    if launcher == RECIPE:
        return ["sbatch", "--parsable", str(recipe_script(out, work, worker))]
    return [str(Path(sys.executable).parent / "torchx"), "run", "-s", "slurm", "-cfg", "partition=debug",
            "dist.ddp", "-j", "2x1", "--script", worker_script(worker), "--", str(out), "2"]


def job_env(cluster: Any) -> dict[str, str]:
    """The submitting command's environment (sbatch exports it to the job)."""
    env = {**os.environ, "PYTHONPATH": python_path(), "SLURM_CONF": str(cluster.conf),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop(TOKEN_VAR, None)  # the job is Slurm's: the cluster's drain ends it, not a token sweep
    return env


def start_cluster(reps: int, mode: str, metric: str = NAME) -> tuple[Any, str | None]:
    """The loopback cluster, started (None and why not: not in this mode, cannot run here)."""
    module = cluster_module()
    reason = module.missing() if reps else f"not measured in --{mode} (python -m bench --only {metric})"
    if reason is not None:
        return None, reason
    cluster = module.SlurmCluster()
    try:
        cluster.start()
    except (RuntimeError, OSError) as e:
        return None, f"the loopback Slurm cluster did not start: {str(e).splitlines()[0]}"
    return cluster, None


def submit(argv: list[str], env: dict[str, str], work: Path) -> str:
    """Run a submitting command (erun, sbatch, torchx) in `work`; what it said, for the log."""
    try:
        done = subprocess.run(argv, env=env, cwd=work, capture_output=True, text=True,
                              timeout=SUBMIT_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"no answer within {SUBMIT_TIMEOUT_S:g} s"
    return f"rc {done.returncode}: {(done.stdout + done.stderr)[-600:]}"


def measure(cluster: Any, launcher: str, timeout_s: float, worker: str = WORKER,
            stamp: str = "init2") -> float | None:
    """One run: submission until both ranks wrote `stamp` (the smoke test uses a worker without
    torch: trivial.py, `start`)."""
    with workdir(f"slurm-{launcher.split()[0]}") as work:
        out = work / "stamps"
        out.mkdir()
        begin = time.time()
        said = submit(submit_argv(launcher, out, work, worker), job_env(cluster), work)
        # TorchX exits 1 after submitting: its status call needs sacct (accounting), which the
        # loopback cluster has not; the job runs all the same, so the stamps decide.
        ok = wait_for_stamps(out, stamp, 0, 2, begin + timeout_s)
        end = last_stamp(out, stamp, 0, 2)
        if not ok or end is None:
            log(f"slurm under {launcher}: not all ranks initialised within {timeout_s:g} s "
                f"(submission {said})")
        cluster.drain_jobs(QUEUE_DRAIN_S)  # the next run starts on an empty cluster
        return end - begin if ok and end is not None else None


def run(cfg: BenchConfig) -> list[Row]:
    rows = {name: Row(NAME, CASE, name) for name in (ERUN, RECIPE, TORCHX)}
    cluster, reason = start_cluster(cfg.slurm_reps, cfg.mode)
    if cluster is None:
        for row in rows.values():
            row.note = f"{SKIPPED} {reason}"
        log(f"slurm: skipped: {reason}")
        return list(rows.values())
    no_torchx = torchx_missing()
    launchers = [ERUN, RECIPE] + ([] if no_torchx else [TORCHX])
    if no_torchx:
        rows[TORCHX].note = f"not run: {no_torchx}"
    try:
        for _ in range(cfg.slurm_reps):
            for name in launchers:  # interleaved, so noise hits every launcher alike
                rows[name].add(measure(cluster, name, cfg.slurm_timeout_s))
    finally:
        cluster.stop()
    return list(rows.values())
