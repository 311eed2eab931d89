"""One launch of erun's Hydra launcher (hydra_plugins/erun_launcher): check every point of a
sweep (Hydra's config, its folder, erun's plan), then run them side by side on the node's slots,
each prepared (Hydra's job, erun's record files) when it is next in line while others run,
or when it starts.

Before any point starts, every point is composed, given its folder and compiled: a bad point, a
point too big for the node and two points sharing a folder are one-line errors (exit 2) while
nothing runs. Preparing a point costs more than checking it (Hydra's run_job copies the config,
erun renders the record): done while other points run, or when its slots are free, the
first point does not wait for it.

It lives outside `hydra_plugins` because Hydra imports every module there on every run, sweep
or not: the plugin stays small and imports this module only when a sweep launches.
"""

from __future__ import annotations

import copy
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.callbacks import Callbacks
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, env_override, run_job
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from runner.devices import HostInfo, usable_cpus
from runner.errors import COMMAND_LINE, ConfigError
from runner.paths import SweepPaths, file_mode, remove_empty_dirs
from runner.plan import JobPlan
from runner.record.writer import write_file
from runner.sweep.agents import AgentWork
from runner.sweep.points import (
    PointResult,
    PointState,
    SweepPoint,
    SweepSession,
    SweepStopped,
    batch_labels,
    earlier_runs,
    exit_status,
    fresh_dir,
    point_failed,
    shared_dir_error,
    succeeded_run,
)
from runner.sweep.prepared import PreparedPoint
from runner.sweep.run import SweepRun
from runner.sweep.slots import slot_pool, too_big
from runner.sweep.standby import StandbyAgents, adopt
from runner.sweep.summary import SweepSummary
from runner.words import display_path

# Standby agents a sweep keeps at most: one per slot (up to this), for the next points to start.
MAX_STANDBY = 8


@dataclass(frozen=True)
class LaunchSettings:
    """The launcher's keys (`hydra.launcher.*`), as values: what a sweep needs of the plugin."""

    slots: int | None = None
    pack: str = "auto"
    fail_fast: bool = False
    resume: bool = False


class Sweep:
    """One launch: prepare every point (Hydra's config, erun's plan), then run them all."""

    def __init__(self, settings: LaunchSettings, config: DictConfig, hydra_context: HydraContext,
                 session: SweepSession, sweep_dir: Path, made: list[Path],
                 history: list[PointResult] | None = None, task_function: TaskFunction | None = None) -> None:
        self.config, self.hydra_context = config, hydra_context
        # Hydra's run_job composes each point with no callbacks: on_job_start and on_job_end
        # fire when the point's agent really starts and ends (`JobCallbacks`).
        self.quiet = HydraContext(config_loader=hydra_context.config_loader, callbacks=Callbacks())
        self.jobs = JobCallbacks(hydra_context.callbacks, task_function)
        self.settings, self.session, self.sweep_dir, self.made = settings, session, sweep_dir, made
        self.history = [] if history is None else history  # earlier batches' points (a sweeper's)
        self.returns: dict[int, JobReturn] = {}  # this batch's, by point index: made as each is prepared
        self.context = session.sweep_context()
        self.pool = slot_pool(HostInfo.detect(self.context.environ), settings.slots, settings.pack)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        # The first points' agents import erun's supervisor while the points are checked, on the
        # cores this process leaves free (more would slow the checks: the first start waits).
        size = min(len(self.pool.ids), MAX_STANDBY)
        standby = adopt(self.context.environ, str(self.context.cwd), 0 if self.context.dry_run else size)
        if not self.context.dry_run:
            standby.fill(min(len(job_overrides), max(1, usable_cpus() - 1)))
        try:
            return self.launch_points(job_overrides, initial_job_idx, standby)
        finally:
            standby.close()

    def launch_points(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int,
                      standby: StandbyAgents) -> list[JobReturn]:
        earlier = earlier_runs(self.sweep_dir) if self.settings.resume else {}
        names = batch_labels(self.history, job_overrides)
        points = []
        self.returns = {}
        for n, overrides in enumerate(job_overrides):
            done = succeeded_run(earlier.get(frozenset(overrides), []))
            if done is not None:
                points.append(SweepPoint(initial_job_idx + n, tuple(overrides), names[n], earlier_run=done))
                self.returns[initial_job_idx + n] = JobReturn(overrides=list(overrides),
                                                              status=JobStatus.COMPLETED)
            else:
                points.append(self.check(initial_job_idx + n, overrides, names[n]))
        self.check_fits(points)
        shared = shared_dir_error([*(r.point for r in self.history), *points], self.context.cwd)
        if shared is not None:
            raise shared
        if self.context.dry_run:
            return self.dry_run(points)
        results, status, signum = self.run(points, standby)
        if signum is not None:
            raise SweepStopped(signum)
        returns = [self.returns.get(r.point.index) or JobReturn(overrides=list(r.point.overrides))
                   for r in results]  # a point never started was never prepared
        for ret, result in zip(returns, results, strict=True):
            job_return(ret, result, self.context.cwd)
        return returns

    def check(self, index: int, overrides: Sequence[str], label: str) -> SweepPoint:
        """Compose the point, choose its folder and compile it (nothing made, nothing written);
        it is prepared when it starts."""
        host = self.pool.host()
        config = self.point_config(index, overrides)
        plan, env_set = checked_plan(config, lambda cfg: self.session.compile_point(cfg, host))
        return SweepPoint(index, tuple(overrides), label,
                          work=AgentWork(plan, env_set, lambda: self.prepare(index, config, host)))

    def prepare(self, index: int, config: DictConfig, host: HostInfo) -> PreparedPoint:
        """Run the point's Hydra job (its folder, .hydra record) with erun's preparation as the task."""
        config, ret, outcome = self.run_point_job(config, self.quiet,
                                                  lambda cfg: self.session.prepare_point(cfg, host))
        self.jobs.add(index, config, ret)
        self.returns[index] = ret
        assert isinstance(outcome, PreparedPoint)
        return outcome

    def dry_run(self, points: list[SweepPoint]) -> list[JobReturn]:
        """Every point prepared (each prints its plan), none started."""
        for point in points:
            if isinstance(point.work, AgentWork):
                point.work.ready()
        self.redact_multirun(points)
        print(f"erun: dry run: {len(points)} point(s) on {self.pool.describe()}; nothing started",
              file=sys.stderr, flush=True)
        return [self.returns[p.index] for p in points]

    def redact_multirun(self, points: list[SweepPoint]) -> None:
        """Hydra saved the sweep's config with the env's secrets in it: done once the points
        have started (it need not delay them), at the latest when the sweep ends."""
        redact_multirun(SweepPaths(self.sweep_dir).multirun, self.plans(points))

    @staticmethod
    def plans(points: list[SweepPoint]) -> list[JobPlan]:
        return [p.work.plan for p in points if isinstance(p.work, AgentWork)]

    def run_in_point(self, index: int, overrides: Sequence[str], context: HydraContext,
                     task_function: Any) -> tuple[DictConfig, JobReturn, Any]:
        """Compose point `index`, choose its folder and run `task_function` there as Hydra runs
        a job: the point's config, Hydra's JobReturn and the task's value (its error raised)."""
        return self.run_point_job(self.point_config(index, overrides), context, task_function)

    def point_config(self, index: int, overrides: Sequence[str]) -> DictConfig:
        """Point `index` composed (Hydra's config), its folder chosen."""
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = config.hydra.job.num = index
        self.choose_dir(config)
        return config

    def run_point_job(self, config: DictConfig, context: HydraContext,
                      task_function: Any) -> tuple[DictConfig, JobReturn, Any]:
        """Run `task_function` in the point as Hydra runs a job: the point's config, Hydra's
        JobReturn and the task's value (its error raised)."""
        ret = run_job(hydra_context=context, config=config, task_function=task_function,
                      job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
        assert ret.hydra_cfg is not None
        self.made.append(Path(ret.hydra_cfg.hydra.runtime.output_dir))
        outcome = ret._return_value  # the public getter prints Hydra's own error report first
        if ret.status is JobStatus.FAILED:
            raise outcome
        return config, ret, outcome

    def choose_dir(self, config: DictConfig) -> None:
        """The point's folder: Hydra's sweep subdir, or with --resume a fresh `N_retryK` next to
        an earlier run of the point (which is never touched)."""
        natural, subdir = point_dir(config)
        fresh = fresh_dir(natural)
        if fresh == natural:
            return
        if not self.settings.resume:
            shown = display_path(natural, self.context.cwd)
            raise ConfigError("hydra.sweep.dir", f"{shown} already holds a run",
                              "add --resume to skip the points that succeeded and rerun the rest, "
                              "or choose a new sweep directory", COMMAND_LINE)
        with read_write(config.hydra.sweep), open_dict(config.hydra.sweep):
            config.hydra.sweep.subdir = os.path.join(os.path.dirname(subdir), fresh.name)

    def check_fits(self, points: list[SweepPoint]) -> None:
        """A point that needs more slots than the pool has is an error before anything runs."""
        big = too_big(self.pool, [(i, p.nproc) for i, p in enumerate(points)])
        if big is not None:
            point = points[big[0]]
            raise ConfigError("nproc", f"of point {point.index} {point.label} is {big[1]}, more than the "
                              f"sweep's {self.pool.describe()}", "lower nproc, or raise hydra.launcher.slots "
                              "(with hydra.launcher.pack=cpu on CPU cores)", COMMAND_LINE)

    def run(self, points: list[SweepPoint],
            standby: StandbyAgents | None = None) -> tuple[list[PointResult], int, int | None]:
        print(f"erun: sweep of {len(points)} point(s) on {self.pool.describe()}: "
              f"{display_path(self.sweep_dir, self.context.cwd)}", file=sys.stderr, flush=True)
        cwd = self.context.cwd
        run = SweepRun(points, self.pool, self.context.environ, cwd, self.settings.fail_fast,
                       on_start=self.jobs.started, on_end=lambda result: self.jobs.ended(result, cwd),
                       standby=standby, later=[lambda: self.redact_multirun(points)])
        results, signum = run.run()
        for result in results:  # prepared ahead, never started: the empty folder Hydra made goes
            work = result.point.work
            if result.state is PointState.NOT_STARTED and isinstance(work, AgentWork) and work.is_ready:
                remove_empty_dirs(work.run_dir, self.sweep_dir)
        status = exit_status(results, signum)
        self.history.extend(results)
        summary = SweepSummary(self.sweep_dir, self.pool.describe(), list(self.history),
                               exit_status(self.history, signum),
                               signal.Signals(signum).name if signum else None)
        summary.write(self.context.cwd)
        print(f"{summary.headline()}\n{summary.table(self.context.cwd)}", file=sys.stderr, flush=True)
        self.session.finish(status)
        return results, status, signum


def job_return(ret: JobReturn, result: PointResult, cwd: Path) -> None:
    """The point's JobReturn, as it ended: COMPLETED with the job's result, or FAILED."""
    if result.state.ok:
        ret.status, ret.return_value = JobStatus.COMPLETED, result.result
    else:
        ret.status, ret.return_value = JobStatus.FAILED, point_failed(result, cwd)


class JobCallbacks:
    """Hydra's `on_job_start` and `on_job_end` (hydra.callbacks) for erun's points, fired when a
    point's agent starts and when it has ended, with the point's config current (HydraConfig,
    hydra.job.env_set, the run dir as working directory with hydra.job.chdir), as Hydra's
    run_job does around a task; on_job_end gets the point's real JobReturn."""

    def __init__(self, callbacks: Callbacks, task_function: TaskFunction | None) -> None:
        self.callbacks, self.task_function = callbacks, task_function
        self.points: dict[int, tuple[DictConfig, JobReturn]] = {}

    def add(self, index: int, config: DictConfig, ret: JobReturn) -> None:
        if self.callbacks.callbacks:
            self.points[index] = (config, ret)

    def started(self, result: PointResult) -> None:
        if result.point.index in self.points:
            config, _ = self.points[result.point.index]
            with point_current(config):
                self.callbacks.on_job_start(config=config, task_function=self.task_function)  # type: ignore[arg-type]

    def ended(self, result: PointResult, cwd: Path) -> None:
        if result.point.index in self.points:
            config, ret = self.points[result.point.index]
            job_return(ret, result, cwd)
            with point_current(config):
                self.callbacks.on_job_end(config=config, job_return=ret)


@contextmanager
def point_current(config: DictConfig) -> Iterator[None]:
    """The point's HydraConfig, env_set and (hydra.job.chdir) working directory, for a while."""
    saved, old_cwd = HydraConfig.instance().cfg, os.getcwd()
    HydraConfig.instance().set_config(config)
    try:
        with env_override(config.hydra.job.env_set):
            if config.hydra.job.chdir:
                os.chdir(config.hydra.runtime.output_dir)
            yield
    finally:
        os.chdir(old_cwd)
        HydraConfig.instance().cfg = saved  # type: ignore[assignment]


def point_dir(config: DictConfig) -> tuple[Path, str]:
    """Where Hydra's run_job will put the point (computed as it does), and the resolved subdir."""
    with hydra_current(config):
        subdir = str(OmegaConf.select(config, "hydra.sweep.subdir"))
        folder = os.path.join(str(OmegaConf.select(config, "hydra.sweep.dir")), subdir)
        return Path(os.path.abspath(folder)), subdir


def checked_plan(config: DictConfig,
                 compile_point: Callable[[DictConfig], JobPlan]) -> tuple[JobPlan, dict[str, str]]:
    """The point's plan, compiled as its Hydra job will compile it (`run_job`: its config
    current, its output_dir set, hydra.job.env_set in the environment, the task's config
    without the hydra node), without making its folder or copying Hydra's config for it; and
    its hydra.job.env_set, resolved."""
    output_dir, _ = point_dir(config)
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = str(output_dir)  # the value run_job sets again
    task_cfg = without_hydra(config)
    with hydra_current(config), env_override(config.hydra.job.env_set):
        env_set = {str(k): str(v) for k, v in config.hydra.job.env_set.items()}
        return compile_point(task_cfg), env_set


def without_hydra(config: DictConfig) -> DictConfig:
    """What run_job gives the task: `config` deep-copied, its hydra node deleted; made without
    copying the hydra node (Hydra's own settings, most of the config) only to delete it."""
    content = config.__dict__["_content"]
    config.__dict__["_content"] = {k: v for k, v in content.items() if k != "hydra"}
    try:
        return copy.deepcopy(config)
    finally:
        config.__dict__["_content"] = content  # the very dict, in its order


@contextmanager
def hydra_current(config: DictConfig) -> Iterator[None]:
    """`config` is Hydra's current config (HydraConfig, the `${hydra:...}` resolver) for a
    while, for reading: no copy of it is made, as HydraConfig.set_config would."""
    instance = HydraConfig.instance()
    saved = instance.cfg
    instance.cfg = config  # type: ignore[assignment]  # HydraConfig.get() is its `hydra` node
    try:
        yield
    finally:
        instance.cfg = saved


def redact_multirun(path: Path, plans: list[JobPlan]) -> None:
    """Hydra saved the sweep's config with the env's secrets in it: redact them (runner.config.redact)."""
    from runner.config.redact import redacted_saved_config

    if plans and path.is_file():
        write_file(path, redacted_saved_config(path.read_text(), plans), file_mode(plans[0].logs.private))
