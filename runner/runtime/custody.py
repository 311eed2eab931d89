"""Custody of a job's processes: nothing the job started outlives it, however it ends.

Three mechanisms, strongest first, and the agent's view of them in one object:
- the job's cgroup and the child-subreaper flag (`runner.runtime.containment`): a process
  cannot leave them, even with a new session and a scrubbed environment;
- the orphan guard (`runner.runtime.guard`), a sentinel outside the cgroup that kills every
  worker group, the cgroup and every token carrier when the agent dies, however it dies. When
  the guard itself dies, `guard_died` starts another at once and tells it every group;
- the job token (ERUN_JOB_TOKEN) that every descendant inherits, swept as the last fallback.
The agent registers `fileno()` (the guard's pidfd) in its selector, with this object as data.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from runner.runtime.containment import Containment
from runner.runtime.guard import OrphanGuard
from runner.state import ExitInfo

Say = Callable[..., None]


class Custody:
    """Start with `start()` (before any worker), `watch(pgid)` each worker or spare, `sweep(...)`
    after each attempt, `close(...)` at the end."""

    def __init__(self, token: str, event: Say, note: Say) -> None:
        self.token = token
        self._event = event  # write an event: event(kind, **fields)
        self._note = note  # tell people and the record: note(message, **fields)
        self.guard: OrphanGuard | None = None
        self.containment: Containment | None = None

    def start(self) -> None:
        """The guard first (forked outside the job's cgroup), then the cgroup and the subreaper."""
        self.guard = OrphanGuard(self.token)
        self._event("guard", pid=self.guard.pid)
        held = self.containment = Containment(self.token)
        if held.cgroup is not None and held.home is not None:
            self.guard.hold(held.cgroup, held.home)
        self._event("containment", mechanisms=held.mechanisms,
                    cgroup=None if held.cgroup is None else str(held.cgroup))

    def fileno(self) -> int:
        """The guard's pidfd: readable when the guard dies."""
        assert self.guard is not None
        return self.guard.fileno()

    def watch(self, pgid: int) -> None:
        assert self.guard is not None
        self.guard.watch(pgid)

    def guard_died(self) -> None:
        """The guard's pidfd is readable: start another at once and tell it every worker group,
        or a SIGKILLed agent would leave the workers' children behind."""
        assert self.guard is not None
        dead = self.guard.pid
        status = self.guard.replace()
        how = ExitInfo.from_returncode(os.waitstatus_to_exitcode(status)).describe()
        self._note(f"the orphan guard (pid {dead}) died ({how}); started a new one (pid {self.guard.pid}) "
                   f"watching {len(self.guard.groups)} process group(s)", pid=self.guard.pid, dead_pid=dead)

    def sweep(self, known_children: Iterable[int]) -> list[int]:
        """Kill what escaped into the cgroup or back to the subreaper (not `known_children`)."""
        if self.containment is None:
            return []
        return self.containment.sweep(self._known(known_children))

    def close(self, known_children: Iterable[int]) -> None:
        """The job is over: empty and leave the cgroup, then release the guard (it sweeps too)."""
        if self.containment is not None:
            self.containment.close(self._known(known_children))
        if self.guard is not None:
            self.guard.close()

    def _known(self, children: Iterable[int]) -> list[int]:
        """The agent's own children (guard, spares, workers): never swept as escaped, never
        reaped behind their Popen's back."""
        return [*children, *([self.guard.pid] if self.guard else [])]
