"""erun's own command line, shaped for Hydra: `erun +job=train.yaml nproc=8 --dry-run` becomes the
`Invocation` Hydra runs. erun adds flags of its own (`--dry-run[=json]`, `--resume[=SWEEP_DIR]`),
accepts `params.x=1` without Hydra's `+`, finds each `+job=...` file (`runner.config.jobfile`) and
stages it where Hydra loads it. The overrides go to Hydra as typed; erun's config loader composes
`+job=NAME` as `job@_global_=NAME` (job files hold top-level keys, so their package is _global_) and
`params.x=1` as `++params.x=1` (`runner.overrides.Spelling`), and records them as typed. Hydra's
main config folder is a per-invocation staging folder: erun's conf/config.yaml, links to erun's
preset groups (conf/restart, conf/rdzv, ...) and the job file(s) as job/NAME.yaml; your ./conf (your
own presets, in new files) comes next on the search path. Every mistake is a one-line `ConfigError`
(exit 2).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from runner.config import completion, jobfile
from runner.config.completion import CONFIG_DIR_FLAGS
from runner.config.keys import did_you_mean, schema_keys
from runner.errors import COMMAND_LINE, ConfigError
from runner.overrides import JOB_SPELLINGS, Spelling, override_key
from runner.words import display_path

RESUME_FLAG = "--resume"
WAIT_FLAG = "--wait"  # cluster=...: follow the submitted job to its end
DRY_RUN_FLAGS = {"--dry-run": "text", "--dry-run=text": "text", "--dry-run=json": "json"}
CONFIG_NAME = "config"
# The preset groups: a preset picked on the command line (restart=never) wins over the job
# file's keys of its group, which are then set aside (the job file's defaults list is Hydra's).
PRESET_GROUPS = ("restart", "rdzv")
HYDRA_JOB_NAME = "hydra.job.name"
PRIMARY_CONFIG_FLAGS = ("-cn", "--config-name", "-cp", "--config-path")  # erun's primary config is its own
FLAG_CUTOFF = 0.75  # how close an unknown --flag must be to a known one to be called a typo of it


@dataclass(frozen=True)
class Invocation:
    """One `erun` command line, split into erun's options and Hydra's arguments."""

    hydra_args: list[str]
    jobs: list[jobfile.JobFile]
    cwd: Path
    dry_run: str | None = None  # None, "text" or "json"
    # What erun made of the command line, for the user to know (`erun train.yaml` ran +job=...).
    notes: tuple[str, ...] = ()
    wait: bool = False  # --wait
    # The environment erun was started with (Hydra's HYDRA_FULL_ERROR is not the workers' business).
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    # erun writes the run's .hydra/ record itself (once the run is sure to start): True unless
    # the user chose hydra.output_subdir (null: no .hydra/ at all, as with Hydra).
    hydra_record: bool = True
    # The user named Hydra's job (hydra.job.name on the command line or in a job file's hydra:
    # node): that name names the run, as it names the run directory.
    named_job: bool = False
    # How the overrides, given to Hydra as typed, are composed (runner.config.typed_loader).
    spelling: Spelling = field(default_factory=Spelling)

    def job(self, choice: str | None) -> jobfile.JobFile | None:
        return next((j for j in self.jobs if j.choice == choice), None)


def shape(argv: list[str], cwd: Path, staging: Path) -> Invocation:
    """The invocation `argv` describes, its job files staged in `staging` (Hydra's config dir)."""
    args, first_word = job_as_first_word(argv, cwd)
    dry_run, args = split_dry_run(args)
    wait, args = WAIT_FLAG in args, [a for a in args if a != WAIT_FLAG]
    resume, args = split_resume(args)
    flags, args = split_flags(args)
    refuse_primary_config_flags(flags)
    args = resume_overrides(resume, args, flags)
    config_dirs = flag_values(flags, CONFIG_DIR_FLAGS)
    args, jobs, typed_jobs = stage_jobs(args, cwd, staging, config_dirs)
    if completion.is_query(flags, args):
        typed_jobs.update(completion.prepare(staging, cwd, config_dirs, os.environ))
    spelling = Spelling(typed_jobs, tuple(k for k, is_open in schema_keys().items() if is_open))
    jobs, set_aside = set_aside_preset_keys(args, jobs, staging)
    hydra_record = not user_sets("hydra.output_subdir", args, jobs)
    if hydra_record:
        # erun writes .hydra/ itself once the run is sure to start: a refused or dry run
        # leaves nothing, and never overwrites an earlier run's record.
        args.insert(0, "hydra.output_subdir=null")
    # argparse wants the overrides in one block: erun's and the user's, then the flags.
    hydra_args = search_path_overrides(args, cwd) + args + flags
    return Invocation(hydra_args, jobs, cwd, dry_run, wait=wait, notes=first_word + set_aside,
                      hydra_record=hydra_record, named_job=user_sets(HYDRA_JOB_NAME, args, jobs),
                      spelling=spelling)


def user_sets(key: str, args: list[str], jobs: list[jobfile.JobFile]) -> bool:
    """Whether the command line (an override of `key`, any +/++ spelling) or a job file sets `key`."""
    return any("=" in a and override_key(a) == key for a in args) or any(key in j.dotted_keys() for j in jobs)


def job_as_first_word(argv: list[str], cwd: Path) -> tuple[list[str], tuple[str, ...]]:
    """`erun train.yaml ...` (the natural first try) is `erun +job=train.yaml ...`, said in a
    note; a first word that looks like a job file but is none is a one-line error."""
    first = argv[0] if argv else ""
    if not first.endswith(jobfile.SUFFIXES) or first.startswith(("-", "+")) or "=" in first:
        return argv, ()
    try:
        jobfile.find(first, cwd)
    except ConfigError as e:
        near = re.fullmatch(r"did you mean `(.*)`\?", e.fix)
        fix = f"did you mean +job={near[1]}.yaml?" if near else "give the job file as +job=PATH"
        raise ConfigError(None, f"{first} is not a job file erun can find (looked in ., ./conf/job and "
                          "erun's shipped jobs)", fix, COMMAND_LINE) from None
    note = f"running {first} as +job={first} (a job file is given as +job=FILE)"
    return [f"+job={first}", *argv[1:]], (note,)


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


MULTIRUN_FLAGS = frozenset({"-m", "--multirun"})  # Hydra's: the command line is a sweep


def other_launcher(args: Sequence[str]) -> bool:
    """Whether the command line chooses a launcher that is not erun's (`hydra/launcher=basic`)."""
    return any(a.startswith("hydra/launcher=") and a != "hydra/launcher=erun" for a in args)


def resume_overrides(resume: str | None, args: list[str], flags: list[str]) -> list[str]:
    """--resume: erun's launcher skips the points that already succeeded in the sweep directory."""
    if resume is None:
        return args
    if not MULTIRUN_FLAGS & set(flags):
        raise ConfigError(None, "--resume resumes a sweep", "add -m (and the sweep's overrides)",
                          COMMAND_LINE)
    if other_launcher(args):
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
            following = args[i] if i < len(args) else ""
            hint = flag_hint(arg, following, [*actions, "--dry-run", RESUME_FLAG, WAIT_FLAG])
            raise ConfigError(None, f"unknown flag {arg}", hint, COMMAND_LINE)
        flags.append(arg)
        takes_value = action.nargs is None or (action.nargs == "?" and i < len(args)
                                               and args[i] in (action.choices or ()))
        if "=" not in arg and takes_value and i < len(args):
            flags.append(args[i])  # e.g. --cfg job, --info searchpath
            i += 1
    return flags, overrides


def flag_hint(arg: str, following: str, flags: list[str]) -> str:
    """The fix for an unknown flag: `--nproc=4` is nproc=4, a near miss of a flag of erun's or
    Hydra's is that flag, and any other `--x=v` (torchrun's habit) is the job's own value params.x=v."""
    name, _, value = arg.partition("=")
    if not name.startswith("--"):
        return did_you_mean(name, flags) or "see erun --help"
    if not value and following and not following.startswith("-") and "=" not in following:
        value = following  # --lr 0.01
    key = name[2:].replace("-", "_")
    if key in schema_keys():
        return f"erun's job keys take no dashes: {key}={value or '...'}"
    import difflib  # only a mistake needs it

    # Closer than did_you_mean's cutoff: `--lr` is not a typo of `--run`.
    long_flags = [f for f in flags if f.startswith("--")]
    near = difflib.get_close_matches(name, long_flags, n=1, cutoff=FLAG_CUTOFF)
    if near:
        return f"did you mean `{near[0]}`?"
    own = f"params.{name[2:]}={value or '...'}"
    return f"the job's own values go under params: {own} (your script gets {name}=...)"


def flag_values(flags: list[str], names: tuple[str, ...]) -> list[Path]:
    """The values of the flags `names` in `flags` (`-cd DIR`, `--config-dir=DIR`), in order."""
    values = []
    for i, flag in enumerate(flags):
        name, eq, value = flag.partition("=")
        if name in names:
            values.append(Path(value) if eq else Path(flags[i + 1]) if i + 1 < len(flags) else None)
    return [v for v in values if v is not None]


def refuse_primary_config_flags(flags: list[str]) -> None:
    """`-cn`/`-cp` would replace erun's primary config (the job keys, presets, launcher): one line."""
    given = [f for f in flags if f.partition("=")[0] in PRIMARY_CONFIG_FLAGS]
    if given:
        raise ConfigError(None, f"{given[0].partition('=')[0]} would replace erun's own primary config",
                          "give your config as a job file (+job=FILE), and your presets in ./conf or "
                          "-cd DIR", COMMAND_LINE)


def stage_jobs(args: list[str], cwd: Path, staging: Path, config_dirs: list[Path] | None = None,
               ) -> tuple[list[str], list[jobfile.JobFile], dict[str, str]]:
    """Resolve each `+job=` value and stage its file; each typed value's Hydra choice (the
    override stays as typed: Hydra composes it as `job@_global_=NAME`, runner.overrides.Spelling)."""
    out: list[str] = []
    jobs: list[jobfile.JobFile] = []
    typed: dict[str, str] = {}
    for arg in args:
        out.append(arg)
        spelling = next((s for s in JOB_SPELLINGS if arg.startswith(s)), None)
        if spelling is None:
            continue
        for value in arg[len(spelling):].split(","):
            jobs.append(jobfile.load(jobfile.find(value, cwd, config_dirs or ())))
            typed[value] = jobs[-1].choice
    jobfile.stage(jobs, staging)
    stage_erun_config(staging)
    name = job_name(out, jobs)
    if name and not user_sets(HYDRA_JOB_NAME, out, jobs):  # the user's hydra.job.name wins, as in Hydra
        out.insert(0, f"{HYDRA_JOB_NAME}='{name}'")  # quoted: a job named null, true or 1e-3 stays a name
    return out, jobs, typed


def job_name(args: list[str], jobs: list[jobfile.JobFile]) -> str:
    """What names the run directory (`..._NAME`): `name=` on the command line, else the job
    file's `name`, else the job file's name; '' when neither is known (Hydra's default)."""
    typed = [a.split("=", 1)[1] for a in args if a.split("=", 1)[0].lstrip("+") == "name" and "=" in a]
    if typed and not any(c in typed[-1] for c in ("${", ",", "(")):  # not swept nor interpolated
        return path_safe(typed[-1])
    if len({j.choice for j in jobs}) != 1:
        return ""
    given = jobs[0].data.get("name")
    return path_safe(str(given)) if isinstance(given, str) and given else jobs[0].choice


def path_safe(name: str) -> str:
    """`name` as one folder name Hydra's override grammar accepts unquoted."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") or "job"


def set_aside_preset_keys(args: list[str], jobs: list[jobfile.JobFile],
                          staging: Path) -> tuple[list[jobfile.JobFile], tuple[str, ...]]:
    """A preset picked on the command line (restart=never) wins over the job file's keys of its
    group: each staged job file loses them (the user's file is untouched), with a note saying so."""
    picked = {g: a for a in args for g in PRESET_GROUPS if re.fullmatch(rf"\+{{0,2}}{g}=.*", a)}
    kept: list[jobfile.JobFile] = []
    notes: list[str] = []
    for job in jobs:
        groups = [g for g in picked if isinstance(job.data.get(g), dict) and job.data[g]]
        if not groups:
            kept.append(job)
            continue
        for group in groups:
            keys = ", ".join(sorted(k for k in job.dotted_keys() if k.startswith(group + ".")))
            notes.append(f"{picked[group]} on the command line wins over {display_path(job.path)}'s "
                         f"{keys} (set {group}.KEY=... on the command line to change one)")
        job = dataclasses.replace(job, data={k: v for k, v in job.data.items() if k not in groups})
        staged = staging / jobfile.JOB_GROUP / f"{job.choice}.yaml"
        staged.unlink()
        staged.write_text(yaml.safe_dump(dict(job.data), sort_keys=False))
        kept.append(job)
    return kept, tuple(notes)


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
