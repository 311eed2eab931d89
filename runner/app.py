"""`erun +job=train.yaml nproc=8 ...`: Hydra composes the job once, the compiler plans it, the agent runs it.

`Session` is Hydra's task object: Hydra calls `run_point` with the composed config of each run
(one, or one per multirun point under Hydra's basic launcher); it compiles the plan, prints a
dry run or writes the run's record and starts the agent. erun's own command line is shaped for
Hydra by `runner.config.argv`, and Hydra runs through `runner.config.hydra_run` (a plain run is
composed once; `-m`, `--help`, `--cfg`... go through `@hydra.main`). Each multirun point is a
full job in its own directory; erun's launcher (hydra_plugins/erun_launcher, the default) runs
them side by side on the node's slots (`runner.sweep`), Hydra's basic launcher
(`hydra/launcher=basic`) one after the other, in this process.

Every mistake in the config, Hydra's included, ends as one `ConfigError` (exit 2, one line).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.cluster import registry as cluster_registry
from runner.config import argv as argv_mod
from runner.config import gcpause, jobfile, staging
from runner.config.argv import Invocation
from runner.config.hydra_run import run_hydra
from runner.errors import COMMAND_LINE, ConfigError, ErunError, ExitStatus, JobFailed
from runner.overrides import JOB_GROUP, JOB_OVERRIDE_KEY
from runner.paths import RunPaths, SweepPaths, remove_empty_dirs

if TYPE_CHECKING:
    from runner.cluster.api import ClusterRequest
    from runner.config.sources import CompileContext, KeySources
    from runner.devices import HostInfo
    from runner.plan import JobPlan
    from runner.state import RunResult
    from runner.sweep.points import SweepContext
    from runner.sweep.prepared import PreparedPoint


def main(argv: list[str]) -> int:
    """Run the job(s) `argv` describes; the exit status of the job, or of the first failed point."""
    try:
        with staging.staging_dir() as folder:  # gone however erun ends (runner.config.staging)
            invocation = argv_mod.shape(argv, Path.cwd(), folder)
            for note in invocation.notes:
                print(f"erun: note: {note}", file=sys.stderr, flush=True)
            session = Session(invocation)
            try:
                with standby_ahead(invocation):
                    run_hydra(folder, invocation, session.run_point)
            finally:
                session.clean_up()
    except staging.StartupStopped as stop:
        return ExitStatus.for_signal(stop.signum)
    except JobFailed as failed:  # through Hydra (callbacks, a sweeper): the job said why already
        return session.exit_status() or failed.exit_code
    if session.error is not None:
        raise session.error
    return session.exit_status()


# Hydra flags that print something and run nothing.
NOTHING_RUNS = frozenset({"--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help",
                          "--shell-completion", "-sc"})


@contextlib.contextmanager
def standby_ahead(invocation: Invocation) -> Iterator[None]:
    """For a sweep on erun's launcher, its first point's agent starts importing now, while
    Hydra composes the sweep (`runner.sweep.standby.early`)."""
    args = set(invocation.hydra_args)
    sweep = bool(argv_mod.MULTIRUN_FLAGS & args) and not NOTHING_RUNS & args and invocation.dry_run is None
    if not sweep or argv_mod.other_launcher(invocation.hydra_args):
        yield
        return
    from runner.sweep.standby import early

    with early(invocation.environ, str(invocation.cwd), wanted=True):
        yield


@dataclass
class Session:
    """The points Hydra runs (one, or one per multirun point), and how each ended."""

    invocation: Invocation
    exit_codes: list[int] = field(default_factory=list)
    unused_dirs: list[Path] = field(default_factory=list)
    error: ErunError | None = None

    def run_point(self, cfg: Any) -> Any:
        """Hydra's task function (one job, or the basic launcher's points one after the other):
        the job's result, as any Hydra app's task returns its value, or JobFailed when the job
        did not succeed (Hydra's JobReturn is then FAILED, for callbacks and sweepers). Config
        errors wait until Hydra returns (it would log them first)."""
        gcpause.resume()  # start-up is over: the point may run for days
        if self.error is not None or any(code >= ExitStatus.SIGNAL_BASE for code in self.exit_codes):
            if self.error is not None:
                self._leave_no_trace()  # Hydra made a folder for this point, which never starts
            return None  # a multirun stops at its first bad point, or when a signal stopped a point
        try:
            if cluster_registry.chosen(cfg) != cluster_registry.LOCAL:
                self.exit_codes.append(self.submit_point(cfg))
                return None
            prepared = self.prepare_point(cfg)
            if self.invocation.dry_run:
                return None
            result = start(prepared, {**self.invocation.environ, **prepared.env_set})
        except ErunError as e:
            self.fail(e)
            return None
        self.exit_codes.append(result.exit_code)
        if result.exit_code != ExitStatus.SUCCESS:
            raise JobFailed(result.exit_code, result.run_dir or prepared.plan.run_dir)
        return result.result

    def prepare_point(self, cfg: Any, host: HostInfo | None = None) -> PreparedPoint:
        """Compile the point Hydra's config is current for (against `host`, default this host):
        its plan and record files. A dry run prints the plan (and the point starts nothing)."""
        from hydra.core.hydra_config import HydraConfig

        from runner.sweep.prepared import PreparedPoint

        hydra_cfg = HydraConfig.get()
        plan = self.compile_point(cfg, host)
        if self.invocation.dry_run:
            self._dry_run(plan, hydra_cfg)
        files = record_files(plan, cfg, self.invocation.hydra_record)
        env_set = {str(k): str(v) for k, v in hydra_cfg.job.env_set.items()}
        return PreparedPoint(plan, files, tuple(task_overrides(hydra_cfg)), env_set)

    def compile_point(self, cfg: Any, host: HostInfo | None = None) -> JobPlan:
        """The plan alone of the point Hydra's config is current for: a sweep checks every
        point with it before any starts, and prepares each (`prepare_point`) when it starts."""
        from hydra.core.hydra_config import HydraConfig

        from runner.config.compile import compile_job

        if cluster_registry.chosen(cfg) != cluster_registry.LOCAL:  # a local sweep's point
            raise ConfigError("cluster", "differs between the sweep's points",
                              "sweep on one cluster: set cluster=... outside the swept keys", COMMAND_LINE)
        return compile_job(cfg, self._context(HydraConfig.get(), host))

    def submit_point(self, cfg: Any) -> int:
        """cluster=slurm...: the backend's request, printed (dry run) or submitted (runner.cluster)."""
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from runner.cluster.api import SubmitOptions

        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:  # another launcher runs the points here, one by one
            raise ConfigError("cluster", "is not local, but only erun's launcher submits a sweep's points",
                              "drop hydra/launcher=... (erun's is the default)", COMMAND_LINE)
        request, files = self.prepare_cluster_point(cfg)
        if self.invocation.dry_run:
            as_json = self.invocation.dry_run == "json"
            print(json.dumps(request.to_dict(), indent=2) if as_json else request.describe(), flush=True)
            return 0
        options = SubmitOptions(files, self.invocation.wait)
        return cluster_registry.scheduler(cluster_registry.chosen(cfg)).schedule(request, options)

    def prepare_cluster_point(self, cfg: Any) -> tuple[ClusterRequest, dict[str, str]]:
        """Compile a job for its cluster (Hydra's config for it is current): the backend's request
        and the files its run directory gets; submits nothing (runner.sweep.slurm submits a sweep's).
        In a dry run, the folders Hydra made for it go again at the end."""
        from hydra.core.hydra_config import HydraConfig

        scheduler = cluster_registry.scheduler(cluster_registry.chosen(cfg))
        request = scheduler.dryrun(cfg, self._context(HydraConfig.get()))
        if self.invocation.dry_run:
            self._leave_no_trace()
        return request, record_files(request.plan, cfg, self.invocation.hydra_record)

    def sweep_context(self) -> SweepContext:
        from runner.sweep.points import SweepContext

        inv = self.invocation
        return SweepContext(environ=inv.environ, cwd=inv.cwd, dry_run=inv.dry_run is not None, wait=inv.wait)

    def fail(self, error: ErunError, folders: Sequence[Path] | None = None) -> None:
        """Stop with `error`; the folders made for what never started (default: the current
        point's) are dropped at the end when empty."""
        self.error = error
        if folders is None:
            self._leave_no_trace()
        else:
            self.unused_dirs.extend(folders)

    def finish(self, exit_status: int) -> None:
        self.exit_codes.append(exit_status)

    def _context(self, hydra_cfg: Any, host: HostInfo | None = None) -> CompileContext:
        from runner.config.sources import CompileContext
        from runner.devices import HostInfo

        run_dir = str(Path(hydra_cfg.runtime.output_dir).resolve())
        choice = hydra_cfg.runtime.choices.get(JOB_OVERRIDE_KEY)
        return CompileContext(
            run_dir=run_dir, run_id=uuid.uuid4().hex[:12], cwd=str(hydra_cfg.runtime.cwd),
            host=host or HostInfo.detect(os.environ),
            job_name=str(hydra_cfg.job.name) if self.invocation.named_job else choice,
            config_file=str(RunPaths(Path(run_dir)).job_config),
            sources=key_sources(self.invocation.job(choice), hydra_cfg),
            workdir=run_dir if hydra_cfg.job.chdir else None,  # Hydra's task would run there
        )

    def _dry_run(self, plan: JobPlan, hydra_cfg: Any) -> None:
        from runner.config.dryrun import describe

        print(plan.to_json() if self.invocation.dry_run == "json" else describe(plan), flush=True)
        self._leave_no_trace()

    def _leave_no_trace(self) -> None:
        """Note the folders Hydra made for a point that starts nothing (a dry run, a bad config)."""
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
        self.unused_dirs.append(Path(hydra_cfg.runtime.output_dir))
        if hydra_cfg.mode == RunMode.MULTIRUN:
            self.unused_dirs.append(Path(hydra_cfg.sweep.dir))

    def exit_status(self) -> int:
        return next((code for code in self.exit_codes if code != 0), int(ExitStatus.SUCCESS))

    def clean_up(self) -> None:
        """Drop what Hydra wrote for points that started nothing; keep folders holding anything else."""
        for folder in self.unused_dirs:
            multirun = SweepPaths(folder).multirun
            if folder.is_dir() and {p.name for p in folder.iterdir()} <= {multirun.name}:
                multirun.unlink(missing_ok=True)
            remove_empty_dirs(folder, stop=self.invocation.cwd)


def task_overrides(hydra_cfg: Any) -> list[str]:
    """The command line's overrides as typed (iterating Hydra's node would resolve `${...}`)."""
    from omegaconf import OmegaConf

    overrides = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
    assert isinstance(overrides, list)
    return [str(o) for o in overrides]


def key_sources(job: jobfile.JobFile | None, hydra_cfg: Any) -> KeySources:
    """Which keys the job file and the command line set (for errors and relative paths)."""
    from runner.config.sources import KeySources

    groups = {*hydra_cfg.runtime.choices, JOB_GROUP}  # +job=... as typed names a group
    overrides = overrides_parser().parse_overrides(task_overrides(hydra_cfg))
    cli = frozenset(o.key_or_group for o in overrides if o.key_or_group not in groups)
    if job is None:
        return KeySources(cli_keys=cli)
    return KeySources(job_file=str(job.path), job_keys=job.dotted_keys(), cli_keys=cli)


@functools.cache
def overrides_parser() -> Any:
    """Hydra's parser of overrides, made once: making one costs more than a parse, and a sweep
    compiles every point."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def start(prepared: PreparedPoint, environ: dict[str, str]) -> RunResult:
    """Record the config (Hydra's .hydra/ files and the resolved job.yaml), then run the agent.
    A run directory that already holds a run is continued (runner.record.continuation), unless
    its agent still runs: refused before anything is written."""
    from runner.record.continuation import continuation_of
    from runner.runtime.agent import Agent

    plan = prepared.plan
    continuation_of(Path(plan.run_dir))
    prepared.write_files()
    return Agent(plan, environ=environ).run()


def record_files(plan: JobPlan, cfg: Any, hydra_record: bool = True) -> dict[str, str]:
    """What the run directory gets before the agent starts, as text: Hydra's .hydra/ record
    (config, Hydra's settings, the command line's overrides; unless the user chose
    hydra.output_subdir, `hydra_record` False: then Hydra wrote its own, or none for null) and
    the resolved job config (job.yaml).
    Rendered while Hydra's config for the point is current (`${hydra:...}` resolves)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from runner.config.redact import redacted_config, scrub

    hydra_cfg: Any = HydraConfig.instance().cfg  # the whole {hydra: ...} node
    assert hydra_cfg is not None and plan.config_file is not None
    files = {plan.config_file: redacted_config(cfg, plan, resolve=True)}  # secrets: runner.config.redact
    if hydra_record:
        folder = RunPaths(Path(plan.run_dir)).hydra_dir
        files[str(folder / "config.yaml")] = redacted_config(cfg, plan, resolve=False)
        files[str(folder / "hydra.yaml")] = scrub(OmegaConf.to_yaml(hydra_cfg), plan.secret_env())
        files[str(folder / "overrides.yaml")] = scrub(OmegaConf.to_yaml(hydra_cfg.hydra.overrides.task),
                                                      plan.secret_env())
    return files
