"""A sweep's points that ask Slurm for the same resources, as one job array (`sbatch --array`).

Each point keeps its own run directory and plan (compiled as a single submission's,
runner.cluster.slurm); the array's batch script is the first point's, with its run directory
replaced by the task's: a bash array of the points' run directories, indexed by
SLURM_ARRAY_TASK_ID. Each task's batch output goes to its point's slurm.out (until it gets
there, to sweep_dir/slurm-JOB_TASK.out), so a point reads as a job submitted on its own.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from runner.cluster.slurm import SbatchRequest, refusal
from runner.errors import ConfigError
from runner.paths import SweepPaths

RUN_DIR_VAR = "ERUN_POINT_DIR"


def same_resources(a: SbatchRequest, b: SbatchRequest) -> bool:
    """Points that may share an array: the same cluster keys, nodes and job name."""
    def key(r: SbatchRequest) -> tuple[object, ...]:
        return r.slurm, r.plan.rdzv.min_nodes, r.plan.rdzv.max_nodes, r.plan.name
    return key(a) == key(b)


def groups(requests: Sequence[SbatchRequest]) -> list[list[int]]:
    """The points (by position) in submission groups, in order: each group one array (or job)."""
    found: list[list[int]] = []
    for i, request in enumerate(requests):
        group = next((g for g in found if same_resources(requests[g[0]], request)), None)
        if group is None:
            found.append([i])
        else:
            group.append(i)
    return found


def array_script(requests: Sequence[SbatchRequest], sweep_dir: Path) -> str:
    """The batch script running `requests` as tasks 0..N-1 of one array."""
    first = requests[0].paths
    script = requests[0].script
    output = f"#SBATCH --output={first.batch_output}"
    if output not in script:
        raise ConfigError(None, "cannot build the job array's batch script", "report this to erun")
    script = script.replace(output, f"#SBATCH --output={sweep_dir}/slurm-%A_%a.out")
    script = script.replace(shlex.quote(str(first.plan)), f'"${RUN_DIR_VAR}/{first.plan.name}"')
    lines = script.replace(str(first.run_dir), f"${{{RUN_DIR_VAR}}}").splitlines()
    dirs = " ".join(shlex.quote(str(r.paths.run_dir)) for r in requests)
    last_option = max(i for i, line in enumerate(lines) if line.startswith("#SBATCH"))
    lines[last_option + 1:last_option + 1] = [
        f"#SBATCH --array=0-{len(requests) - 1}",
        "# each array task runs one point of the sweep, in the point's own run directory",
        f"POINT_DIRS=({dirs})",
        f'{RUN_DIR_VAR}="${{POINT_DIRS[$SLURM_ARRAY_TASK_ID]}}"',
        f'exec >>"${RUN_DIR_VAR}/{first.batch_output.name}" 2>&1']
    return "\n".join(lines) + "\n"


def submit_array(script: str, sweep_dir: Path) -> str:
    """sbatch the array's script (sweep_dir/slurm_array_K.sbatch); the array's job id."""
    path = SweepPaths(sweep_dir).array_script()
    path.write_text(script, encoding="utf-8")
    done = subprocess.run(["sbatch", "--parsable", str(path)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, cwd=sweep_dir, check=False)
    job_id = done.stdout.strip().split(";")[0]
    if done.returncode != 0 or not job_id:
        path.unlink(missing_ok=True)
        raise refusal(done.stderr)
    return job_id
