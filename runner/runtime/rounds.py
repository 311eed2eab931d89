"""Several nodes: erun's rounds over a rendezvous handler (c10d, static, etcd-v2, etcd).

The handler (torch's, or erun's own c10d in runner.runtime.c10d) forms each round and gives
this node its group rank, the number of nodes and a key-value store for the round. erun does
the rest in that store, the same way for every backend:

1. every node publishes its nproc, role and view of the job's restart count and budget;
2. group rank 0 opens a fresh store for this round's workers on a free port of its host and
   publishes its address as MASTER_ADDR/MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE=True);
3. every node reads all of it: its ranks (consecutive per node, in group-rank order), the world
   size (the sum of all nproc), the master address, and the job's restart count and spent
   budget (the most any node has seen, so every node agrees on both).

So a round never waits for a value an earlier round wrote. torch 2.13 (c10d and etcd-v2 with
the shared agent store) makes a late joiner wait for MASTER_ADDR in the new round's store, which
only the first round's rank 0 ever wrote: torchrun then blocks until a 60 s timeout. Group rank
0 here always writes torch's keys too, which unblocks it at once.

The store of a dynamic backend (c10d, etcd-v2, etcd) is already a fresh namespace per round;
static rendezvous has one store for the whole job, so rounds are numbered by a generation
counter in it, which also tells the other nodes that one of them restarts (`changed()`).

While a node waits, torch re-reads the rendezvous state once a second; erun makes that
`sync_interval` (0.1 s for small jobs), which is most of why it forms rounds faster than
torchrun. What differs between handlers (how to connect, the store classes, the errors) is a
`Backend`; this module imports none.
"""

from __future__ import annotations

import json
import math
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, Protocol

from runner.errors import ConfigError, RendezvousError
from runner.plan import JobPlan, RdzvPlan
from runner.runtime.env import RankLayout
from runner.runtime.membership import Interrupted, Round
from runner.runtime.rendezvous_errors import (
    failure_line,
    first_line,
    lost_line,
    no_answer_line,
    timeout_line,
    where,
)
from runner.runtime.rendezvous_wait import NoAnswer, interruptible, stop_signals

# How often the running nodes look for nodes waiting to join (torchrun: every 0.1 s with
# its monitor interval, but each look is a store round trip; torch caches the state for 1 s).
POLL_INTERVAL_S = 0.1
# After a round forms, how long a node waits for the others' published info.
EXCHANGE_TIMEOUT_S = 60.0
# torchrun's default exit barrier.
EXIT_BARRIER_TIMEOUT_S = 300.0
BARRIER_POLL_S = 0.1
CONNECT_SLACK_S = 10.0
GONE_AFTER_FAILED_POLLS = 3
TORCH_SYNC_S = 1.0
MIN_SYNC_S = 0.1
DYNAMIC = ("c10d", "etcd-v2")


@dataclass(frozen=True)
class NodeInfo:
    """What one node tells the others in a round."""

    nproc: int
    role: str
    restart_count: int
    spent: int


def layout_for(group_rank: int, nodes: list[NodeInfo]) -> RankLayout:
    """This node's place, as torchrun computes it: global ranks consecutive per node in group-rank
    order; role ranks the same among the nodes of this node's role."""
    me = nodes[group_rank]
    same_role = [n for n in nodes if n.role == me.role]
    return RankLayout(
        group_rank=group_rank,
        group_world_size=len(nodes),
        rank_offset=sum(n.nproc for n in nodes[:group_rank]),
        world_size=sum(n.nproc for n in nodes),
        role_rank_offset=sum(n.nproc for n in nodes[:group_rank] if n.role == me.role),
        role_world_size=sum(n.nproc for n in same_role),
    )


class Backend(Protocol):
    """What differs between rendezvous handlers: torch's (runner.runtime.rendezvous) and erun's
    own c10d (runner.runtime.c10d)."""

    # The handler's exceptions for "the join timed out" and "the run is closed".
    timeout_errors: tuple[type[BaseException], ...]
    closed_errors: tuple[type[BaseException], ...]

    def connect(self) -> Any:
        """The handler: connects to (or hosts) the rendezvous store."""
        ...

    def prefix(self, prefix: str, store: Any) -> Any:
        """`store` with every key under `prefix/`."""
        ...

    def serve_workers(self) -> tuple[Any, int]:
        """A fresh store for this round's workers: the object to keep alive, and its port."""
        ...

    def publish_master(self, info: Any, addr: str, port: int) -> None:
        """Group rank 0 of a dynamic round: write torch's MASTER_ADDR/MASTER_PORT keys."""
        ...


class RoundMembership:
    """`Membership` for several nodes over a rendezvous handler (created on first use, so
    connection errors reach the run's log and a stop signal can interrupt the wait)."""

    poll_interval_s: float | None = POLL_INTERVAL_S

    def __init__(self, plan: JobPlan, backend: Backend) -> None:
        self.plan = plan
        self.rdzv = plan.rdzv
        self.backend = backend
        self._handler: Any = None
        self._store: Any = None  # this round's store (erun's namespace in it)
        self._round_store: Any = None
        self._world = 1
        self._generation = -1  # static only: the round number in the job's one store
        self._base: Any = None  # static only: that store
        self._poll_failures = 0
        self._worker_store: Any = None  # group rank 0: this round's store for the workers

    # -- Membership ------------------------------------------------------------------------

    def next_round(self, restart_count: int, spent: int = 0) -> Round:
        if self._handler is None:
            try:
                self._handler = interruptible(self._connect, self._connect_timeout_s())
            except NoAnswer as e:
                raise RendezvousError(no_answer_line(self.rdzv, e.seconds)) from None
        return interruptible(lambda: self._next_round(restart_count, spent))

    def changed(self) -> bool:
        """Nodes wait to join (dynamic backends), another node moved on (static), or another
        node ended the job (closed): the next round tells which."""
        if self._handler is None:
            return False
        try:
            if self.rdzv.backend == "static":
                waiting = self._stored_generation() > self._generation
            else:
                waiting = self._handler.num_nodes_waiting() > 0 or self._handler.is_closed()
        except Exception:
            # The backend is gone (c10d: the node hosting the store ended or died). Once that is
            # sure, re-form: the next round then fails with a line saying so.
            self._poll_failures += 1
            return self._poll_failures >= GONE_AFTER_FAILED_POLLS
        self._poll_failures = 0
        return waiting

    def finish(self, succeeded: bool) -> None:
        """Success: wait until every node of the round is done (exit barrier), then close the
        rendezvous. Failure (the job's budget is spent): close it so the others stop waiting."""
        if self._handler is None:
            return
        if succeeded:
            with stop_signals() as stops:
                self._exit_barrier(stops)
        try:
            self._handler.shutdown()
        except Exception:  # the store's host may be gone already: the job is over anyway
            pass

    def leave(self) -> None:
        """Interrupted: never close the rendezvous (the others may go on without this node);
        stop this node's heartbeats, so no thread of torch's is busy when the agent exits."""
        stop = getattr(self._handler, "_stop_heartbeats", None)
        if callable(stop):
            stop()

    # -- one round -------------------------------------------------------------------------

    def _next_round(self, restart_count: int, spent: int) -> Round:
        assert self._handler is not None
        with explained(self.rdzv, self._joined, rejoin=self._store is not None, backend=self.backend):
            info = self._handler.next_rendezvous()
            group_rank, nodes = info.rank, info.world_size
            store = self._namespace(info.store)
            me = NodeInfo(self.plan.nproc, self.plan.role, restart_count, spent)
            store.set(f"node/{group_rank}", json.dumps(asdict(me)))
            if group_rank == 0:
                addr, port = self._master_addr(), self._serve_workers()
                if self.rdzv.backend in DYNAMIC:
                    self.backend.publish_master(info, addr, port)
                store.set("master", json.dumps([addr, port]))
            infos, (addr, port) = self._read_round(store, nodes)
        # Keep the round's own store alive too: etcd's is a Python object that the prefixed one
        # only points to (once collected, every call through the prefix fails).
        self._round_store, self._store, self._world = info.store, store, nodes
        return Round(layout_for(group_rank, infos), addr, int(port), max(n.restart_count for n in infos),
                     nodes=nodes, spent=max(n.spent for n in infos), agent_store=True)

    def _serve_workers(self) -> int:
        """Group rank 0 hosts a fresh store for this round's workers on a free port (the previous
        round's closes: its workers are gone). Every rank connects to a store that is already up,
        instead of racing the workers' rank 0 and paying the client's reconnect backoff."""
        self._worker_store = None
        self._worker_store, port = self.backend.serve_workers()
        return port

    def _connect(self) -> Any:
        """The handler; c10d connects to (or hosts) its store here, etcd checks the server."""
        with explained(self.rdzv, lambda: None, backend=self.backend):
            return self.backend.connect()

    def _connect_timeout_s(self) -> float:
        """A store that accepts connections but never answers (another program on the port)
        hangs torch's client past its own read timeout: give up a little after it."""
        return math.ceil(float(self.rdzv.settings.get("read_timeout") or 60)) + CONNECT_SLACK_S

    def _namespace(self, store: Any) -> Any:
        if self.rdzv.backend != "static":
            return self.backend.prefix("erun", store)
        self._base = store
        self._generation = self._next_generation(store)
        return self.backend.prefix(f"erun/{self._generation}", store)

    def _next_generation(self, store: Any) -> int:
        """Join the newest generation, or start the next one (then the others see `changed()`)."""
        stored = self._stored_generation(store)
        if stored > self._generation:
            return stored
        expected = "" if self._generation < 0 else str(self._generation)
        won = store.compare_set("erun/generation", expected, str(self._generation + 1))
        return int(won)

    def _stored_generation(self, store: Any = None) -> int:
        store = store or self._base
        if store is None or not store.check(["erun/generation"]):
            return -1
        return int(store.get("erun/generation"))

    def _read_round(self, store: Any, nodes: int) -> tuple[list[NodeInfo], list[Any]]:
        keys = [f"node/{rank}" for rank in range(nodes)] + ["master"]
        try:
            store.wait(keys, timedelta(seconds=EXCHANGE_TIMEOUT_S))
        except Exception as e:
            missing = [k for k in keys if not _has(store, k)]
            raise RendezvousError(
                f"erun: error: the round of rendezvous '{self.rdzv.id}' formed with {nodes} nodes, but "
                f"{', '.join(missing) or 'some'} did not report within {EXCHANGE_TIMEOUT_S:g} s "
                f"(a node died?): {first_line(e)}") from None
        infos = [NodeInfo(**json.loads(store.get(k))) for k in keys[:-1]]
        return infos, json.loads(store.get("master"))

    def _master_addr(self) -> str:
        """This node's address for the workers (group rank 0 serves their store): static: node
        0's endpoint host; else the `local_addr` setting, or this host's FQDN (as torchrun)."""
        if self.rdzv.backend == "static":
            return self.rdzv.endpoint.rsplit(":", 1)[0]
        return str(self.rdzv.settings.get("local_addr") or socket.getfqdn())

    def _joined(self) -> int | None:
        """Nodes in the rendezvous when it timed out (this one included), if torch tells."""
        state = getattr(getattr(self._handler, "_state_holder", None), "state", None)
        if state is None:
            return None
        return len(state.participants) + len(state.wait_list) + 1

    # -- the end ---------------------------------------------------------------------------

    def _exit_barrier(self, stops: list[int]) -> None:
        """Every node of the last round checks in; stop waiting when all did, when a node waits
        for a new round (it will not check in), on a stop signal, or after the timeout."""
        store = self._store
        if store is None:
            return
        timeout = float(self.rdzv.settings.get("exit_barrier_timeout", EXIT_BARRIER_TIMEOUT_S))
        deadline = time.monotonic() + timeout
        arrived = _try_add(store, 1)
        checked_in, failures = arrived is not None, 0
        while arrived is None or arrived < self._world:
            if stops or time.monotonic() > deadline or self.changed():
                return
            time.sleep(BARRIER_POLL_S)
            arrived = _try_add(store, 0 if checked_in else 1)
            checked_in = checked_in or arrived is not None
            failures = failures + 1 if arrived is None else 0
            if failures >= GONE_AFTER_FAILED_POLLS:  # the store's host finished first: all are done
                return


def _try_add(store: Any, amount: int) -> int | None:
    """The exit count after adding `amount`, or None when the store did not answer."""
    try:
        return int(store.add("exit", amount))
    except Exception:
        return None


def _has(store: Any, key: str) -> bool:
    try:
        return bool(store.check([key]))
    except Exception:
        return False


def sync_interval(rdzv: RdzvPlan) -> float:
    """How often a waiting node re-reads the rendezvous state: the `sync_interval` setting, else
    0.1 s for up to 10 nodes, growing with max nodes to torch's own 1 s at 100 nodes, so the
    backend never serves more reads per second than with torch's default at scale."""
    value = rdzv.settings.get("sync_interval")
    if value is not None:
        return float(value)
    return min(TORCH_SYNC_S, max(MIN_SYNC_S, rdzv.max_nodes / 100))


# -- errors: a handler's exceptions as one line that says what to do ---------------------------------


@contextmanager
def explained(rdzv: RdzvPlan, joined: Callable[[], int | None], rejoin: bool = False,
              backend: Backend | None = None) -> Iterator[None]:
    """Turn a handler's exceptions into `RendezvousError`/`ConfigError` lines."""
    timeouts = backend.timeout_errors if backend else ()
    closed = backend.closed_errors if backend else ()
    try:
        yield
    except (RendezvousError, ConfigError, Interrupted):
        raise
    except timeouts:
        raise RendezvousError(timeout_line(rdzv, joined())) from None
    except closed:
        raise RendezvousError(
            f"erun: error: rendezvous '{rdzv.id}' ({where(rdzv)}) is closed: the job already ended "
            f"on another node; start a new job with a new rdzv.id") from None
    except ModuleNotFoundError as e:
        raise ConfigError("rdzv.backend", f"is {rdzv.backend}, which needs the `{e.name}` module",
                          "pip install python-etcd (or erun's `etcd` extra)") from None
    except ValueError as e:
        raise ConfigError("rdzv", f"is not valid for the {rdzv.backend} backend: {e}",
                          "check rdzv.endpoint and rdzv.settings") from None
    except Exception as e:
        raise RendezvousError(lost_line(rdzv, e) if rejoin else failure_line(rdzv, e)) from e
