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
from pathlib import Path

from runner.runtime import containment, processes


class OrphanGuard:
    """The agent's side of the guard: `watch(pgid)` per worker, `close()` at the end.

    `fileno()` is a pidfd of the guard, readable the moment it dies (a stray `kill -9`, the
    OOM killer): the agent watches it and calls `replace()`, so the job is never unguarded for
    longer than one turn of its loop. Writes to a dead guard are dropped, never raised: the
    replacement is told every group that still exists."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.groups: set[int] = set()
        # The job's cgroup, killed whole if the agent dies; `home`: where the guard lives.
        self.cgroup: Path | None = None
        self.home: Path | None = None
        self._start()

    def _start(self) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the guard
            os.close(write_fd)
            _guard_main(read_fd, self.token, self.home)  # never returns
        os.close(read_fd)
        os.set_inheritable(write_fd, False)
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self._write_fd: int | None = write_fd

    def fileno(self) -> int:
        return self.pidfd

    def watch(self, pgid: int) -> None:
        self.groups.add(pgid)
        self._tell([str(pgid)])

    def hold(self, cgroup: Path, home: Path) -> None:
        """Kill all of `cgroup` too if the agent dies (a guard forked later leaves it for `home`)."""
        self.cgroup, self.home = cgroup, home
        self._tell([str(cgroup)])

    def replace(self) -> int:
        """After the guard died: reap it, start a new one, tell it every group still alive.
        Returns the dead guard's wait status."""
        status = self._reap()
        self._close_fds()
        self.groups = {g for g in self.groups if processes.signal_group(g, 0)}
        self._start()
        self._tell([str(g) for g in sorted(self.groups)] + ([str(self.cgroup)] if self.cgroup else []))
        return status

    def close(self) -> None:
        """Release the guard: it sweeps whatever is left, then exits. Reaps it."""
        if self._write_fd is None:
            return
        self._close_fds()
        self._reap()

    def _tell(self, lines: list[str]) -> None:
        """Process groups (numbers) and the cgroup (a path), a line each."""
        data = b"".join(f"{line}\n".encode() for line in lines)
        while data and self._write_fd is not None:
            try:
                data = data[os.write(self._write_fd, data):]
            except BrokenPipeError:  # it died: its pidfd says so, and replace() retells all
                return

    def _reap(self) -> int:
        try:
            return os.waitpid(self.pid, 0)[1]
        except ChildProcessError:
            return 0

    def _close_fds(self) -> None:
        for fd in (self._write_fd, self.pidfd):
            if fd is not None and fd >= 0:
                os.close(fd)
        self._write_fd, self.pidfd = None, -1


def _guard_main(read_fd: int, token: str, home: Path | None) -> None:
    try:
        os.setsid()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_IGN)
        _close_other_fds(read_fd)
        if home is not None:  # forked inside the job's cgroup: killing it must not kill us
            try:
                (home / "cgroup.procs").write_text(str(os.getpid()))
            except OSError:
                pass  # still guards the groups and the token
        groups, cgroups = _read_until_eof(read_fd)
        for pgid in groups:
            processes.signal_group(pgid, signal.SIGKILL)
        for cgroup in cgroups:
            containment.kill_cgroup(cgroup)
        for _ in range(3):  # again, for a child forked while we swept
            if not processes.kill_marked(token):
                break
    finally:
        os._exit(0)


def _read_until_eof(read_fd: int) -> tuple[set[int], set[Path]]:
    groups: set[int] = set()
    cgroups: set[Path] = set()
    buffer = b""
    while chunk := os.read(read_fd, 4096):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.startswith(b"/"):
                cgroups.add(Path(line.decode()))
            elif line:
                groups.add(int(line))
    return groups, cgroups


def _close_other_fds(keep: int) -> None:
    """Drop the agent's terminal, pipes and sockets: the guard holds nothing open but its pipe."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, keep)
    # Past the soft limit too: the agent may have raised it for many workers.
    os.closerange(keep + 1, max(4096, _fd_limit()))


def _fd_limit() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 4096
