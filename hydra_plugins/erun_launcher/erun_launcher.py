"""`hydra/launcher=erun`: run a sweep's points side by side, packed onto the node's slots.

Hydra finds this module by scanning the `hydra_plugins` namespace package; importing it stores
`ErunLauncherConf` in the ConfigStore as `hydra/launcher=erun`, the launcher erun's config.yaml
picks for every multirun. Its keys (`hydra.launcher.KEY=...` on the command line):

    slots      how many workers of all points run at once: null (default) is every visible GPU,
               else every usable CPU core
    pack       auto (GPUs when visible, else CPU cores), gpu or cpu
    fail_fast  stop the sweep at the first failed point (default: the others go on)
    resume     skip the points that already succeeded in the sweep directory (erun's --resume)

Every point is composed and compiled first, in the erun process (Hydra's `run_job`, as the basic
launcher does, with erun's compiler as the task), so a bad point is a one-line error before
anything runs; then `runner.sweep.run` runs each point as its own agent process. It runs erun's
own jobs only (the task function must be erun's session).

Hydra imports this module on every erun run (plugin discovery), sweep or not: it imports
nothing of erun's until a sweep launches (`runner.sweep.launch` does the work).
"""

# No `from __future__ import annotations`: Hydra runs plugin modules before they are in
# sys.modules, and a dataclass with string annotations cannot be built then.
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, configure_log, setup_globals
from hydra.errors import HydraException
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

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.session = getattr(task_function, "__self__", None)  # erun's runner.app.Session

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from runner.errors import ErunError
        from runner.sweep.launch import LaunchSettings, Sweep
        from runner.sweep.points import SweepSession

        if not isinstance(self.session, SweepSession):
            raise HydraException("hydra/launcher=erun runs erun's jobs only (use `erun -m ...`)")
        assert self.config is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(os.path.abspath(str(self.config.hydra.sweep.dir)))
        made: list[Path] = []  # the point folders made so far, dropped again on an error
        try:
            settings = LaunchSettings(self.slots, self.pack, self.fail_fast, self.resume)
            sweep = Sweep(settings, self.config, self.hydra_context, self.session, sweep_dir, made)
            return sweep.launch(job_overrides, initial_job_idx)
        except ErunError as e:
            self.session.fail(e, [*made, sweep_dir])
            return []
