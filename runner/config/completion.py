"""Tab completion: `eval "$(erun -sc install=bash)"` installs Hydra's completion for erun; on each
<TAB> the shell runs `erun -sc query=bash` with the line in COMP_LINE, and Hydra answers from the
config it composes for that line's overrides (job keys, presets, groups).

Hydra sees only erun's staging folder and the line's words, so for a query erun first stages
what the line needs (`prepare`): the job files the line names (their keys then complete), a
link per job file erun would find (`+job=<TAB>` offers job names: ., -cd DIRs, ./conf/job,
erun's shipped jobs), and ./conf on the primary config's search path (your own presets).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from runner.config import jobfile
from runner.errors import ConfigError
from runner.overrides import JOB_SPELLINGS

QUERY_FLAGS = ("-sc", "--shell-completion")
CONFIG_DIR_FLAGS = ("-cd", "--config-dir")  # a config dir on the line is searched for jobs too
# The keys one of which a job file sets (a YAML file in . without any is not offered as a job).
ENTRY_KEYS = ("entrypoint", "call", "module", "exec")


def is_query(flags: list[str], args: list[str]) -> bool:
    """Whether the command line asks for Hydra's completion query (`-sc query=bash`: a flag,
    and its subcommand among the overrides)."""
    return any(f in QUERY_FLAGS for f in flags) and any(a.startswith("query=") for a in args)


def prepare(staging: Path, cwd: Path, config_dirs: list[Path], environ: Mapping[str, str]) -> dict[str, str]:
    """Stage what completing COMP_LINE needs (see the module docstring); each typed job value of
    the line with its Hydra choice (for runner.overrides.Spelling)."""
    typed: dict[str, str] = {}
    jobs: list[jobfile.JobFile] = []
    words = environ.get("COMP_LINE", "").split()
    pairs = zip(words, words[1:], strict=False)
    config_dirs = [*config_dirs, *(Path(w) for flag, w in pairs if flag in CONFIG_DIR_FLAGS)]
    for word in words:
        spelling = next((s for s in JOB_SPELLINGS if word.startswith(s)), None)
        for value in word[len(spelling):].split(",") if spelling else ():
            try:
                jobs.append(jobfile.load(jobfile.find(value, cwd, config_dirs)))
            except ConfigError:
                continue  # half typed: nothing to stage
            typed[value] = jobs[-1].choice
    try:
        jobfile.stage(jobs, staging)
    except ConfigError:
        return {}
    link_job_names(staging / jobfile.JOB_GROUP, cwd, config_dirs)
    search_conf(staging, cwd)
    return typed


def link_job_names(group: Path, cwd: Path, config_dirs: list[Path]) -> None:
    """A link in the staged job group for each job file erun would find by name."""
    group.mkdir(parents=True, exist_ok=True)
    for folder in [cwd, *jobfile.job_dirs(cwd, config_dirs)]:
        for path in sorted(folder.glob("*.y*ml")) if folder.is_dir() else ():
            link = group / f"{path.stem}.yaml"
            if path.suffix in jobfile.SUFFIXES and not link.exists() and looks_like_job(path):
                link.symlink_to(path.resolve())


def looks_like_job(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and any(key in data for key in ENTRY_KEYS)


def search_conf(staging: Path, cwd: Path) -> None:
    """./conf on the staged primary config's search path (a query gets no searchpath override)."""
    conf = cwd / "conf"
    if not conf.is_dir() or conf.resolve() == jobfile.SHIPPED_CONF:
        return
    config = staging / "config.yaml"
    data = yaml.safe_load(config.read_text())
    data.setdefault("hydra", {})["searchpath"] = [f"file://{conf.resolve()}"]
    config.unlink()  # a copy of erun's: replaced, never written through
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    os.chmod(config, 0o600)
