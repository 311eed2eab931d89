"""The interface every cluster backend implements, as TorchX's schedulers: `dryrun` builds an
inspectable request from the config (the compiled plan and what the scheduler is sent), so
`--dry-run` is free and tests assert on requests without a cluster; `schedule` submits it.

This file imports no backend (`runner.cluster.registry` chooses one and imports it when asked).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from runner.config.sources import CompileContext
    from runner.plan import JobPlan


class ClusterRequest(Protocol):
    """What a backend would submit: the job's plan and the scheduler's request."""

    @property
    def plan(self) -> JobPlan: ...

    def describe(self) -> str:
        """The request as a person reads it (what --dry-run prints)."""

    def to_dict(self) -> dict[str, Any]:
        """The request as JSON-ready data (what --dry-run=json prints)."""


@dataclass(frozen=True)
class SubmitOptions:
    """How `erun` submits: `files` are written into the run directory first (the resolved
    job.yaml, Hydra's record); `wait` follows the job to its end."""

    files: Mapping[str, str]
    wait: bool = False


class Scheduler(Protocol):
    """A cluster backend: build the request, then submit it."""

    def dryrun(self, cfg: Any, ctx: CompileContext) -> ClusterRequest:
        """Compile `cfg` for this cluster and build the request; submits nothing.
        Bad input raises ConfigError."""

    def schedule(self, request: Any, options: SubmitOptions) -> int:
        """Submit `request` (from `dryrun`); print the job id and the run directory. Returns 0,
        or with `options.wait` the job's exit status. A refused submission raises ConfigError
        and leaves nothing submitted."""
