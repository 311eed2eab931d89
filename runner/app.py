"""`erun +job=train.yaml nproc=8 ...`: Hydra composes the job once, the compiler plans it, the agent runs it.

Hydra's own flags (`--cfg job`, `--help`, `--info`, `hydra.run.dir=...`, `-m`) work as in any
Hydra app; erun adds `--dry-run[=json]` and `--resume[=SWEEP_DIR]`. A command line of overrides
only (one run) is composed once, by `runner.config.hydra_run`; the rest goes through `@hydra.main`.
Each multirun point is a full job in its own directory; erun's launcher
(hydra_plugins/erun_launcher, the default) runs them side by side on the node's slots
(`runner.sweep.points`, `runner.sweep.run`), Hydra's basic launcher (`hydra/launcher=basic`) one after
the other, in this process.

How the config is found (see conf/config.yaml for the precedence of its parts):
- Hydra's main config folder is a per-invocation staging folder: erun's conf/config.yaml, links
  to erun's preset groups (conf/restart, conf/rdzv, ...), and the job file(s) as job/NAME.yaml;
  your ./conf (your own presets, in new files) comes next on the search path;
- `+job=...` is resolved by `runner.config.jobfile` and the override becomes `job@_global_=NAME`
  (job files hold top-level keys, so their package is _global_).

Every mistake in the config, Hydra's included, ends as one `ConfigError` (exit 2, one line).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.config import gcpause, jobfile
from runner.config.keys import did_you_mean, schema_keys
from runner.errors import COMMAND_LINE, ConfigError, ErunError, ExitStatus
from runner.overrides import JOB_OVERRIDE_KEY, JOB_SPELLINGS
from runner.paths import RunPaths, SweepPaths
from runner.words import display_path

if TYPE_CHECKING:
    from runner.config.compile import CompileContext, KeySources
    from runner.devices import HostInfo
    from runner.plan import JobPlan
    from runner.sweep.points import PreparedPoint, SweepContext


RESUME_FLAG = "--resume"
DRY_RUN_FLAGS = {"--dry-run": "text", "--dry-run=text": "text", "--dry-run=json": "json"}
CONFIG_NAME = "config"
PRESET_GROUPS = ("restart", "rdzv")


@dataclass(frozen=True)
class Invocation:
    """One `erun` command line, split into erun's options and Hydra's arguments."""

    hydra_args: list[str]
    jobs: list[jobfile.JobFile]
    cwd: Path
    dry_run: str | None = None  # None, "text" or "json"
    # The environment erun was started with (Hydra's HYDRA_FULL_ERROR is not the workers' business).
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def job(self, choice: str | None) -> jobfile.JobFile | None:
        return next((j for j in self.jobs if j.choice == choice), None)


def main(argv: list[str]) -> int:
    """Run the job(s) `argv` describes; the exit status of the job, or of the first failed point."""
    cwd = Path.cwd()
    dry_run, args = split_dry_run(argv)
    resume, args = split_resume(args)
    flags, args = split_flags(args)
    args = resume_overrides(resume, args, flags)
    args = [open_mapping_override(a) for a in args]
    with tempfile.TemporaryDirectory(prefix="erun-conf-") as staging:
        args, jobs = stage_jobs(args, cwd, Path(staging))
        if not any(a.startswith("hydra.output_subdir=") for a in args):
            # erun writes .hydra/ itself once the run is sure to start: a refused or dry run
            # leaves nothing, and never overwrites an earlier run's record.
            args.insert(0, "hydra.output_subdir=null")
        # argparse wants the overrides in one block: erun's and the user's, then the flags.
        hydra_args = search_path_overrides(args, cwd) + args + flags
        invocation = Invocation(hydra_args, jobs, cwd, dry_run)
        session = Session(invocation)
        try:
            run_hydra(Path(staging), invocation, session.run_point)
        finally:
            session.clean_up()
    if session.error is not None:
        raise session.error
    return session.exit_status()


def split_dry_run(argv: list[str]) -> tuple[str | None, list[str]]:
    """erun's --dry-run[=json] (the mode, or None), and the arguments for Hydra."""
    modes = [DRY_RUN_FLAGS[a] for a in argv if a in DRY_RUN_FLAGS]
    bad = [a for a in argv if a.startswith("--dry-run") and a not in DRY_RUN_FLAGS]
    if bad:
        raise ConfigError(None, f"unknown flag {bad[0]}", "use --dry-run or --dry-run=json", COMMAND_LINE)
    return (modes[-1] if modes else None), [a for a in argv if a not in DRY_RUN_FLAGS]


def split_resume(argv: list[str]) -> tuple[str | None, list[str]]:
    """erun's --resume[=SWEEP_DIR] ("" for the sweep directory given otherwise, or None), and the rest."""
    given = [a for a in argv if a == RESUME_FLAG or a.startswith(RESUME_FLAG + "=")]
    if not given:
        return None, argv
    return given[-1].partition("=")[2], [a for a in argv if a not in given]


def resume_overrides(resume: str | None, args: list[str], flags: list[str]) -> list[str]:
    """--resume: erun's launcher skips the points that already succeeded in the sweep directory."""
    if resume is None:
        return args
    if not {"-m", "--multirun"} & set(flags):
        raise ConfigError(None, "--resume resumes a sweep", "add -m (and the sweep's overrides)",
                          COMMAND_LINE)
    if any(a.startswith("hydra/launcher=") and a != "hydra/launcher=erun" for a in args):
        raise ConfigError(None, "--resume needs erun's launcher", "drop the hydra/launcher=... override",
                          COMMAND_LINE)
    if resume:
        args = [a for a in args if not a.startswith("hydra.sweep.dir=")] + [f"hydra.sweep.dir={resume}"]
    elif not any(a.startswith("hydra.sweep.dir=") for a in args):
        raise ConfigError(None, "--resume needs the sweep directory to resume",
                          "use --resume=multirun/DATE/TIME_NAME (or hydra.sweep.dir=...)", COMMAND_LINE)
    return [*args, "hydra.launcher.resume=true"]


def split_flags(args: list[str]) -> tuple[list[str], list[str]]:
    """Hydra's flags (with their values) and the overrides; an unknown flag is a one-line error."""
    from hydra._internal.utils import get_args_parser

    actions = get_args_parser()._option_string_actions
    flags: list[str] = []
    overrides: list[str] = []
    i = 0
    while i < len(args):
        arg, i = args[i], i + 1
        if not arg.startswith("-"):
            overrides.append(arg)
            continue
        name = arg.split("=", 1)[0]
        action = actions.get(name)
        if action is None:
            hint = did_you_mean(name, [*actions, "--dry-run", RESUME_FLAG])
            raise ConfigError(None, f"unknown flag {arg}", hint or "see erun --help", COMMAND_LINE)
        flags.append(arg)
        takes_value = action.nargs is None or (action.nargs == "?" and i < len(args)
                                               and args[i] in (action.choices or ()))
        if "=" not in arg and takes_value and i < len(args):
            flags.append(args[i])  # e.g. --cfg job, --info searchpath
            i += 1
    return flags, overrides


def open_mapping_override(arg: str) -> str:
    """`params.lr=1e-3` adds the key when the job file lacks it (Hydra alone wants `+params.lr`)."""
    key = arg.split("=", 1)[0]
    if "=" not in arg or key.startswith(("+", "~", "-")):
        return arg
    opened = [k for k, is_open in schema_keys().items() if is_open and key.startswith(k + ".")]
    return f"++{arg}" if opened else arg


def stage_jobs(args: list[str], cwd: Path, staging: Path) -> tuple[list[str], list[jobfile.JobFile]]:
    """Resolve each `+job=` value, stage its file, and rewrite the override to `job@_global_=NAME`."""
    out: list[str] = []
    jobs: list[jobfile.JobFile] = []
    for arg in args:
        spelling = next((s for s in JOB_SPELLINGS if arg.startswith(s)), None)
        if spelling is None:
            out.append(arg)
            continue
        found = [jobfile.load(jobfile.find(v, cwd)) for v in arg[len(spelling):].split(",")]
        jobs += found
        out.append(f"{JOB_OVERRIDE_KEY}={','.join(j.choice for j in found)}")
    jobfile.stage(jobs, staging)
    stage_erun_config(staging)
    if len({j.choice for j in jobs}) == 1 and not any(a.startswith("hydra.job.name=") for a in out):
        out.insert(0, f"hydra.job.name={jobs[0].choice}")
    return out, jobs


def stage_erun_config(staging: Path) -> None:
    """erun's primary config and preset groups, next to the staged jobs (Hydra's main config dir)."""
    shutil.copyfile(jobfile.SHIPPED_CONF / f"{CONFIG_NAME}.yaml", staging / f"{CONFIG_NAME}.yaml")
    for group in jobfile.SHIPPED_CONF.iterdir():
        if group.is_dir() and group.name != jobfile.JOB_GROUP:
            (staging / group.name).symlink_to(group, target_is_directory=True)


def search_path_overrides(args: list[str], cwd: Path) -> list[str]:
    """After erun's own config: ./conf (your presets), then any hydra.searchpath given."""
    paths: list[str] = []
    if (cwd / "conf").is_dir() and (cwd / "conf").resolve() != jobfile.SHIPPED_CONF:
        paths.append(f"file://{cwd / 'conf'}")
    given = [a for a in args if a.startswith("hydra.searchpath=")]
    for arg in given:
        inner = arg.split("=", 1)[1].strip().removeprefix("[").removesuffix("]")
        paths += [p.strip() for p in inner.split(",") if p.strip()]
        args.remove(arg)
    return [f"hydra.searchpath=[{','.join(paths)}]"] if paths else []


def run_hydra(config_dir: Path, invocation: Invocation, task: Callable[[Any], None]) -> None:
    """Hydra's main with erun's argv (a plain run composes once: `runner.config.hydra_run`); its errors
    become ConfigErrors (one line, exit 2)."""
    import hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from runner.config.hydra_run import VERSION_BASE, run_once, takes
    from runner.config.schema import register_configs

    register_configs()
    entry = hydra.main(version_base=VERSION_BASE, config_path=str(config_dir), config_name=CONFIG_NAME)(task)
    args = invocation.hydra_args
    with _hydra_process_state(args):
        try:
            if not (takes(args) and run_once(config_dir, CONFIG_NAME, args, task)):
                gcpause.resume()  # Hydra's own path: -m, --help, ..., or what run_once leaves to it
                entry()
        except ErunError:
            raise
        except (HydraException, OmegaConfBaseException) as e:
            from runner.config.hydra_errors import translate

            raise translate(e, invocation) from None
        except SystemExit as e:  # --help, --info, argparse errors
            if e.code not in (0, None):
                raise ErunError("invalid command line (see the usage above)") from None


@contextmanager
def _hydra_process_state(args: list[str]) -> Iterator[None]:
    """Hydra reads sys.argv and reports errors itself unless HYDRA_FULL_ERROR is set."""
    saved_argv, saved_env = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = ["erun", *args]
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        sys.argv = saved_argv
        if saved_env is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_env


@dataclass
class Session:
    """The points Hydra runs (one, or one per multirun point), and how each ended."""

    invocation: Invocation
    exit_codes: list[int] = field(default_factory=list)
    unused_dirs: list[Path] = field(default_factory=list)
    error: ErunError | None = None

    def run_point(self, cfg: Any) -> None:
        """Hydra's task function (one job, or the basic launcher's points one after the other).
        Errors wait until Hydra returns (it would log them first)."""
        gcpause.resume()  # start-up is over: the point may run for days
        if self.error is not None or any(code >= ExitStatus.SIGNAL_BASE for code in self.exit_codes):
            return  # a multirun stops at its first bad point, or when a signal stopped a point
        try:
            prepared = self.prepare_point(cfg)
            if not self.invocation.dry_run:
                self.exit_codes.append(start(prepared, self.invocation.environ))
        except ErunError as e:
            self.fail(e)

    def prepare_point(self, cfg: Any, host: HostInfo | None = None) -> PreparedPoint:
        """Compile the point Hydra's config is current for (against `host`, default this host):
        its plan and record files. A dry run prints the plan (and the point starts nothing)."""
        from hydra.core.hydra_config import HydraConfig

        from runner.config.compile import compile_job
        from runner.sweep.points import PreparedPoint

        hydra_cfg = HydraConfig.get()
        plan = compile_job(cfg, self._context(hydra_cfg, host))
        job = self.invocation.job(hydra_cfg.runtime.choices.get(JOB_OVERRIDE_KEY))
        for note in preset_notes(job, task_overrides(hydra_cfg), self.invocation.cwd):
            print(f"erun: note: {note}", file=sys.stderr)
        if self.invocation.dry_run:
            self._dry_run(plan, hydra_cfg)
        return PreparedPoint(plan, record_files(plan, cfg), tuple(task_overrides(hydra_cfg)))

    def sweep_context(self) -> SweepContext:
        from runner.sweep.points import SweepContext

        inv = self.invocation
        return SweepContext(environ=inv.environ, cwd=inv.cwd, dry_run=inv.dry_run is not None)

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
        from runner.config.compile import CompileContext
        from runner.devices import HostInfo

        run_dir = str(Path(hydra_cfg.runtime.output_dir).resolve())
        choice = hydra_cfg.runtime.choices.get(JOB_OVERRIDE_KEY)
        return CompileContext(
            run_dir=run_dir, run_id=uuid.uuid4().hex[:12], cwd=str(hydra_cfg.runtime.cwd),
            host=host or HostInfo.detect(os.environ), job_name=choice,
            config_file=str(RunPaths(Path(run_dir)).job_config),
            sources=key_sources(self.invocation.job(choice), hydra_cfg),
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
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from runner.config.compile import KeySources

    groups = set(hydra_cfg.runtime.choices)
    overrides = OverridesParser.create().parse_overrides(task_overrides(hydra_cfg))
    cli = frozenset(o.key_or_group for o in overrides if o.key_or_group not in groups)
    if job is None:
        return KeySources(cli_keys=cli)
    return KeySources(job_file=str(job.path), job_keys=job.dotted_keys(), cli_keys=cli)


def preset_notes(job: jobfile.JobFile | None, overrides: list[str], cwd: Path) -> list[str]:
    """Presets chosen on the command line lose to keys the job file sets: say so, once each."""
    if job is None:
        return []
    notes = []
    for override in overrides:
        group, _, name = override.partition("=")
        if group not in PRESET_GROUPS:
            continue
        preset = next((d / group / f"{name}.yaml" for d in (jobfile.SHIPPED_CONF, cwd / "conf")
                       if (d / group / f"{name}.yaml").is_file()), None)
        if preset is None:
            continue
        data = jobfile.load_preset(preset)
        clash = sorted(f"{group}.{k}" for k in data if f"{group}.{k}" in job.dotted_keys())
        if clash:
            notes.append(f"{display_path(job.path)} sets {', '.join(clash)}, which wins over the preset "
                         f"{override}; set {clash[0]}=... on the command line to change it")
    return notes


def start(prepared: PreparedPoint, environ: dict[str, str]) -> int:
    """Record the config (Hydra's .hydra/ files and the resolved job.yaml), then run the agent."""
    from runner.runtime.agent import Agent

    plan = prepared.plan
    if RunPaths(Path(plan.run_dir)).events.exists():
        raise ConfigError("hydra.run.dir", f"{plan.run_dir} already holds a run",
                          "choose a new directory, so the earlier run's record stays intact", COMMAND_LINE)
    prepared.write_files()
    return int(Agent(plan, environ=environ).run().exit_code)


def record_files(plan: JobPlan, cfg: Any) -> dict[str, str]:
    """What the run directory gets before the agent starts, as text: Hydra's .hydra/ record
    (config, Hydra's settings, the command line's overrides; unless the user chose
    hydra.output_subdir, then Hydra wrote its own) and the resolved job config (job.yaml).
    Rendered while Hydra's config for the point is current (`${hydra:...}` resolves)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    hydra_cfg: Any = HydraConfig.instance().cfg  # the whole {hydra: ...} node
    assert hydra_cfg is not None and plan.config_file is not None
    files = {plan.config_file: OmegaConf.to_yaml(cfg, resolve=True)}
    if hydra_cfg.hydra.output_subdir is None:
        folder = RunPaths(Path(plan.run_dir)).hydra_dir
        files[str(folder / "config.yaml")] = OmegaConf.to_yaml(cfg)
        files[str(folder / "hydra.yaml")] = OmegaConf.to_yaml(hydra_cfg)
        files[str(folder / "overrides.yaml")] = OmegaConf.to_yaml(hydra_cfg.hydra.overrides.task)
    return files


def remove_empty_dirs(folder: Path, stop: Path) -> None:
    """rmdir `folder` and its parents while empty, never `stop` or anything outside it."""
    folder, stop = folder.resolve(), stop.resolve()
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
