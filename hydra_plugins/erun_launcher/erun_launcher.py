"""`hydra/launcher=erun`: run a sweep's points side by side, packed onto the node's slots.

Hydra finds this module by scanning the `hydra_plugins` namespace package; importing it stores
`ErunLauncherConf` in the ConfigStore as `hydra/launcher=erun`, the launcher erun's config.yaml
picks for every multirun. Its keys (`hydra.launcher.KEY=...` on the command line):

    slots      how many workers of all points run at once: null (default) is every visible GPU,
               else every usable CPU core
    pack       auto (GPUs when visible, else CPU cores), gpu or cpu
    fail_fast  stop the sweep at the first failed point (default: the others go on)
    resume     skip the points that already succeeded in the sweep directory (erun's --resume)

For erun's jobs (`erun -m ...`), every point is composed and compiled first, in the erun process,
so a bad point is a one-line error before anything runs; then `runner.sweep.run` runs each point
as its own agent process, prepared (Hydra's `run_job`, as the basic launcher does, with erun's
preparation as the task) when it starts (`runner.sweep.launch`); with cluster=slurm, each point
is submitted as a Slurm job (`runner.sweep.slurm`). For any other Hydra app, each point's task function
runs in a fresh process of its own, one slot a point (`runner.sweep.tasks`).

Hydra imports this module in every Hydra app of the environment (plugin discovery), sweep or
not: it imports nothing of erun's until a sweep launches.
"""

# No `from __future__ import annotations`: Hydra runs plugin modules before they are in
# sys.modules, and a dataclass with string annotations cannot be built then.
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, configure_log, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class ErunLauncherConf:
    _target_: str = "hydra_plugins.erun_launcher.erun_launcher.ErunLauncher"
    slots: int | None = None
    pack: str = "auto"
    fail_fast: bool = False
    resume: bool = False


ConfigStore.instance().store(group="hydra/launcher", name="erun", node=ErunLauncherConf, provider="erun")


class ErunLauncher(Launcher):
    """Hydra's two-method launcher interface; one `Sweep` per launch."""

    def __init__(self, slots: int | None = None, pack: str = "auto", fail_fast: bool = False,
                 resume: bool = False) -> None:
        self.slots, self.pack, self.fail_fast, self.resume = slots, pack, fail_fast, resume
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.session: Any = None
        self.task_function: TaskFunction | None = None
        self.history: list[Any] = []  # every batch's points so far: sweep.json describes them all

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        self.session = getattr(task_function, "__self__", None)  # erun's runner.app.Session

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from runner.sweep.points import SweepSession

        assert self.config is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        if isinstance(self.session, SweepSession):
            return self.launch_jobs(job_overrides, initial_job_idx)
        return self.launch_tasks(job_overrides, initial_job_idx)

    def launch_tasks(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        """Any Hydra app: each point's task function in a process of its own."""
        from runner.errors import ConfigError
        from runner.sweep.tasks import TaskSettings, TaskSweep

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        try:
            sweep = TaskSweep(TaskSettings(self.slots, self.pack, self.fail_fast), self.config,
                              self.hydra_context, self.task_function, self.history)
            return sweep.launch(job_overrides, initial_job_idx)
        except ConfigError as e:  # before any point started
            print(e.one_line(), file=sys.stderr, flush=True)
            raise SystemExit(int(e.exit_status)) from None

    def launch_jobs(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        """erun's own jobs (`erun -m`): each point a full erun job with its own agent."""
        from runner.cluster.registry import LOCAL, chosen
        from runner.errors import ErunError
        from runner.sweep.launch import LaunchSettings, Sweep
        from runner.sweep.points import SweepStopped

        assert self.config is not None and self.hydra_context is not None
        sweep_dir = Path(os.path.abspath(str(self.config.hydra.sweep.dir)))
        made: list[Path] = []  # the point folders made so far, dropped again on an error
        try:
            settings = LaunchSettings(self.slots, self.pack, self.fail_fast, self.resume)
            kind: type[Sweep] = Sweep
            if chosen(self.config) != LOCAL:  # cluster=slurm: every point a Slurm job
                from runner.sweep.slurm import SlurmSweep
                kind = SlurmSweep
            sweep = kind(settings, self.config, self.hydra_context, self.session, sweep_dir, made,
                          self.history, self.task_function)
            return sweep.launch(job_overrides, initial_job_idx)
        except SweepStopped:
            raise  # through the sweeper: no further batch starts
        except ErunError as e:
            self.session.fail(e, [*made, sweep_dir])
            return []
