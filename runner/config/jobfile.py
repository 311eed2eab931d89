"""Job files: find `+job=NAME`, check its keys, and put it where Hydra will load it.

`+job=train.yaml`, `+job=train` and `+job=path/to/any.yaml` are looked up, in order:

1. as a path (relative to the working directory, or absolute), with or without the suffix;
2. in each config dir given with `-cd DIR` (Hydra's --config-dir): DIR/job/, then DIR/;
3. in ./conf/job/ (your project's jobs);
4. among the jobs shipped with erun (conf/job/, installed or in the checkout: `runner.config.confdir`).

The file found is checked against the schema (unknown keys are reported with the file's name
and a "did you mean"), then linked as `job/NAME.yaml` into a per-invocation config folder that
comes first on Hydra's search path, so a job named like a shipped example never loads the
example by mistake. Hydra's choice is recorded as NAME, without the suffix.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
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


def job_dirs(cwd: Path, config_dirs: Sequence[Path] = ()) -> list[Path]:
    """Where job names are looked up after the path itself: each `-cd DIR` given (DIR/job, then
    DIR), ./conf/job, then the shipped jobs."""
    given = [d for c in config_dirs for d in (cwd / c / JOB_GROUP, cwd / c)]
    return [*given, cwd / "conf" / JOB_GROUP, SHIPPED_CONF / JOB_GROUP]


def find(value: str, cwd: Path, config_dirs: Sequence[Path] = ()) -> Path:
    """The job file `value` names (see the module docstring for the order)."""
    names = [value] if value.endswith(SUFFIXES) else [value + s for s in SUFFIXES]
    bases = [cwd, *job_dirs(cwd, config_dirs)]
    for base in bases:
        for name in names:
            path = base / name
            if path.is_file():
                return path.resolve()
    known = sorted({p.stem for d in bases for p in _yaml_files(d)})
    hint = did_you_mean(Path(value).stem, known)
    given = "".join(f"{display_path(d)}, " for d in config_dirs)
    looked = f"., {given}./conf/job and erun's shipped jobs"
    raise ConfigError(
        "job", f"{value} was not found (looked in {looked})",
        hint or "give the path of a job file, e.g. +job=path/to/train.yaml",
    )


def _yaml_files(folder: Path) -> list[Path]:
    return [p for p in folder.glob("*") if p.suffix in SUFFIXES] if folder.is_dir() else []


def load(path: Path) -> JobFile:
    """Read and check a job file: a YAML mapping whose keys the schema knows."""
    source = display_path(path)
    try:
        data = parse_yaml(read_text(path, source), source) or {}
    except OSError as e:
        raise ConfigError(None, f"cannot be read: {e.strerror}", "check the file", source) from None
    if not isinstance(data, Mapping):
        raise ConfigError(None, f"holds a {type(data).__name__}, not a mapping of keys",
                          "write key: value lines, e.g. entrypoint: train.py", source)
    for key in unknown_keys(data):
        raise ConfigError(key, "is not a job key", suggest_key(key), source)
    return JobFile(choice=path.stem, path=path, data=data)


def read_text(path: Path, source: str) -> str:
    """The file as UTF-8 text (what YAML and Hydra expect), or a ConfigError saying where not."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(None, f"is not UTF-8 text (byte 0x{raw[e.start]:02x} on line {line})",
                          "save it as UTF-8", source) from None


def parse_yaml(text: str, source: str) -> Any:
    """safe_load, after checking that aliases do not expand it past MAX_YAML_NODES nodes (a
    few hundred bytes of nested aliases make billions) and that none refers to itself."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            _check_expansion(root, source)
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(None, f"is not valid YAML{where}: {getattr(e, 'problem', e)}",
                          "fix the YAML syntax", source) from None
    except RecursionError:
        raise ConfigError(None, "is nested too deeply", "flatten the YAML", source) from None


# Far more than any job file needs; far less than an alias bomb expands to.
MAX_YAML_NODES = 100_000


def _check_expansion(root: yaml.Node, source: str) -> None:
    sizes: dict[int, int] = {}  # per node: its size with aliases expanded (each node sized once)
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise ConfigError(None, "has an alias inside the node it refers to (an endless value)",
                              "remove the recursive alias", source)
        open_nodes.add(id(node))
        children = _children(node)
        total = 1 + sum(size(child) for child in children)
        open_nodes.discard(id(node))
        sizes[id(node)] = min(total, MAX_YAML_NODES + 1)  # capped: the sum stays a small int
        return sizes[id(node)]

    if size(root) > MAX_YAML_NODES:
        raise ConfigError(None, f"expands to more than {MAX_YAML_NODES} values through its aliases "
                          "(*name)", "use fewer nested aliases", source)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load_preset(path: Path) -> dict[str, Any]:
    """A preset's top-level keys (for notes only: Hydra itself loads presets)."""
    try:
        data = parse_yaml(read_text(path, display_path(path)), display_path(path))
    except (OSError, ConfigError):
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
