"""Job files: find `+job=NAME`, check its keys, and put it where Hydra will load it.

`+job=train.yaml`, `+job=train` and `+job=path/to/any.yaml` are looked up, in order:

1. as a path (relative to the working directory, or absolute), with or without the suffix;
2. in ./conf/job/ (your project's jobs);
3. among the jobs shipped with erun (conf/job/, installed or in the checkout: `runner.config.confdir`).

The file found is checked against the schema (unknown keys are reported with the file's name
and a "did you mean"), then linked as `job/NAME.yaml` into a per-invocation config folder that
comes first on Hydra's search path, so a job named like a shipped example never loads the
example by mistake. Hydra's choice is recorded as NAME, without the suffix.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runner.config.confdir import shipped_conf
from runner.config.keys import did_you_mean, suggest_key, unknown_keys
from runner.errors import ConfigError
from runner.words import display_path

SUFFIXES = (".yaml", ".yml")
SHIPPED_CONF = shipped_conf()
JOB_GROUP = "job"


@dataclass(frozen=True)
class JobFile:
    """A job file found for one `+job=` value."""

    choice: str  # Hydra's choice: the file name without suffix
    path: Path
    data: Mapping[str, Any]

    def dotted_keys(self) -> frozenset[str]:
        """Every key the file sets, dotted, parents included (`restart`, `restart.max_restarts`)."""
        return frozenset(_dotted(self.data))


def _dotted(data: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in data.items():
        name = f"{prefix}{key}"
        yield name
        if isinstance(value, Mapping):
            yield from _dotted(value, f"{name}.")


def job_dirs(cwd: Path) -> list[Path]:
    """Where job names are looked up after the path itself: ./conf/job, then the shipped jobs."""
    return [cwd / "conf" / JOB_GROUP, SHIPPED_CONF / JOB_GROUP]


def find(value: str, cwd: Path) -> Path:
    """The job file `value` names (see the module docstring for the order)."""
    names = [value] if value.endswith(SUFFIXES) else [value + s for s in SUFFIXES]
    for base in [cwd, *job_dirs(cwd)]:
        for name in names:
            path = base / name
            if path.is_file():
                return path.resolve()
    known = sorted({p.stem for d in [cwd, *job_dirs(cwd)] for p in _yaml_files(d)})
    hint = did_you_mean(Path(value).stem, known)
    raise ConfigError(
        "job", f"{value} was not found (looked in ., ./conf/job and erun's shipped jobs)",
        hint or "give the path of a job file, e.g. +job=path/to/train.yaml",
    )


def _yaml_files(folder: Path) -> list[Path]:
    return [p for p in folder.glob("*") if p.suffix in SUFFIXES] if folder.is_dir() else []


def load(path: Path) -> JobFile:
    """Read and check a job file: a YAML mapping whose keys the schema knows."""
    source = display_path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(None, f"is not valid YAML{where}: {getattr(e, 'problem', e)}",
                          "fix the YAML syntax", source) from None
    except OSError as e:
        raise ConfigError(None, f"cannot be read: {e.strerror}", "check the file", source) from None
    if not isinstance(data, Mapping):
        raise ConfigError(None, f"holds a {type(data).__name__}, not a mapping of keys",
                          "write key: value lines, e.g. entrypoint: train.py", source)
    for key in unknown_keys(data):
        raise ConfigError(key, "is not a job key", suggest_key(key), source)
    return JobFile(choice=path.stem, path=path, data=data)


def load_preset(path: Path) -> dict[str, Any]:
    """A preset's top-level keys (for notes only: Hydra itself loads presets)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def stage(jobs: list[JobFile], folder: Path) -> None:
    """Link each job file as folder/job/CHOICE.yaml (the folder comes first on the search path)."""
    group = folder / JOB_GROUP
    group.mkdir(parents=True, exist_ok=True)
    seen: dict[str, Path] = {}
    for job in jobs:
        if seen.setdefault(job.choice, job.path) != job.path:
            both = f"{display_path(seen[job.choice])}, {display_path(job.path)}"
            raise ConfigError("job", f"names two files called {job.choice} ({both})", "rename one of them")
        link = group / f"{job.choice}.yaml"
        if not link.exists():
            link.symlink_to(job.path)
