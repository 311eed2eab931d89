"""The frozen, validated plan of a job: what the agent runs, and what the run directory records.

A plan is built once (by `runner.compile` from a Hydra config, or by hand through the Python
API), never changes, serialises to JSON (`to_dict` / `from_dict`) and holds no live objects.
`__post_init__` guards the invariants the runtime relies on; user-facing config errors that
name keys and files are raised earlier, by the compiler.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from runner.errors import ConfigError

PLAN_VERSION = 1


class EntrypointKind(str, enum.Enum):
    """How a worker is started."""

    SCRIPT = "script"  # python -u script args...
    MODULE = "module"  # python -u -m module args...
    EXEC = "exec"  # executable args... (no python)
    CALL = "call"  # python -u -m runner.call pkg.mod:fn  (fn(**params) in each worker)


@dataclass(frozen=True)
class EntrypointPlan:
    """What each worker process executes. `args` are final: params are already rendered."""

    kind: EntrypointKind
    target: str
    args: tuple[str, ...] = ()
    python: str = sys.executable

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", EntrypointKind(self.kind))
        object.__setattr__(self, "args", tuple(str(a) for a in self.args))
        if not self.target:
            raise ConfigError(f"entrypoint.{self.kind.value}", "is empty", "name what to run")

    def argv(self) -> list[str]:
        """The exact command line, as torchrun builds it for scripts and modules."""
        if self.kind is EntrypointKind.SCRIPT:
            return [self.python, "-u", self.target, *self.args]
        if self.kind is EntrypointKind.MODULE:
            return [self.python, "-u", "-m", self.target, *self.args]
        if self.kind is EntrypointKind.CALL:
            return [self.python, "-u", "-m", "runner.call", self.target, *self.args]
        return [self.target, *self.args]


@dataclass(frozen=True)
class RestartPlan:
    """When the group is restarted, and how long a stop may take."""

    max_restarts: int = 0
    stop_grace_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ConfigError("restart.max_restarts", f"is {self.max_restarts}", "use 0 or more")
        if self.stop_grace_s < 0:
            raise ConfigError("restart.stop_grace_s", f"is {self.stop_grace_s}", "use 0 or more")


@dataclass(frozen=True)
class LogsPlan:
    """Console output of the workers. Files always get everything.

    `prefix` is a format string with {rank}, {local_rank}, {role} and {attempt};
    `ranks` limits the console to those global ranks (None: all).
    """

    prefix: str = "[{rank}]:"
    ranks: tuple[int, ...] | None = None
    console: bool = True

    def __post_init__(self) -> None:
        if self.ranks is not None:
            object.__setattr__(self, "ranks", tuple(int(r) for r in self.ranks))
        try:
            self.prefix.format(rank=0, local_rank=0, role="r", attempt=0)
        except (KeyError, IndexError, ValueError) as e:
            raise ConfigError(
                "logs.prefix", f"is not a valid format string ({e})",
                "use fields {rank}, {local_rank}, {role}, {attempt}",
            ) from None

    def shows(self, rank: int) -> bool:
        return self.console and (self.ranks is None or rank in self.ranks)


@dataclass(frozen=True)
class RdzvPlan:
    """How nodes meet. `standalone` (one node) needs no rendezvous service at all."""

    backend: str = "standalone"
    endpoint: str = ""
    id: str = "none"
    min_nodes: int = 1
    max_nodes: int = 1
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))
        if not 1 <= self.min_nodes <= self.max_nodes:
            raise ConfigError(
                "nnodes", f"is {self.min_nodes}:{self.max_nodes}",
                "use N or MIN:MAX with 1 <= MIN <= MAX",
            )

    @property
    def single_node(self) -> bool:
        return self.max_nodes == 1


@dataclass(frozen=True)
class JobPlan:
    """Everything the agent needs to run a job on this node."""

    entrypoint: EntrypointPlan
    nproc: int
    run_dir: str
    run_id: str
    name: str = "job"
    role: str = "default"
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    restart: RestartPlan = field(default_factory=RestartPlan)
    logs: LogsPlan = field(default_factory=LogsPlan)
    rdzv: RdzvPlan = field(default_factory=RdzvPlan)
    master_addr: str = "localhost"
    # One entry per local rank: that rank's CUDA_VISIBLE_DEVICES. Empty: leave devices alone.
    devices: tuple[str, ...] = ()
    # The job's own hyperparameters (already rendered into args for script/module/exec).
    params: Mapping[str, Any] = field(default_factory=dict)
    # The fully resolved job config that workers may read (ERUN_CONFIG); None: not written.
    config_file: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", MappingProxyType({str(k): str(v) for k, v in self.env.items()}))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "devices", tuple(str(d) for d in self.devices))
        object.__setattr__(self, "run_dir", os.path.abspath(self.run_dir))
        if self.nproc < 1:
            raise ConfigError("nproc", f"is {self.nproc}", "use 1 or more workers per node")
        if self.devices and len(self.devices) != self.nproc:
            raise ConfigError("devices", f"has {len(self.devices)} entries for nproc={self.nproc}",
                              "give one device per local rank")
        if not self.role:
            raise ConfigError("role", "is empty", "name the role, e.g. role=trainer")

    def to_dict(self) -> dict[str, Any]:
        return {"version": PLAN_VERSION, **_plain(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobPlan:
        data = {k: v for k, v in data.items() if k != "version"}
        nested = {"entrypoint": EntrypointPlan, "restart": RestartPlan, "logs": LogsPlan, "rdzv": RdzvPlan}
        for key, sub in nested.items():
            if key in data:
                data[key] = sub(**data[key])
        return cls(**data)


def _plain(value: Any) -> Any:
    """Turn dataclasses, enums, tuples and mapping proxies into JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
