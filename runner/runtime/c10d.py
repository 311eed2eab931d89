"""torch's c10d rendezvous without importing torch: the handler an agent talks to.

`C10dRendezvous` does what torch's `DynamicRendezvousHandler` over its `C10dRendezvousBackend`
does, on the same store, keys and state (runner.runtime.c10d_state): the node whose address
matches the endpoint's host hosts the store (`StoreServer`, torch's TCPStore protocol), every
node reads and compare-and-sets `torch.rendezvous.<run_id>` until its round is complete,
heartbeats every `keep_alive_interval`, and gets the round's store as torch's prefix
`torch.rendezvous.<run_id>.<round>`. So an agent meets others at torch's prices minus the
torch import (over a second of CPU per agent), and tests prove the two handlers interoperate.

Only the TCP store is served here; `store_type=file` and the other backends use torch's own
(runner.runtime.rendezvous), as does every backend when ERUN_TORCH_RENDEZVOUS=1.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import pickle
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from runner.plan import JobPlan, RdzvPlan
from runner.runtime import c10d_state as rules
from runner.runtime.c10d_state import Action, NodeDesc, RdzvState, Settings
from runner.runtime.rendezvous_wait import PACER
from runner.runtime.rounds import RoundMembership, sync_interval
from runner.runtime.store import PrefixStore, StoreClient
from runner.runtime.store_server import StoreServer

NULL_SENTINEL = "Y2FuaW1hZGFt"  # torch's "no state yet"
DEFAULT_PORT = 29400
TORCH_VAR = "ERUN_TORCH_RENDEZVOUS"  # "1": torch's handler for c10d too


class RendezvousTimeout(Exception):
    """torch's RendezvousTimeoutError."""


class RendezvousClosed(Exception):
    """torch's RendezvousClosedError."""


class RendezvousGracefulExit(Exception):
    """torch's RendezvousGracefulExitError: the run closed while this node was a spare."""


class RendezvousStateError(Exception):
    """The state in the store is not one torch or erun wrote."""


@dataclass(frozen=True)
class RoundInfo:
    """What `next_rendezvous` gives: the round's store, this node's rank and the node count."""

    store: PrefixStore
    rank: int
    world_size: int
    bootstrap_store_info: None = None


def native_possible(settings: Mapping[str, object]) -> bool:
    """The native handler serves a TCP store; a file store (or torch forced) goes to torch."""
    store_type = str(settings.get("store_type", "tcp")).strip().lower()
    return store_type == "tcp" and os.environ.get(TORCH_VAR) != "1"


def matches_this_host(host: str) -> bool:
    """torch's `_matches_machine_hostname`: localhost, a loopback address, this host's name or
    one of its addresses."""
    if host == "localhost":
        return True
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    try:
        wanted = {str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except (ValueError, OSError):
        return False
    names = {socket.gethostname(), socket.getfqdn()}
    if host in names:
        return True
    mine: set[str] = set()
    for name in names:
        try:
            mine |= {str(info[4][0]) for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)}
        except OSError:
            continue
    return bool(wanted & mine)


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """torch's `parse_rendezvous_endpoint`: host[:port]; an IPv6 host in brackets."""
    endpoint = endpoint.strip()
    if not endpoint:
        return "localhost", DEFAULT_PORT
    if endpoint[0] == "[" and endpoint[-1] == "]":
        host, rest = endpoint, []
    else:
        host, *rest = endpoint.rsplit(":", 1)
    if len(host) > 1 and host[0] == "[" and host[-1] == "]":
        host = host[1:-1]
    if not rest:
        return host, DEFAULT_PORT
    port = int(rest[0]) if rest[0].isdigit() else -1
    if not 0 <= port < 2**16:
        raise ValueError(f"the port number of the rendezvous endpoint '{endpoint}' is invalid")
    return host, port


class StoreLink:
    """This node's connection to the rendezvous store, hosting it when the endpoint names this
    host and its port is free (else another agent here hosts it: connect)."""

    def __init__(self, host: str, port: int, read_timeout_s: float, is_host: bool | None) -> None:
        self.server: StoreServer | None = None
        hosting = matches_this_host(host) if is_host is None else is_host
        if hosting:
            try:
                self.server = StoreServer(port)
            except OSError:
                if is_host:
                    raise
        self.client = StoreClient(host, port, timedelta(seconds=read_timeout_s))

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.close()


class StateHolder:
    """The state as last read from the store, and the token to change it (torch's
    `_BackendRendezvousStateHolder` over `C10dRendezvousBackend`)."""

    def __init__(self, store: StoreClient, settings: Settings, cache_s: float) -> None:
        self.store, self.settings, self.cache_s = store, settings, cache_s
        self.key = "torch.rendezvous." + settings.run_id
        self.state = RdzvState()
        self._token: bytes | None = None
        self._dirty = False
        self._synced_at = -1.0
        store.compare_set(self.key, "", NULL_SENTINEL)

    def mark_dirty(self) -> None:
        self._dirty = True

    def sync(self) -> bool | None:
        """Write this node's change (compare-and-set on the token) or re-read the state (at most
        every `cache_s`); True/False: the write won or lost, None: a read."""
        if self._dirty:
            expected = self._token.decode() if self._token else NULL_SENTINEL
            desired = base64.b64encode(rules.dump_state(self.state))
            stored = self.store.compare_set(self.key, expected, desired)
            has_set: bool | None = False
        else:
            if self.cache_s > 0 and self._synced_at >= max(time.monotonic() - self.cache_s, 0):
                return None
            stored, has_set = self.store.get(self.key), None
        mine = rules.dump_state(self.state) if self._dirty else None
        self.state, self._token = self._decode(stored)
        if has_set is False and mine is not None and self._token is not None:
            has_set = base64.b64decode(self._token) == mine
        self._dirty, self._synced_at = False, time.monotonic()
        rules.drop_dead(self.state, self.settings)
        return has_set

    def _decode(self, stored: bytes) -> tuple[RdzvState, bytes | None]:
        if stored == NULL_SENTINEL.encode():
            return RdzvState(), None
        try:
            return rules.load_state(base64.b64decode(stored, validate=True)), stored
        except (binascii.Error, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
            raise RendezvousStateError(f"the rendezvous state in the store is corrupt: {e}") from None


Op = Callable[[NodeDesc, RdzvState, Settings, bool], Action]


class C10dRendezvous:
    """torch's DynamicRendezvousHandler for the c10d backend, in erun's hands."""

    _local_ids = iter(range(1 << 62))

    def __init__(self, settings: Settings, endpoint: str, local_addr: str | None = None,
                 read_timeout_s: float = 60.0, is_host: bool | None = None, sync_s: float = 1.0) -> None:
        if settings.min_nodes < 1 or settings.max_nodes < settings.min_nodes:
            raise ValueError(f"nodes must be 1 <= min ({settings.min_nodes}) <= max ({settings.max_nodes})")
        self.settings = settings
        self.node = NodeDesc(local_addr or socket.getfqdn(), os.getpid(), next(self._local_ids))
        host, port = split_endpoint(endpoint)
        self.link = StoreLink(host, port, read_timeout_s, is_host)
        self._sync_s = sync_s
        self._state_holder = StateHolder(self.link.client, settings, cache_s=sync_s)
        self._lock = threading.Lock()
        self._beats: threading.Event | None = None

    # -- torch's handler API ----------------------------------------------------------------

    def next_rendezvous(self) -> RoundInfo:
        self._stop_heartbeats()
        if self._state_holder.state.round == 0:
            PACER((0.0, 0.3 * min(1.0, self._sync_s)))  # torch's skew before the first read
        deadline = time.monotonic() + self.settings.join_s
        self._run(rules.exit_op, deadline)
        self._run_join(deadline)
        self._start_heartbeats()
        state = self._state_holder.state
        prefix = f"torch.rendezvous.{self.settings.run_id}.{state.round}"
        store = PrefixStore(prefix, self.link.client)
        return RoundInfo(store, state.participants[self.node], len(state.participants))

    def num_nodes_waiting(self) -> int:
        with self._lock:
            self._state_holder.sync()
            return len(self._state_holder.state.wait_list)

    def is_closed(self) -> bool:
        with self._lock:
            self._state_holder.sync()
            return self._state_holder.state.closed

    def set_closed(self) -> None:
        with self._lock:
            self._run(rules.close_op, time.monotonic() + self.settings.close_s)

    def shutdown(self) -> bool:
        self._stop_heartbeats()
        try:
            self.set_closed()
            return True
        except (RendezvousTimeout, RendezvousClosed, ConnectionError, TimeoutError):
            return False

    def _stop_heartbeats(self) -> None:
        if self._beats is not None:
            self._beats.set()
            self._beats = None

    # -- the op loop --------------------------------------------------------------------------

    def _run(self, op: Op, deadline: float) -> None:
        """Read the state, decide, change it, write it back, until the op says FINISH."""
        while True:
            self._state_holder.sync()
            action = op(self.node, self._state_holder.state, self.settings, time.monotonic() > deadline)
            if self._act(action):
                return

    def _run_join(self, deadline: float) -> None:
        while True:
            self._state_holder.sync()
            overdue = time.monotonic() - deadline
            action = rules.join_op(self.node, self._state_holder.state, self.settings, overdue)
            if action == Action.REMOVE_FROM_REDUNDANCY_LIST:  # a spare that gets a seat: a new join deadline
                deadline = time.monotonic() + self.settings.join_s
            if self._act(action):
                return

    def _act(self, action: Action) -> bool:
        """Carry out one decision; True when the op is done."""
        if action == Action.FINISH:
            return True
        if action == Action.ERROR_CLOSED:
            raise RendezvousClosed(f"rendezvous '{self.settings.run_id}' is closed")
        if action == Action.GRACEFUL_EXIT:
            raise RendezvousGracefulExit(
                f"rendezvous '{self.settings.run_id}' closed while this node waited as a spare")
        if action == Action.ERROR_TIMEOUT:
            raise RendezvousTimeout(f"rendezvous '{self.settings.run_id}' timed out")
        if action == Action.SYNC:
            PACER(self._sync_s)  # torch: 1 s between reads; a stop signal cuts it short
            return False
        rules.apply(action, self.node, self._state_holder.state, self.settings)
        self._state_holder.mark_dirty()
        return False

    # -- heartbeats ---------------------------------------------------------------------------

    def _start_heartbeats(self) -> None:
        stop = threading.Event()
        self._beats = stop
        interval = self.settings.keep_alive_interval_s
        thread = threading.Thread(target=self._beat, args=(stop, interval), daemon=True,
                                  name=f"erun-rdzv-keepalive-{self.node.local_id}")
        thread.start()

    def _beat(self, stop: threading.Event, interval: float) -> None:
        while not stop.wait(interval):
            try:
                with self._lock:
                    if stop.is_set():
                        return
                    self._run(rules.keep_alive_op, time.monotonic() + self.settings.heartbeat_s)
            except Exception:  # noqa: BLE001 - torch logs a failed heartbeat and tries again next time
                continue


# -- erun's rounds over it -------------------------------------------------------------------------


def settings_of(rdzv: RdzvPlan) -> Settings:
    """torch's c10d settings from the plan (seconds; torch's defaults where unset)."""
    got = rdzv.settings

    def seconds(key: str, default: float) -> float:
        value = got.get(key)
        return default if value is None else float(value)  # type: ignore[arg-type]

    return Settings(rdzv.id, rdzv.min_nodes, rdzv.max_nodes, join_s=seconds("join_timeout", 600),
                    last_call_s=seconds("last_call_timeout", 30), close_s=seconds("close_timeout", 30),
                    heartbeat_s=seconds("heartbeat_timeout", 5),
                    keep_alive_interval_s=seconds("keep_alive_interval", 5),
                    keep_alive_max_attempt=int(seconds("keep_alive_max_attempt", 3)))


def _flag(value: object) -> bool | None:
    """torch's `get_as_bool`."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "t", "yes", "y"):
        return True
    if text in ("0", "false", "f", "no", "n"):
        return False
    raise ValueError("the rendezvous configuration option 'is_host' does not represent a valid boolean value")


class C10dBackend:
    """erun's c10d handler and stores (`runner.runtime.rounds.Backend`)."""

    timeout_errors: tuple[type[BaseException], ...] = (RendezvousTimeout,)
    closed_errors: tuple[type[BaseException], ...] = (RendezvousClosed, RendezvousGracefulExit)

    def __init__(self, rdzv: RdzvPlan) -> None:
        self.rdzv = rdzv

    def connect(self) -> C10dRendezvous:
        got = self.rdzv.settings
        read_timeout = float(got.get("read_timeout") or 60)  # type: ignore[arg-type]
        if read_timeout <= 0:
            raise ValueError("The read timeout must be a positive integer.")
        local_addr = got.get("local_addr")
        return C10dRendezvous(settings_of(self.rdzv), self.rdzv.endpoint,
                              local_addr=None if local_addr is None else str(local_addr),
                              read_timeout_s=read_timeout, is_host=_flag(got.get("is_host")),
                              sync_s=sync_interval(self.rdzv))

    def prefix(self, prefix: str, store: PrefixStore) -> PrefixStore:
        return PrefixStore(prefix, store)

    def serve_workers(self) -> tuple[StoreServer, int]:
        server = StoreServer(0)
        return server, server.port

    def publish_master(self, info: RoundInfo, addr: str, port: int) -> None:
        """What torch's group rank 0 writes in the round's store (RendezvousStoreInfo), so a
        node running torch's handler in the same rendezvous finds its master."""
        info.store.set("MASTER_ADDR", addr)
        info.store.set("MASTER_PORT", str(port))


class C10dMembership(RoundMembership):
    """erun's rounds over erun's c10d handler: a multi-node agent without torch."""

    def __init__(self, plan: JobPlan) -> None:
        super().__init__(plan, C10dBackend(plan.rdzv))
