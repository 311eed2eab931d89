"""torch's launcher API on erun: `from runner.compat import elastic_launch, LaunchConfig` in place
of `from torch.distributed.launcher.api import ...`, and `elastic_launch(config, fn)(*args)`
runs `fn` under erun's agent (runner.launch), returning {rank: return value} as torch does.

How LaunchConfig's fields become job keys (docs/python-api.md has the table):
nproc_per_node -> nproc; min_nodes/max_nodes -> nnodes (N, or MIN:MAX); one node (max_nodes=1)
needs no rendezvous, so rdzv_* are not used; more nodes: rdzv_backend/endpoint/configs ->
rdzv.backend/endpoint/settings, run_id -> rdzv.id, rdzv_timeout -> rdzv.settings.join_timeout,
local_addr -> rdzv.settings.local_addr; max_restarts -> restart.max_restarts; role -> role;
log_line_prefix_template -> logs.prefix. Accepted and not used (erun decides these itself):
monitor_interval, start_method (always fresh interpreters), metrics_cfg, logs_specs,
event_log_handler. A failure raises runner.JobFailedError (torch: ChildFailedError).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runner.errors import ConfigError

SOURCE = "LaunchConfig"


@dataclass
class LaunchConfig:
    """torch.distributed.launcher.api.LaunchConfig's fields and defaults."""

    min_nodes: int
    max_nodes: int
    nproc_per_node: int
    logs_specs: Any = None  # not used: erun writes every rank's logs to its run directory
    run_id: str = ""
    role: str = "default_role"
    rdzv_endpoint: str = ""
    rdzv_backend: str = "etcd"
    rdzv_configs: dict[str, Any] = field(default_factory=dict)
    rdzv_timeout: int = -1
    max_restarts: int = 3
    monitor_interval: float = 0.1  # not used: erun notices a worker's exit at once
    start_method: str = "spawn"  # not used: erun's workers are always fresh interpreters
    log_line_prefix_template: str | None = None
    metrics_cfg: dict[str, str] = field(default_factory=dict)  # not used
    local_addr: str | None = None
    event_log_handler: str = "null"  # not used: events go to the run directory's events.jsonl


def job_keys(config: LaunchConfig) -> dict[str, Any]:
    """The erun job keys that mean what `config` means (see the module docstring)."""
    if not 0 < config.min_nodes <= config.max_nodes:
        raise ConfigError("min_nodes", f"is {config.min_nodes} with max_nodes {config.max_nodes}",
                          "use 1 <= min_nodes <= max_nodes", SOURCE)
    keys: dict[str, Any] = {"nproc": config.nproc_per_node, "role": config.role,
                            "restart": {"max_restarts": config.max_restarts}}
    if config.max_nodes > 1:
        keys["nnodes"] = (config.min_nodes if config.min_nodes == config.max_nodes
                          else f"{config.min_nodes}:{config.max_nodes}")
        keys["rdzv"] = _rdzv(config)
    if config.log_line_prefix_template is not None:
        from runner.torchrun import from_torch_template

        keys["logs"] = {"prefix": from_torch_template(config.log_line_prefix_template), "prefix_space": False}
    return keys


def _rdzv(config: LaunchConfig) -> dict[str, Any]:
    settings = dict(config.rdzv_configs)
    if config.rdzv_timeout != -1:
        settings["join_timeout"] = config.rdzv_timeout
    if config.local_addr:
        settings["local_addr"] = config.local_addr
    rdzv: dict[str, Any] = {"backend": config.rdzv_backend, "endpoint": config.rdzv_endpoint,
                            "id": config.run_id or "none"}
    if settings:
        rdzv["settings"] = settings
    return rdzv


class elastic_launch:  # noqa: N801 - torch's name, so that only the import changes
    """`elastic_launch(config, fn)(*args)`: {rank: fn's return value}, run by erun."""

    def __init__(self, config: LaunchConfig, entrypoint: Callable[..., Any] | str | None) -> None:
        if not callable(entrypoint):
            raise ConfigError("entrypoint", f"is {entrypoint!r}, not a function",
                              "runner.compat runs Python functions; run a program with `erun torchrun`",
                              SOURCE)
        self._config, self._entrypoint = config, entrypoint

    def __call__(self, *args: Any) -> dict[int, Any]:
        from runner.api.launcher import launch

        return launch(self._entrypoint, *args, **job_keys(self._config)).return_values


def launch_agent(config: LaunchConfig, entrypoint: Callable[..., Any] | str | None,
                 args: list[Any]) -> dict[int, Any]:
    """torch's `launch_agent(config, entrypoint, args)`."""
    return elastic_launch(config, entrypoint)(*args)
