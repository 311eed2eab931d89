"""Standby agents: interpreters a sweep starts ahead, with erun's agent imported, each becoming
the agent of the next point that starts (`python -m runner run-plan PLAN`).

A point's agent is a fresh interpreter that imports erun's supervisor (about 0.2 s of a busy
core) before it starts the point's workers; on a sweep of short points that import sits
between one point's end and the next one's start, on every slot. A standby is a warm spare
(`runner/worker/spare.py`, `runner.runtime.spares`) of the sweep's own interpreter: spawned as
a point's agent is (its own session, PR_SET_PDEATHSIG, output pipes) with the sweep's
environment, it imports the agent's modules and waits. When a point starts, the sweep hands it
the agent's command line, environment and working directory, and it runs `runner` as
`python -m runner run-plan PLAN` would (sys.argv, sys.orig_argv, sys.path[0], `__main__`).

Only erun's agents start this way, never a process that runs user code (a Hydra task function's
point): the agent's workers are fresh interpreters, so what user code sees does not change. A
point whose environment differs from the sweep's in what an interpreter reads as it starts
(`STARTUP_NAMES`, `STARTUP_PREFIXES`: PYTHON*, locale, PATH, HOME, the dynamic linker) gets a
fresh interpreter, as does a point whose standby died. What differs from a fresh agent: its
process's /proc/PID/cmdline (the spare's), and its imports happened with the sweep's environment.

    (none) --fill--> WAITING --take--> a point's agent
                        └──close (the sweep ends)──> killed and reaped

The first one starts with erun itself (`early`), when the command line is a sweep on erun's
launcher: it imports while Hydra composes the sweep (one core's work, the other core is free),
and the sweep takes it over (`adopt`), so the first point's agent is ready when it starts.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from runner.runtime import processes
from runner.runtime.spares import Spare, start_spare

# What the agent (`python -m runner run-plan`) imports before it reads its plan.
AGENT_MODULES = ("runner.cli", "runner.runtime.agent", "runner.plan", "json", "uuid")
# Environment variables an interpreter (or erun's agent as it imports) reads as it starts.
STARTUP_NAMES = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "GLIBC_TUNABLES"})
STARTUP_PREFIXES = ("PYTHON", "LC_", "LD_", "MALLOC_")


class StandbyAgents:
    """Up to `size` standby agents for a sweep's points, started with its environment in `cwd`."""

    def __init__(self, environ: Mapping[str, str], cwd: str, size: int) -> None:
        self.environ, self.cwd, self.size = dict(environ), cwd, size
        self._waiting: list[Spare] = []

    def missing(self, wanted: int) -> int:
        """How many more would make `min(wanted, size)` wait."""
        return max(0, min(wanted, self.size) - len(self._waiting))

    def fill(self, wanted: int) -> None:
        """Start standbys until `min(wanted, size)` wait (a failed start leaves fewer: points
        then start fresh interpreters)."""
        while len(self._waiting) < min(wanted, self.size):
            try:
                self._waiting.append(start_spare([sys.executable], AGENT_MODULES, self.environ, self.cwd))
            except Exception:  # noqa: BLE001 - the point's own spawn reports the cause
                self.size = len(self._waiting)  # no more tries: the points start fresh agents
                return

    def take(self, argv: Sequence[str], env: Mapping[str, str], cwd: str) -> processes.Process | None:
        """A standby now running `argv` (an agent's command line, this interpreter first) with
        `env` in `cwd`; None: start the agent fresh."""
        if not self._waiting or not argv or argv[0] != sys.executable or cwd != self.cwd:
            return None
        if not same_startup(self.environ, env):
            return None
        standby = self._waiting.pop(0)
        if standby.hand_over(argv, env, cwd):
            return standby.process
        standby.discard()
        return None

    def pids(self) -> list[int]:
        return [s.process.pid for s in self._waiting]

    def close(self) -> None:
        """Kill and reap every standby not taken."""
        waiting, self._waiting = self._waiting, []
        for standby in waiting:
            standby.close()


def startup_relevant(name: str) -> bool:
    return name in STARTUP_NAMES or name.startswith(STARTUP_PREFIXES)


def same_startup(started_with: Mapping[str, str], env: Mapping[str, str]) -> bool:
    """Whether an interpreter started with `started_with` would have started as one with `env`."""
    names = {n for n in (*started_with, *env) if startup_relevant(n)}
    return all(started_with.get(n) == env.get(n) for n in names)


_early: StandbyAgents | None = None  # started with erun, not yet taken over by a sweep


@contextmanager
def early(environ: Mapping[str, str], cwd: str, wanted: bool) -> Iterator[None]:
    """While it lasts, one standby started now waits for the sweep to take it over (`adopt`);
    killed at the end if none did (the command was not a sweep after all, or it failed)."""
    global _early
    if wanted:
        _early = StandbyAgents(environ, cwd, size=1)
        _early.fill(1)
    try:
        yield
    finally:
        if _early is not None:
            _early.close()
            _early = None


def adopt(environ: Mapping[str, str], cwd: str, size: int) -> StandbyAgents:
    """A sweep's standby agents: up to `size`, starting with the one started with erun when it
    was started for this environment and folder."""
    global _early
    pool = StandbyAgents(environ, cwd, size)
    started, _early = _early, None
    if started is not None:
        if started.cwd == cwd and same_startup(started.environ, environ) and size > 0:
            pool._waiting, started._waiting = started._waiting, []
        started.close()
    return pool

