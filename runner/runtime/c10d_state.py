"""The c10d rendezvous state and its rules, as torch 2.13 keeps them, without torch.

torch's dynamic rendezvous (torch/distributed/elastic/rendezvous/dynamic_rendezvous.py) keeps
one state object per run in the store, under `torch.rendezvous.<run_id>`, base64 of its pickle;
every node changes it only by compare-and-set against the copy it read. This module reads and
writes that same state (the pickle names torch's classes, so a node running torch's own handler
and an erun agent can be in one rendezvous) and decides, as torch's ops do, what a node does
next. No torch import: the pickle is read with an unpickler that only accepts these classes.

A round: nodes join `participants` (or `wait_list` once the round is complete, or
`redundancy_list` when it is full); `min_nodes` participants start the last call
(`deadline`), `max_nodes` or the deadline complete it (ranks by sorted node); a node missing
`keep_alive_max_attempt` heartbeats is dropped; `closed` ends the run for everyone.
"""

from __future__ import annotations

import enum
import io
import pickle
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

TORCH_MODULE = "torch.distributed.elastic.rendezvous.dynamic_rendezvous"
# How long past its deadline a node still takes itself out of the round (torch's rollback).
ROLLBACK_S = 5.0


@dataclass(eq=True, order=True, frozen=True)
class NodeDesc:
    """torch's `_NodeDesc`: a node of the rendezvous (its address, pid and a local counter)."""

    addr: str
    pid: int
    local_id: int

    def __repr__(self) -> str:
        return f"{self.addr}_{self.pid}_{self.local_id}"


class RdzvState:
    """torch's `_RendezvousState`, field for field."""

    def __init__(self) -> None:
        self.round = 0
        self.complete = False
        self.deadline: datetime | None = None
        self.closed = False
        self.participants: dict[NodeDesc, int] = {}
        self.wait_list: set[NodeDesc] = set()
        self.redundancy_list: set[NodeDesc] = set()
        self.last_heartbeats: dict[NodeDesc, datetime] = {}


@dataclass(frozen=True)
class Settings:
    """torch's `RendezvousSettings` with its `RendezvousTimeout` (seconds)."""

    run_id: str
    min_nodes: int
    max_nodes: int
    join_s: float = 600.0
    last_call_s: float = 30.0
    close_s: float = 30.0
    heartbeat_s: float = 5.0
    keep_alive_interval_s: float = 5.0
    keep_alive_max_attempt: int = 3


# -- the pickle -------------------------------------------------------------------------------

_TORCH_NAMES: dict[type, str] = {RdzvState: "_RendezvousState", NodeDesc: "_NodeDesc"}
_ALLOWED = {
    (TORCH_MODULE, "_RendezvousState"): RdzvState,
    (TORCH_MODULE, "_NodeDesc"): NodeDesc,
    ("datetime", "datetime"): datetime,
    ("datetime", "timezone"): timezone,
    ("datetime", "timedelta"): timedelta,
}


# The Python pickler (not the C one): its save_global can be told torch's names for erun's classes.
_PythonPickler: Any = pickle._Pickler  # type: ignore[attr-defined]


class _Pickler(_PythonPickler):  # type: ignore[misc]
    def save_global(self, obj: Any, name: str | None = None) -> None:
        torch_name = _TORCH_NAMES.get(obj)
        if torch_name is None:
            super().save_global(obj, name)
            return
        self.save(TORCH_MODULE)
        self.save(torch_name)
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if (module, name) == ("copyreg", "_reconstructor"):
            return pickle.Unpickler.find_class(self, module, name)
        raise pickle.UnpicklingError(f"the rendezvous state names {module}.{name}")


def dump_state(state: RdzvState) -> bytes:
    """The state as torch pickles it (protocol 4, torch's class names)."""
    out = io.BytesIO()
    _Pickler(out, protocol=4).dump(state)
    return out.getvalue()


def load_state(data: bytes) -> RdzvState:
    state = _Unpickler(io.BytesIO(data)).load()
    if not isinstance(state, RdzvState):
        raise pickle.UnpicklingError("the rendezvous state is not a rendezvous state")
    return state


# -- the rules --------------------------------------------------------------------------------


class Action(enum.Enum):
    """What a node does next (torch's `_Action`)."""

    KEEP_ALIVE = 1
    ADD_TO_PARTICIPANTS = 2
    ADD_TO_WAIT_LIST = 3
    ADD_TO_REDUNDANCY_LIST = 4
    REMOVE_FROM_PARTICIPANTS = 5
    REMOVE_FROM_WAIT_LIST = 6
    REMOVE_FROM_REDUNDANCY_LIST = 7
    MARK_RENDEZVOUS_COMPLETE = 8
    MARK_RENDEZVOUS_CLOSED = 9
    SYNC = 10
    ERROR_CLOSED = 11
    ERROR_TIMEOUT = 12
    FINISH = 13
    GRACEFUL_EXIT = 14  # torch raises RendezvousGracefulExitError from inside its op


def now() -> datetime:
    return datetime.now(timezone.utc)


def should_keep_alive(node: NodeDesc, state: RdzvState, s: Settings) -> bool:
    last = state.last_heartbeats.get(node)
    return last is not None and last <= now() - timedelta(seconds=s.keep_alive_interval_s)


def exit_op(node: NodeDesc, state: RdzvState, s: Settings, late: bool) -> Action:
    """Leave the previous round before joining the next."""
    if node in state.participants:
        return Action.ERROR_TIMEOUT if late else Action.REMOVE_FROM_PARTICIPANTS
    return Action.FINISH


def join_op(node: NodeDesc, state: RdzvState, s: Settings, overdue_s: float) -> Action:
    """torch's `_RendezvousJoinOp`: `overdue_s` is how far past its join deadline the node is
    (negative: not yet)."""
    if state.closed:
        return Action.GRACEFUL_EXIT if node in state.redundancy_list else Action.ERROR_CLOSED
    if node in state.redundancy_list:
        if len(state.participants) == s.max_nodes:
            return Action.KEEP_ALIVE if should_keep_alive(node, state, s) else Action.SYNC
        return Action.REMOVE_FROM_REDUNDANCY_LIST
    is_participant = node in state.participants
    if state.complete and is_participant:
        return Action.FINISH
    if overdue_s > 0:
        if overdue_s <= ROLLBACK_S:
            if is_participant:
                return Action.REMOVE_FROM_PARTICIPANTS
            if node in state.wait_list:
                return Action.REMOVE_FROM_WAIT_LIST
        return Action.ERROR_TIMEOUT
    if state.complete:
        if len(state.participants) < s.max_nodes:
            if node not in state.wait_list:
                return Action.ADD_TO_WAIT_LIST
        elif node not in state.redundancy_list and node not in state.wait_list:
            return Action.ADD_TO_REDUNDANCY_LIST
    elif is_participant:
        if (s.min_nodes <= len(state.participants) <= s.max_nodes and state.deadline is not None
                and state.deadline < now()):
            return Action.MARK_RENDEZVOUS_COMPLETE
    else:
        return Action.ADD_TO_PARTICIPANTS
    return Action.KEEP_ALIVE if should_keep_alive(node, state, s) else Action.SYNC


def close_op(node: NodeDesc, state: RdzvState, s: Settings, late: bool) -> Action:
    if state.closed:
        return Action.FINISH
    return Action.ERROR_TIMEOUT if late else Action.MARK_RENDEZVOUS_CLOSED


def keep_alive_op(node: NodeDesc, state: RdzvState, s: Settings, late: bool) -> Action:
    if should_keep_alive(node, state, s):
        return Action.ERROR_TIMEOUT if late else Action.KEEP_ALIVE
    return Action.FINISH


def apply(action: Action, node: NodeDesc, state: RdzvState, s: Settings) -> None:
    """Change this node's copy of the state as torch's op executor does for `action`."""
    if action == Action.KEEP_ALIVE:
        state.last_heartbeats[node] = now()
    elif action == Action.ADD_TO_PARTICIPANTS:
        state.wait_list.discard(node)
        state.participants[node] = 0
        state.last_heartbeats[node] = now()
        if len(state.participants) == s.min_nodes:  # the last call starts
            state.deadline = now() + timedelta(seconds=s.last_call_s)
        if len(state.participants) == s.max_nodes:
            _complete(state)
    elif action == Action.ADD_TO_WAIT_LIST:
        state.redundancy_list.discard(node)
        state.wait_list.add(node)
        state.last_heartbeats[node] = now()
    elif action == Action.ADD_TO_REDUNDANCY_LIST:
        state.redundancy_list.add(node)
        state.last_heartbeats[node] = now()
    elif action == Action.REMOVE_FROM_PARTICIPANTS:
        del state.participants[node]
        state.last_heartbeats.pop(node, None)
        _participant_left(state, s)
    elif action == Action.REMOVE_FROM_WAIT_LIST:
        state.wait_list.discard(node)
        state.last_heartbeats.pop(node, None)
    elif action == Action.REMOVE_FROM_REDUNDANCY_LIST:
        state.redundancy_list.discard(node)
        state.last_heartbeats.pop(node, None)
    elif action == Action.MARK_RENDEZVOUS_COMPLETE:
        _complete(state)
    elif action == Action.MARK_RENDEZVOUS_CLOSED:
        state.closed = True


def _complete(state: RdzvState) -> None:
    """The round forms: ranks in sorted node order."""
    state.complete, state.deadline = True, None
    for rank, node in enumerate(sorted(state.participants)):
        state.participants[node] = rank


def _participant_left(state: RdzvState, s: Settings) -> None:
    """A complete round with nobody left starts the next round; an incomplete one below
    min_nodes loses its last call."""
    if state.complete:
        if not state.participants:
            state.complete = False
            state.round += 1
    elif len(state.participants) < s.min_nodes:
        state.deadline = None


def drop_dead(state: RdzvState, s: Settings) -> list[NodeDesc]:
    """Remove the nodes whose last heartbeat is older than the keep-alive allows (torch's
    `_sanitize`), returning them."""
    expire = now() - timedelta(seconds=s.keep_alive_interval_s * s.keep_alive_max_attempt)
    dead = [node for node, beat in state.last_heartbeats.items() if beat < expire]
    removed = False
    for node in dead:
        del state.last_heartbeats[node]
        removed = state.participants.pop(node, None) is not None or removed
        state.wait_list.discard(node)
        state.redundancy_list.discard(node)
    if removed:
        _participant_left(state, s)
    return dead
