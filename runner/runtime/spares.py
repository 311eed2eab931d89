"""Warm spares: the next attempt's workers, started ahead with the slow imports done.

A cold restart pays, for every rank, an interpreter start and `import torch` (about a second
on two busy cores) before `init_process_group` can begin. While an attempt runs, the agent
fills a `SparePool`: one spare per local rank (`runner/spare.py`, run by path with the workers'
interpreter), spawned by `runner.runtime.processes` exactly like a worker (its own session,
PR_SET_PDEATHSIG, the job token, stdout/stderr pipes) with the environment the rank will have
in the next attempt, so that anything read at import time sees the same values. Each spare
imports `restart.prewarm.modules` and blocks on a pipe. Opt-in: with no modules (the default)
there are no spares, since a warm worker is not exactly a fresh interpreter
(docs/warm-restarts.md lists what differs).

When the next attempt starts, `take` hands the rank to its spare: the agent writes the rank's
argv, full environment and cwd to the pipe, and the spare becomes the worker (same process,
so the agent's pidfd, pipes and guard registration carry over). A spare that died, a message
that does not fit the pipe or an entrypoint that is not Python (`exec`) gives None: the rank
starts cold, as without spares. `close` kills the spares nobody took.

    (empty) --fill--> WAITING --take--> handed over (a worker now)
                         └──close / job ends──> killed and reaped
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from runner.plan import JobPlan
from runner.runtime import processes

SPARE_SCRIPT = str(Path(__file__).resolve().parents[1] / "worker" / "spare.py")
PIPE_SIZE = 1 << 16  # a pipe's default capacity
MAX_MESSAGE = 1 << 20  # the default /proc/sys/fs/pipe-max-size


class Spare:
    """One waiting interpreter and the write end of its control pipe."""

    def __init__(self, process: processes.Process, control_fd: int) -> None:
        self.process = process
        self.control_fd = control_fd

    def hand_over(self, argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> bool:
        """Tell the spare which worker to become (`argv`: its full command line, interpreter
        first). False if it is gone or the message cannot go."""
        if self.process.reap() is not None:
            return False
        message = json.dumps({"argv": worker_argv(argv), "orig_argv": list(argv), "env": dict(env),
                              "cwd": cwd}).encode()
        try:
            if len(message) > PIPE_SIZE:  # a huge environment: grow the pipe so one write fits
                fcntl.fcntl(self.control_fd, fcntl.F_SETPIPE_SZ, min(len(message), MAX_MESSAGE))
            os.set_blocking(self.control_fd, False)
            written = os.write(self.control_fd, message)
        except OSError:  # EPIPE: it died just now; EPERM/EBUSY: the pipe cannot grow
            return False
        finally:
            os.close(self.control_fd)
        return written == len(message)

    def close(self) -> None:
        """Not needed after all: end of file on its pipe, then killed and reaped."""
        os.close(self.control_fd)  # EOF: a spare that gets to read it exits on its own
        self.discard()

    def discard(self) -> None:
        """Kill it (its whole group) and reap it, waiting a bounded time (as for workers)."""
        processes.signal_group(self.process.pid, signal.SIGKILL)
        try:
            self.process.popen.wait(timeout=processes.KILL_WAIT_S)
        except subprocess.TimeoutExpired:  # uninterruptible sleep: the guard sweeps it later
            pass
        self.process.close()


class SparePool:
    """The spares for the next attempt, one per local rank."""

    def __init__(self, plan: JobPlan) -> None:
        self.plan = plan
        self._spares: dict[int, Spare] = {}

    @property
    def enabled(self) -> bool:
        return self.plan.warm_spares

    @property
    def filled(self) -> bool:
        return bool(self._spares)

    def pids(self) -> list[int]:
        return [s.process.pid for s in self._spares.values()]

    def fill(self, envs: Sequence[Mapping[str, str]]) -> list[int]:
        """Start one spare per local rank, `envs[local_rank]` its environment until handed over."""
        for local_rank, env in enumerate(envs):
            self._spares[local_rank] = start_spare([self.plan.entrypoint.python, "-u"],
                                                   self.plan.restart.prewarm.modules, env, self.plan.cwd)
        return self.pids()

    def take(self, local_rank: int, argv: Sequence[str], env: Mapping[str, str],
             cwd: str | None, cpus: frozenset[int] | None = None) -> processes.Process | None:
        """The spare of `local_rank`, now running `argv` (the full worker command line), bound to
        `cpus` (numa_binding) before it runs a line of it; None: start cold."""
        spare = self._spares.pop(local_rank, None)
        if spare is None:
            return None
        if cpus:
            processes.bind_threads(spare.process.pid, cpus)
        if spare.hand_over(argv, env, cwd):
            return spare.process
        spare.discard()
        return None

    def close(self) -> None:
        """Kill and reap every spare that was not taken."""
        spares, self._spares = list(self._spares.values()), {}
        for spare in spares:
            spare.close()


def start_spare(python: Sequence[str], modules: Sequence[str], env: Mapping[str, str],
                cwd: str | None) -> Spare:
    """A spare interpreter (`python`: the interpreter and its options) importing `modules`, then
    waiting for its command line: spawned as a worker is (`runner.runtime.processes.spawn`)."""
    read_fd, write_fd = os.pipe()
    try:
        process = processes.spawn([*python, SPARE_SCRIPT, str(read_fd), *modules], env, cwd,
                                  pass_fds=(read_fd,))
    except BaseException:
        os.close(write_fd)
        raise
    finally:
        os.close(read_fd)
    return Spare(process, write_fd)


def worker_argv(argv: Sequence[str]) -> list[str]:
    """`python -u script args` -> `[script, args]`; `python -u -m mod args` -> `[-m, mod, args]`."""
    rest = list(argv[1:])
    if rest and rest[0] == "-u":
        rest = rest[1:]
    return rest
