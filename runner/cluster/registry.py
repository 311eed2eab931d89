"""Chooses the cluster backend for `cluster.backend` and imports it only when asked (as torchx's
schedulers/__init__.py). `local` is no backend: the app runs the agent itself."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from runner.config.keys import did_you_mean
from runner.errors import ConfigError

if TYPE_CHECKING:
    from runner.cluster.api import Scheduler

LOCAL = "local"
# backend name -> module holding its `SCHEDULER`
BACKENDS = {"slurm": "runner.cluster.slurm"}


def chosen(cfg: Any) -> str:
    """The backend a composed config asks for (`local` when it has no cluster node)."""
    cluster = cfg.get("cluster") if hasattr(cfg, "get") else None
    return str((cluster or {}).get("backend") or LOCAL)


def scheduler(name: str) -> Scheduler:
    """The backend called `name`, imported now."""
    module = BACKENDS.get(name)
    if module is None:
        hint = did_you_mean(name, [LOCAL, *BACKENDS])
        raise ConfigError("cluster.backend", f"is {name!r}, not a known cluster",
                          hint or f"use cluster={LOCAL} or one of {', '.join(BACKENDS)}")
    backend: Scheduler = importlib.import_module(module).SCHEDULER
    return backend
