"""erun's own command line, shaped for Hydra: `erun +job=train.yaml nproc=8 --dry-run` becomes
the `Invocation` Hydra runs.

erun adds flags of its own (`--dry-run[=json]`, `--resume[=SWEEP_DIR]`), accepts `params.x=1`
without Hydra's `+`, finds each `+job=...` file (`runner.config.jobfile`) and stages it where
Hydra loads it, rewriting the override to `job@_global_=NAME` (job files hold top-level keys, so
their package is _global_). Hydra's main config folder is a per-invocation staging folder:
erun's conf/config.yaml, links to erun's preset groups (conf/restart, conf/rdzv, ...) and the
job file(s) as job/NAME.yaml; your ./conf (your own presets, in new files) comes next on the
search path. Every mistake is a one-line `ConfigError` (exit 2).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from runner.config import jobfile
from runner.config.keys import did_you_mean, schema_keys
from runner.errors import COMMAND_LINE, ConfigError
from runner.overrides import JOB_OVERRIDE_KEY, JOB_SPELLINGS

RESUME_FLAG = "--resume"
WAIT_FLAG = "--wait"  # cluster=...: follow the submitted job to its end
DRY_RUN_FLAGS = {"--dry-run": "text", "--dry-run=text": "text", "--dry-run=json": "json"}
CONFIG_NAME = "config"


@dataclass(frozen=True)
class Invocation:
    """One `erun` command line, split into erun's options and Hydra's arguments."""

    hydra_args: list[str]
    jobs: list[jobfile.JobFile]
    cwd: Path
    dry_run: str | None = None  # None, "text" or "json"
    wait: bool = False  # --wait
    # The environment erun was started with (Hydra's HYDRA_FULL_ERROR is not the workers' business).
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def job(self, choice: str | None) -> jobfile.JobFile | None:
        return next((j for j in self.jobs if j.choice == choice), None)


def shape(argv: list[str], cwd: Path, staging: Path) -> Invocation:
    """The invocation `argv` describes, its job files staged in `staging` (Hydra's config dir)."""
    dry_run, args = split_dry_run(argv)
    wait, args = WAIT_FLAG in args, [a for a in args if a != WAIT_FLAG]
    resume, args = split_resume(args)
    flags, args = split_flags(args)
    args = resume_overrides(resume, args, flags)
    args = [open_mapping_override(a) for a in args]
    args, jobs = stage_jobs(args, cwd, staging)
    if not any(a.startswith("hydra.output_subdir=") for a in args):
        # erun writes .hydra/ itself once the run is sure to start: a refused or dry run
        # leaves nothing, and never overwrites an earlier run's record.
        args.insert(0, "hydra.output_subdir=null")
    # argparse wants the overrides in one block: erun's and the user's, then the flags.
    hydra_args = search_path_overrides(args, cwd) + args + flags
    return Invocation(hydra_args, jobs, cwd, dry_run, wait)


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
            hint = did_you_mean(name, [*actions, "--dry-run", RESUME_FLAG, WAIT_FLAG])
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
