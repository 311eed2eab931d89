"""`erun +job=train.yaml nproc=8 ...`: Hydra composes the job once, the compiler plans it, the agent runs it.

Hydra's own flags (`--cfg job`, `--help`, `--info`, `hydra.run.dir=...`, `-m`) work as in any
Hydra app; erun adds `--dry-run[=json]`. Each multirun point is a full job in its own directory.

How the config is found (see conf/config.yaml for the precedence of its parts):
- Hydra's main config folder is a per-invocation staging folder: erun's conf/config.yaml, links
  to erun's preset groups (conf/restart, conf/rdzv, ...), and the job file(s) as job/NAME.yaml;
  your ./conf (your own presets, in new files) comes next on the search path;
- `+job=...` is resolved by `runner.jobfile` and the override becomes `job@_global_=NAME`
  (job files hold top-level keys, so their package is _global_).

Every mistake in the config, Hydra's included, ends as one `ConfigError` (exit 2, one line).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import jobfile
from runner.errors import ConfigError, ErunError, ExitStatus
from runner.keys import did_you_mean, schema_keys

if TYPE_CHECKING:
    from runner.compile import CompileContext, KeySources
    from runner.plan import JobPlan

COMMAND_LINE = "command line"  # as runner.compile names it

JOB_OVERRIDE_KEY = "job@_global_"
JOB_SPELLINGS = ("+job=", "++job=", "job=", f"{JOB_OVERRIDE_KEY}=", f"+{JOB_OVERRIDE_KEY}=")
DRY_RUN_FLAGS = {"--dry-run": "text", "--dry-run=text": "text", "--dry-run=json": "json"}
CONFIG_NAME = "config"
PRESET_GROUPS = ("restart", "rdzv")
HYDRA_SUBDIR = ".hydra"


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
    flags, args = split_flags(args)
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
        run_hydra(Path(staging), invocation, session.run_point)
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
            hint = did_you_mean(name, [*actions, "--dry-run"])
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
    """Hydra's main with erun's argv; its errors become ConfigErrors (one line, exit 2)."""
    import hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from runner.hydra_errors import translate
    from runner.schema import register_configs

    register_configs()
    entry = hydra.main(version_base="1.3", config_path=str(config_dir), config_name=CONFIG_NAME)(task)
    with _hydra_process_state(invocation.hydra_args):
        try:
            entry()
        except ErunError:
            raise
        except (HydraException, OmegaConfBaseException) as e:
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
        """Hydra's task function. Errors wait until Hydra returns (it would log them first)."""
        if self.error is not None or any(code >= ExitStatus.SIGNAL_BASE for code in self.exit_codes):
            return  # a multirun stops at its first bad point, or when a signal stopped a point
        try:
            self._run_point(cfg)
        except ErunError as e:
            self.error = e
            self._leave_no_trace()

    def _run_point(self, cfg: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        from runner.compile import compile_job

        hydra_cfg = HydraConfig.get()
        plan = compile_job(cfg, self._context(hydra_cfg))
        job = self.invocation.job(hydra_cfg.runtime.choices.get(JOB_OVERRIDE_KEY))
        for note in preset_notes(job, task_overrides(hydra_cfg), self.invocation.cwd):
            print(f"erun: note: {note}", file=sys.stderr)
        if self.invocation.dry_run:
            self._dry_run(plan, hydra_cfg)
            return
        self.exit_codes.append(start(plan, cfg, self.invocation.environ))

    def _context(self, hydra_cfg: Any) -> CompileContext:
        from runner.compile import CompileContext
        from runner.devices import HostInfo

        run_dir = str(Path(hydra_cfg.runtime.output_dir).resolve())
        choice = hydra_cfg.runtime.choices.get(JOB_OVERRIDE_KEY)
        return CompileContext(
            run_dir=run_dir, run_id=uuid.uuid4().hex[:12], cwd=str(hydra_cfg.runtime.cwd),
            host=HostInfo.detect(os.environ), job_name=choice,
            config_file=str(Path(run_dir) / "job.yaml"),
            sources=key_sources(self.invocation.job(choice), hydra_cfg),
        )

    def _dry_run(self, plan: JobPlan, hydra_cfg: Any) -> None:
        from runner.dryrun import describe

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
            if folder.is_dir() and {p.name for p in folder.iterdir()} <= {"multirun.yaml"}:
                (folder / "multirun.yaml").unlink(missing_ok=True)
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

    from runner.compile import KeySources

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
            notes.append(f"{jobfile.display(job.path)} sets {', '.join(clash)}, which wins over the preset "
                         f"{override}; set {clash[0]}=... on the command line to change it")
    return notes


def start(plan: JobPlan, cfg: Any, environ: dict[str, str]) -> int:
    """Record the config (Hydra's .hydra/ files and the resolved job.yaml), then run the agent."""
    from omegaconf import OmegaConf

    from runner.agent import Agent
    from runner.paths import RunPaths

    run_dir = Path(plan.run_dir)
    if RunPaths(run_dir).events.exists():
        raise ConfigError("hydra.run.dir", f"{run_dir} already holds a run",
                          "choose a new directory, so the earlier run's record stays intact", COMMAND_LINE)
    save_hydra_record(run_dir, cfg)
    assert plan.config_file is not None
    OmegaConf.save(cfg, plan.config_file, resolve=True)
    return int(Agent(plan, environ=environ).run().exit_code)


def save_hydra_record(run_dir: Path, cfg: Any) -> None:
    """What Hydra writes to .hydra/ (unless the user chose hydra.output_subdir): config, Hydra's
    settings, the command line's overrides."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    hydra_cfg: Any = HydraConfig.instance().cfg  # the whole {hydra: ...} node
    assert hydra_cfg is not None
    if hydra_cfg.hydra.output_subdir is not None:
        return  # Hydra wrote its own
    folder = run_dir / HYDRA_SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    OmegaConf.save(hydra_cfg, folder / "hydra.yaml")
    OmegaConf.save(hydra_cfg.hydra.overrides.task, folder / "overrides.yaml")


def remove_empty_dirs(folder: Path, stop: Path) -> None:
    """rmdir `folder` and its parents while empty, never `stop` or anything outside it."""
    folder, stop = folder.resolve(), stop.resolve()
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
