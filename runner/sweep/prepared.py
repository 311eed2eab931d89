"""A point ready to run (`PreparedPoint`): its plan and the record files its run directory gets.

Its own module, free of Hydra's import: `erun torchrun` prepares its one job without Hydra
(runner.config.direct), and `runner.sweep.points` imports Hydra's exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner.paths import PRIVATE_DIR_MODE
from runner.plan import JobPlan
from runner.record.writer import write_start_files


@dataclass(frozen=True)
class PreparedPoint:
    """A point ready to run: its plan, and the files its run directory gets before the agent
    starts (Hydra's .hydra/ record and job.yaml), as text."""

    plan: JobPlan
    files: Mapping[str, str]
    overrides: tuple[str, ...]
    env_set: Mapping[str, str] = field(default_factory=dict)  # Hydra's hydra.job.env_set: the agent's env

    def write_files(self) -> None:
        """Written whole, never through a link; ConfigError when the disk refuses (runner.record.writer)."""
        run_dir = Path(self.plan.run_dir)
        if self.plan.logs.private and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.chmod(PRIVATE_DIR_MODE)  # Hydra made it for this point, as the umask allowed
        write_start_files(self.files, self.plan.logs.private)
