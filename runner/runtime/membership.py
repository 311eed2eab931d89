"""How this node learns who it runs with: the seam between the agent and rendezvous.

Before each attempt the agent asks `next_round()` for the group it belongs to (its node rank,
the rank layout, MASTER_ADDR/PORT and the job's restart count); while workers run it polls
`changed()` (nodes waiting to join) every `poll_interval_s`; at the end it calls `finish()`.
A single node needs none of torch's machinery: `Standalone` picks a free loopback port and is
alone. Multi-node rendezvous (torch's c10d, static, etcd backends) implements the same
protocol in `runner.runtime.rendezvous`; `runner.runtime.registry` chooses between them. This
interface imports no backend.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Protocol

from runner.plan import JobPlan
from runner.runtime.env import SINGLE_NODE, RankLayout


@dataclass(frozen=True)
class Round:
    """One formed group: where this node sits and how workers find each other."""

    layout: RankLayout
    master_addr: str
    master_port: int
    # The job's restart count for this round, the same on every node.
    restart_count: int
    # Nodes in the round (1 on a single node), for the log.
    nodes: int = 1
    # Restarts the job has charged to its budget so far (the most any node of the round saw):
    # the budget is the job's, not each node's.
    spent: int = 0
    # The agent of group rank 0 hosts a fresh store for this round's workers at MASTER_ADDR:PORT
    # (TORCHELASTIC_USE_AGENT_STORE=True); else the workers' rank 0 hosts it.
    agent_store: bool = False


class Interrupted(Exception):
    """A stop signal arrived while this node waited for its group (`next_round`)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum


class Membership(Protocol):
    """What the agent needs from rendezvous."""

    poll_interval_s: float | None

    def next_round(self, restart_count: int, spent: int = 0) -> Round:
        """Block until this node is part of a group; `restart_count` and `spent` (restarts
        charged to the budget) are this node's view. Raises `Interrupted` on a stop signal."""
        ...

    def changed(self) -> bool:
        """True when the group should re-form without a failure (nodes wait to join, another node
        restarted, or the job ended elsewhere)."""
        ...

    def finish(self, succeeded: bool) -> None:
        """The job is over for this node: wait for the others (exit barrier), then close."""
        ...

    def leave(self) -> None:
        """This agent was interrupted: release resources without ending the job for others."""
        ...


class Standalone:
    """A single node: no rendezvous service, a fresh free port for every attempt."""

    poll_interval_s: float | None = None

    def __init__(self, plan: JobPlan) -> None:
        self._addr = plan.master_addr

    def next_round(self, restart_count: int, spent: int = 0) -> Round:
        return Round(SINGLE_NODE, self._addr, free_port(), restart_count, spent=spent)

    def changed(self) -> bool:
        return False

    def finish(self, succeeded: bool) -> None:
        pass

    def leave(self) -> None:
        pass


def free_port(host: str = "") -> int:
    """A port nobody listens on now; every attempt gets a new one, so no stale store keys."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
