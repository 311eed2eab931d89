"""Where the compiler's inputs came from: which keys the job file and the command line set
(for errors that say where a mistake was made, and for relative paths), and the run's identity."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from runner.devices import HostInfo
from runner.errors import COMMAND_LINE
from runner.words import display_path


@dataclass(frozen=True)
class KeySources:
    """Where keys were set: the job file's path and keys, and the command line's keys (dotted)."""

    job_file: str | None = None
    job_keys: frozenset[str] = frozenset()
    cli_keys: frozenset[str] = frozenset()

    def source(self, key: str) -> str | None:
        """The job file or the command line that set `key` (None: a default or a preset)."""
        if _covers(self.cli_keys, key):
            return COMMAND_LINE
        if self.job_file and _covers(self.job_keys, key):
            return display_path(self.job_file)
        return None

    def base_dirs(self, key: str, cwd: str) -> list[str]:
        """Where a relative path in `key` is looked up: next to the file that set it, then cwd."""
        if self.source(key) not in (None, COMMAND_LINE) and self.job_file:
            return [str(Path(self.job_file).parent), cwd]
        return [cwd]


def _covers(keys: frozenset[str], key: str) -> bool:
    return key in keys or any(k.startswith(key + ".") or key.startswith(k + ".") for k in keys)


@dataclass(frozen=True)
class CompileContext:
    """What the compiler needs besides the config: the run's identity and the host."""

    run_dir: str
    run_id: str
    cwd: str  # where erun was started
    host: HostInfo
    job_name: str | None = None  # the job file's name (Hydra's choice for `job`)
    config_file: str | None = None  # the resolved config the workers read (ERUN_CONFIG)
    sources: KeySources = field(default_factory=KeySources)
    # Where the workers run when the job sets no `cwd` (None: `cwd`, where erun was started;
    # the run directory with Hydra's hydra.job.chdir=true).
    workdir: str | None = None
