"""Every file a run or a sweep writes, in one place (as submitit's JobPaths).

Nothing else in erun spells a file name of a run or sweep directory: writers and readers ask
`RunPaths` and `SweepPaths`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HYDRA_SUBDIR = ".hydra"  # Hydra's record of a run: config.yaml, hydra.yaml, overrides.yaml
RETRY_SUFFIX = "_retry"
# A sweep's point folders: N, or N_retryK when --resume ran point N again.
POINT_DIR = re.compile(rf"\d+({RETRY_SUFFIX}\d+)?")
# Where the per-user index of recent runs lives: $ERUN_STATE_DIR, else $XDG_STATE_HOME/erun,
# else ~/.local/state/erun (tests point ERUN_STATE_DIR at a temporary folder).
STATE_DIR_VAR = "ERUN_STATE_DIR"
# Where a plain `erun +job=...` puts its run directories (conf/config.yaml's hydra.run.dir).
OUTPUTS_DIR = "outputs"
# The run directory and erun's files in it: the user's only (they may hold commands, paths and
# secrets); `logs.private=false`: as the umask allows.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
SHARED_DIR_MODE = 0o777
SHARED_FILE_MODE = 0o666


def dir_mode(private: bool) -> int:
    return PRIVATE_DIR_MODE if private else SHARED_DIR_MODE


def file_mode(private: bool) -> int:
    return PRIVATE_FILE_MODE if private else SHARED_FILE_MODE


@dataclass(frozen=True)
class RunPaths:
    """The run directory's layout:

        run_dir/plan.json            the compiled plan
        run_dir/events.jsonl         state changes, one JSON object a line
        run_dir/summary.json         the outcome (written at the end, updated per attempt)
        run_dir/job.yaml             the resolved job config the workers read (ERUN_CONFIG)
        run_dir/.hydra/              Hydra's record: config.yaml, hydra.yaml, overrides.yaml
        run_dir/console.log          the agent's console, when a sweep ran it
        run_dir/report.html          `erun report`'s page
        run_dir/attempt_N/rank_R/    stdout.log, stderr.log, error.json (torch's @record),
                                     heartbeat (touched by runner.heartbeat()),
                                     result.json (runner.result(); rank 0's is the job's)
                                     (layout "torchrun", as torchrun --log-dir: attempt_N/L/,
                                     L the local rank: the global rank modulo `nproc`, exact
                                     when every node runs the same nproc, as torchrun's do)
        run_dir/attempt_N/filtered_stdout.log, filtered_stderr.log
                                     the console lines that logs.duplicate_filters selects
        run_dir/timer.fifo           torch FileTimerClient requests (when file timers are on)
      A job submitted to a cluster (runner.cluster) has, besides its plan.json and job.yaml:
        run_dir/slurm.sbatch         the batch script submitted
        run_dir/slurm.out            the batch output: every node's console
        run_dir/slurm.json           the Slurm job id (an array task's: JOB_TASK)
        run_dir/node_N/              node N's own run record (N: Slurm's node index)
    """

    run_dir: Path
    layout: str = "erun"  # the plan's logs.layout: erun or torchrun
    nproc: int = 1  # workers a node (the plan's nproc): the torchrun layout's local ranks

    @classmethod
    def of(cls, run_dir: Path, plan: Mapping[str, Any]) -> RunPaths:
        """The paths of a run directory whose plan (plan.json's contents, {} if none) says its
        layout; a plan.json that says nothing sensible (damaged, hand-written) means erun's."""
        logs, nproc = plan.get("logs"), plan.get("nproc")
        layout = logs.get("layout") if isinstance(logs, Mapping) else None
        workers = nproc if isinstance(nproc, int) and not isinstance(nproc, bool) and nproc > 0 else 1
        return cls(Path(run_dir), layout if layout in ("erun", "torchrun") else "erun", workers)

    @property
    def plan(self) -> Path:
        return self.run_dir / "plan.json"

    @property
    def batch_script(self) -> Path:
        return self.run_dir / "slurm.sbatch"

    @property
    def batch_output(self) -> Path:
        return self.run_dir / "slurm.out"

    @property
    def slurm_job(self) -> Path:
        return self.run_dir / "slurm.json"

    def node_dir(self, node: int) -> Path:
        return self.run_dir / f"node_{node}"

    def node_dirs(self) -> list[Path]:
        return sorted(p for p in self.run_dir.glob("node_*") if p.name[5:].isdigit())

    @property
    def events(self) -> Path:
        return self.run_dir / "events.jsonl"

    @property
    def summary(self) -> Path:
        return self.run_dir / "summary.json"

    @property
    def job_config(self) -> Path:
        return self.run_dir / "job.yaml"

    @property
    def hydra_dir(self) -> Path:
        return self.run_dir / HYDRA_SUBDIR

    @property
    def overrides(self) -> Path:
        return self.hydra_dir / "overrides.yaml"

    @property
    def console_log(self) -> Path:
        return self.run_dir / "console.log"

    @property
    def report_html(self) -> Path:
        return self.run_dir / "report.html"

    def rank_dir(self, attempt: int, rank: int) -> Path:
        name = str(rank % max(self.nproc, 1)) if self.layout == "torchrun" else f"rank_{rank}"
        return self.run_dir / f"attempt_{attempt}" / name

    def filtered(self, attempt: int, stream: str) -> Path:
        """The attempt's filtered copy of `stream` ("stdout" or "stderr"), as torchrun names it."""
        return self.run_dir / f"attempt_{attempt}" / f"filtered_{stream}.log"

    def stdout(self, attempt: int, rank: int) -> Path:
        return self.rank_dir(attempt, rank) / "stdout.log"

    def stderr(self, attempt: int, rank: int) -> Path:
        return self.rank_dir(attempt, rank) / "stderr.log"

    def error_file(self, attempt: int, rank: int) -> Path:
        return self.rank_dir(attempt, rank) / "error.json"

    def heartbeat(self, attempt: int, rank: int) -> Path:
        return self.rank_dir(attempt, rank) / "heartbeat"

    def result(self, attempt: int, rank: int) -> Path:
        return self.rank_dir(attempt, rank) / "result.json"

    @property
    def timer_fifo(self) -> Path:
        return self.run_dir / "timer.fifo"


@dataclass(frozen=True)
class SweepPaths:
    """A sweep directory's layout (Hydra's multirun directory, as erun's launcher fills it):

        sweep_dir/multirun.yaml      Hydra's sweep config
        sweep_dir/N/                 point N's run directory (`RunPaths`)
        sweep_dir/N_retryK/          point N run again by --resume (the failed N/ stays as is)
        sweep_dir/sweep.json         one row per point: state, restarts, start, end, slots, run dir
        sweep_dir/sweep.md           the same as a Markdown table
      A sweep submitted to Slurm (runner.sweep.slurm) has, besides its points' folders:
        sweep_dir/slurm.json         every point's Slurm job id (array tasks: JOB_TASK)
        sweep_dir/slurm_array_K.sbatch  a job array's batch script (points that share resources)
        sweep_dir/slurm-J_T.out      an array task's batch output before it reaches its point
    """

    sweep_dir: Path

    @property
    def multirun(self) -> Path:
        return self.sweep_dir / "multirun.yaml"

    @property
    def summary_json(self) -> Path:
        return self.sweep_dir / "sweep.json"

    @property
    def summary_md(self) -> Path:
        return self.sweep_dir / "sweep.md"

    @property
    def slurm_jobs(self) -> Path:
        return self.sweep_dir / "slurm.json"

    def array_script(self) -> Path:
        """A new job array's batch script: the first free slurm_array_K.sbatch (K = 0, 1, ...)."""
        k = 0
        while (self.sweep_dir / f"slurm_array_{k}.sbatch").exists():
            k += 1
        return self.sweep_dir / f"slurm_array_{k}.sbatch"

    @staticmethod
    def retry(natural: Path, k: int) -> Path:
        """The K-th rerun folder of the point whose own folder is `natural`."""
        return natural.with_name(f"{natural.name}{RETRY_SUFFIX}{k}")

    @staticmethod
    def point_order(folder: Path) -> tuple[int, int]:
        """Point folders in order: N, then its reruns N_retry1, N_retry2, ..."""
        number, _, retry = folder.name.partition(RETRY_SUFFIX)
        return int(number), int(retry or 0)


@dataclass(frozen=True)
class StatePaths:
    """erun's per-user state: state_dir/runs.jsonl, one line per run started (the newest last)."""

    state_dir: Path

    @classmethod
    def of(cls, environ: Mapping[str, str]) -> StatePaths:
        if environ.get(STATE_DIR_VAR):
            return cls(Path(environ[STATE_DIR_VAR]))
        home = Path(environ.get("HOME") or Path.home())
        return cls(Path(environ.get("XDG_STATE_HOME") or home / ".local" / "state") / "erun")

    @property
    def runs_index(self) -> Path:
        return self.state_dir / "runs.jsonl"


def remove_empty_dirs(folder: Path, stop: Path) -> None:
    """rmdir `folder` and its parents while empty, never `stop` or anything outside it."""
    folder, stop = folder.resolve(), stop.resolve()
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
