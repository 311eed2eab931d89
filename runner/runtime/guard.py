"""The orphan guard: a forked sentinel that kills every worker tree if the agent dies.

Workers die with the agent through PR_SET_PDEATHSIG, but their children do not. The guard is
forked before any worker starts, in its own session (a Ctrl-C or a `kill -- -PGID` aimed at
erun does not reach it), and blocks reading a pipe whose only writer is the agent. The agent
tells it each worker's process group as it starts. When the pipe closes (the agent exited, or
was SIGKILLed: the kernel closes its end either way) the guard SIGKILLs every group it was
told about and every process carrying the job token, then exits.
"""

from __future__ import annotations

import os
import signal

from runner.runtime import processes


class OrphanGuard:
    """The agent's side of the guard: `watch(pgid)` per worker, `close()` at the end."""

    def __init__(self, token: str) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the guard
            os.close(write_fd)
            _guard_main(read_fd, token)  # never returns
        os.close(read_fd)
        os.set_inheritable(write_fd, False)
        self.pid = pid
        self._write_fd: int | None = write_fd

    def watch(self, pgid: int) -> None:
        if self._write_fd is not None:
            os.write(self._write_fd, f"{pgid}\n".encode())

    def close(self) -> None:
        """Release the guard: it sweeps whatever is left, then exits. Reaps it."""
        if self._write_fd is None:
            return
        os.close(self._write_fd)
        self._write_fd = None
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _guard_main(read_fd: int, token: str) -> None:
    try:
        os.setsid()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_IGN)
        _close_other_fds(read_fd)
        groups = _read_until_eof(read_fd)
        for pgid in groups:
            processes.signal_group(pgid, signal.SIGKILL)
        for _ in range(3):  # again, for a child forked while we swept
            if not processes.kill_marked(token):
                break
    finally:
        os._exit(0)


def _read_until_eof(read_fd: int) -> set[int]:
    groups: set[int] = set()
    buffer = b""
    while chunk := os.read(read_fd, 4096):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        groups.update(int(line) for line in lines if line)
    return groups


def _close_other_fds(keep: int) -> None:
    """Drop the agent's terminal, pipes and sockets: the guard holds nothing open but its pipe."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, keep)
    os.closerange(keep + 1, 4096)
