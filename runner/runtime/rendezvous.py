"""torch's rendezvous handlers (static, etcd-v2, etcd; c10d with a file store or when
ERUN_TORCH_RENDEZVOUS=1) as a `Backend` of erun's rounds (runner.runtime.rounds).

torch's handler (`get_rendezvous_handler(RendezvousParameters)`) forms each round; erun reaches
into two private names of torch 2.13 to read its state faster (`_tune_sync`) and names the
callers of its events without `inspect.stack()` (`method_name`). The c10d backend over TCP is
erun's own by default (runner.runtime.c10d: the same protocol without importing torch).

This module imports torch: `runner.runtime.registry` imports it only for such plans.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, cast

from runner.plan import DEFAULT_RDZV_PORTS, SETTING_DEFAULTS, JobPlan, RdzvPlan
from runner.runtime import rounds
from runner.runtime.rendezvous_wait import PACER
from runner.runtime.rounds import (  # noqa: F401 (the names tests and callers know from here)
    TORCH_SYNC_S,
    Backend,
    NodeInfo,
    RoundMembership,
    layout_for,
    sync_interval,
)

# torch's C++ store logs every failed connection attempt with a stack trace; erun reports one line.
# Only the agent's torch is quieted (the level is read at import): workers get the user's env.
_CPP_LOG = "TORCH_CPP_LOG_LEVEL"
_user_cpp_log = os.environ.get(_CPP_LOG)
os.environ[_CPP_LOG] = _user_cpp_log or "FATAL"
from torch.distributed import PrefixStore, Store, TCPStore  # noqa: E402
from torch.distributed.elastic.rendezvous import (  # noqa: E402
    RendezvousClosedError,
    RendezvousHandler,
    RendezvousParameters,
    RendezvousStoreInfo,
    RendezvousTimeoutError,
    dynamic_rendezvous,  # noqa: E402
)
from torch.distributed.elastic.rendezvous.registry import get_rendezvous_handler  # noqa: E402

# Settings erun reads itself; the rest go to torch's backend as they are.
ERUN_SETTINGS = ("local_addr", "exit_barrier_timeout", "sync_interval")

if _user_cpp_log is None:
    del os.environ[_CPP_LOG]


def method_name(depth: int = 2) -> str:
    """torch's `dynamic_rendezvous.get_method_name`, the same name without `inspect.stack()`,
    which reads the source lines of every frame to name the caller of each rendezvous event
    torch records: a tenth of a waiting agent's CPU at erun's sync interval."""
    try:
        return sys._getframe(depth).f_code.co_name
    except ValueError:  # fewer frames than `depth`, as torch's `len(inspect.stack()) > depth`
        return "no_method_name"


dynamic_rendezvous.get_method_name = method_name  # only the agent's torch: workers import their own

def torch_parameters(rdzv: RdzvPlan) -> RendezvousParameters:
    """erun's rdzv plan as torch's parameters: `join_timeout` is `timeout` for static and etcd,
    and whole seconds where torch wants integers."""
    config: dict[str, Any] = {
        k: _torch_value(k, v) for k, v in rdzv.settings.items() if k not in ERUN_SETTINGS}
    for key, default in SETTING_DEFAULTS.items():
        config.setdefault(key, default)
    if rdzv.backend in ("static", "etcd"):
        config.setdefault("timeout", config["join_timeout"])
    endpoint = rdzv.endpoint
    if ":" not in endpoint and rdzv.backend in DEFAULT_RDZV_PORTS:
        endpoint = f"{endpoint}:{DEFAULT_RDZV_PORTS[rdzv.backend]}"
    return RendezvousParameters(rdzv.backend, endpoint, rdzv.id, rdzv.min_nodes, rdzv.max_nodes,
                                local_addr=rdzv.settings.get("local_addr"), **config)


def _torch_value(key: str, value: Any) -> Any:
    if isinstance(value, float) and (key.endswith(("timeout", "interval", "attempt"))):
        return max(1, math.ceil(value))
    return value


class TorchBackend:
    """torch's handlers, stores and errors."""

    timeout_errors: tuple[type[BaseException], ...] = (RendezvousTimeoutError,)
    closed_errors: tuple[type[BaseException], ...] = (RendezvousClosedError,)

    def __init__(self, rdzv: RdzvPlan, factory: Callable[[RendezvousParameters], RendezvousHandler]
                 = get_rendezvous_handler) -> None:
        self.rdzv = rdzv
        self.params = torch_parameters(rdzv)
        self._factory = factory

    def connect(self) -> RendezvousHandler:
        _quiet_torch_logs(self.rdzv.backend)
        handler = self._factory(self.params)
        _tune_sync(handler, sync_interval(self.rdzv))
        return handler

    def prefix(self, prefix: str, store: Store) -> Store:
        return PrefixStore(prefix, store)

    def serve_workers(self) -> tuple[Any, int]:
        """The server listens on every address; the name is only where its own client connects."""
        server = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
        return server, int(server.port)

    def publish_master(self, info: Any, addr: str, port: int) -> None:
        _unblock_late_joiners(info.store, info.bootstrap_store_info)


class TorchMembership(RoundMembership):
    """erun's rounds over torch's rendezvous handler."""

    def __init__(self, plan: JobPlan, handler_factory: Callable[[RendezvousParameters], RendezvousHandler]
                 = get_rendezvous_handler) -> None:
        super().__init__(plan, TorchBackend(plan.rdzv, handler_factory))


def _tune_sync(handler: RendezvousHandler, interval: float) -> None:
    """torch's dynamic rendezvous (c10d, etcd-v2) re-reads its state at most once a second while
    it waits: a node that joined first notices a completed round up to a second late, at every
    round. Read every `interval` instead, and let a stop signal end the wait (`Pacer`). This
    reaches into two private names of torch 2.13 (tests/test_rendezvous.py checks that they
    exist); without them torch's own timing stays."""
    if callable(getattr(dynamic_rendezvous, "_delay", None)):
        dynamic_rendezvous._delay = PACER
        PACER.scale = min(1.0, interval / TORCH_SYNC_S)
    holder = getattr(handler, "_state_holder", None)
    if interval < TORCH_SYNC_S and hasattr(holder, "_cache_duration"):
        holder._cache_duration = interval  # type: ignore[union-attr]


def _quiet_torch_logs(backend: str) -> None:
    """torch's etcd rendezvous prints INFO lines through a handler of its own; the dynamic one
    warns when a store that a finished node took with it is gone. erun reports its own errors."""
    if backend == "etcd":
        import torch.distributed.elastic.rendezvous.etcd_rendezvous  # noqa: F401 (its import sets INFO)

        logging.getLogger("torch.distributed.elastic.rendezvous.etcd_rendezvous").setLevel(logging.WARNING)
    logging.getLogger("torch.distributed.elastic.rendezvous.dynamic_rendezvous").setLevel(logging.ERROR)


def _unblock_late_joiners(store: Store, info: RendezvousStoreInfo | None) -> None:
    """torch 2.13 with the shared agent store: a node that joins a later round waits for
    MASTER_ADDR/MASTER_PORT in that round's store, but group rank 0 only writes them in the first
    round it leads. Write them (the same values torch would) so the joiner is not stuck."""
    if info is None:
        return
    store.set(RendezvousStoreInfo.MASTER_ADDR_KEY, info.master_addr)
    store.set(RendezvousStoreInfo.MASTER_PORT_KEY, str(info.master_port))


def explained(rdzv: RdzvPlan, joined: Callable[[], int | None], rejoin: bool = False,
              backend: Backend | None = None) -> AbstractContextManager[None]:
    """`rounds.explained`, for torch's exceptions unless told another backend's."""
    return rounds.explained(rdzv, joined, rejoin, backend or cast(Backend, TorchBackend))
