"""Processes: spawn a worker in its own session, signal its group, find and kill stragglers.

Every worker:
- runs in its own session and process group (`start_new_session`), so a signal to the group
  reaches the worker and every child that did not leave the group;
- gets PR_SET_PDEATHSIG=SIGKILL, so it dies the moment the agent dies, however it dies. It is
  set by util-linux's `setpriv --pdeathsig KILL -- argv...` (which then execs the worker: same
  pid, same exit status), so Popen can use vfork: about 0.7 ms a worker instead of the 4-5 ms a
  fork of the agent costs with a preexec_fn. Without setpriv, a preexec_fn sets it. (An agent
  that dies between the fork and setpriv's prctl leaves the worker to the guard's token sweep.);
- carries ERUN_JOB_TOKEN in its environment, inherited by all its descendants: the agent and
  the orphan guard find children that escaped the group (setsid, daemonised) by reading
  /proc/PID/environ.
Exits are noticed through a pidfd (readable when the process ends): no polling.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runner.devices import FDS_PER_PIPED_WORKER, FDS_RESERVED, nofile_ceiling
from runner.errors import LaunchError
from runner.runtime.numa import format_ranges

_PR_SET_PDEATHSIG = 1
# After SIGKILL, how long to wait for the kernel to reap a process (one stuck in uninterruptible
# sleep may never go): stopping a worker or a spare is always bounded in time.
KILL_WAIT_S = 5.0
SETPRIV = shutil.which("setpriv")
PRLIMIT = shutil.which("prlimit")
TASKSET = shutil.which("taskset")
# The open-file limits the agent started with, when `raise_fd_limit` changed them: workers get
# these back, so user code sees the limits it would have seen without erun.
_saved_nofile: tuple[int, int] | None = None


def raise_fd_limit() -> None:
    """Raise the open-file soft limit to the hard limit: many workers need many descriptors
    here. Workers still start with the original limits (see `spawn`)."""
    global _saved_nofile
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = nofile_ceiling()
    if soft == resource.RLIM_INFINITY or soft >= target:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # not allowed here: the capacity check already used the hard limit
        return
    _saved_nofile = _saved_nofile or (soft, hard)


def pipes_fit(workers: int) -> bool:
    """Whether the open-file limit (as raised) holds pipes and open log files for `workers`;
    else each worker writes straight to its log files (`spawn(output=...)`), one descriptor each."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft == resource.RLIM_INFINITY or soft >= FDS_RESERVED + workers * FDS_PER_PIPED_WORKER


def _die_with_parent(parent_pid: int, nofile: tuple[int, int] | None = None,
                     cpus: frozenset[int] | None = None) -> None:
    """Runs in the child between fork and exec (single-threaded agent: safe)."""
    import ctypes

    if cpus:
        os.sched_setaffinity(0, cpus)
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the agent died before prctl took effect
        os._exit(1)
    if nofile is not None:
        resource.setrlimit(resource.RLIMIT_NOFILE, nofile)


def _findable(program: str, env: Mapping[str, str], cwd: str | None) -> bool:
    """Whether exec would find `program` (setpriv execs it: Popen would not see the error)."""
    if os.sep in program:
        return os.access(os.path.join(cwd or "", program), os.X_OK)
    return shutil.which(program, path=env.get("PATH", os.defpath)) is not None


@dataclass
class Process:
    """A live child process with its pidfd and output pipes."""

    popen: subprocess.Popen[bytes]
    pidfd: int
    stdout_fd: int
    stderr_fd: int
    closed_fds: set[int] = field(default_factory=set)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def reap(self) -> int | None:
        """The Popen return code once the process has ended (negative: killing signal)."""
        return self.popen.poll()

    def close(self) -> None:
        for fd in (self.pidfd, self.stdout_fd, self.stderr_fd):
            if fd >= 0 and fd not in self.closed_fds:
                self.closed_fds.add(fd)
                os.close(fd)


def spawn(argv: Sequence[str], env: Mapping[str, str], cwd: str | None,
          pass_fds: Sequence[int] = (), cpus: frozenset[int] | None = None,
          output: tuple[Path, Path, int] | None = None) -> Process:
    """Start a worker in its own session, output to pipes the agent reads (and `pass_fds` open),
    bound to `cpus` when given (numa_binding: set before the worker's first instruction, so
    every thread it starts inherits it). With `output` (stdout file, stderr file, mode), the
    worker appends to those files itself and the agent keeps no pipe (stdout_fd/stderr_fd -1)."""
    if output is not None:
        out_w, err_w = (_log_file(path, output[2]) for path in output[:2])
        out_r = err_r = -1
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
    parent = os.getpid()
    command: list[str] = list(argv)
    nofile = _saved_nofile
    preexec: Callable[[], None] | None = lambda: _die_with_parent(parent, nofile, cpus)  # noqa: E731
    vfork_ok = (nofile is None or PRLIMIT is not None) and (not cpus or TASKSET is not None)
    if SETPRIV is not None and argv and _findable(argv[0], env, cwd) and vfork_ok:
        # taskset then execs argv (it takes no `--`): bound before the worker's first instruction
        bind = [str(TASKSET), "--cpu-list", format_ranges(cpus)] if cpus else []
        command, preexec = [SETPRIV, "--pdeathsig", "KILL", "--", *bind, *argv], None
        if nofile is not None:  # the worker's open-file limits as they were before erun raised them
            command = [str(PRLIMIT), f"--nofile={nofile[0]}:{nofile[1]}", "--", *command]
    try:
        popen = subprocess.Popen(
            command, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=out_w, stderr=err_w, start_new_session=True, pass_fds=tuple(pass_fds),
            preexec_fn=preexec,
        )
    except OSError as e:
        for fd in (out_r, err_r):
            if fd >= 0:
                os.close(fd)
        raise LaunchError(f"cannot start `{argv[0]}`: {e.strerror}"
                          f"{f' (cwd {cwd})' if cwd else ''}") from None
    finally:
        os.close(out_w)
        os.close(err_w)
    for fd in (out_r, err_r):
        if fd >= 0:
            os.set_blocking(fd, False)
    return Process(popen, os.pidfd_open(popen.pid), out_r, err_r)


def _log_file(path: Path, mode: int) -> int:
    """A worker's log file, opened for appending; /dev/null when the disk refuses it (a full
    or deleted run directory must not stop the worker)."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, mode)
    except OSError:
        return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)


def bind_threads(pid: int, cpus: frozenset[int]) -> None:
    """Bind every thread of a running process (a warm spare handed a rank) to `cpus`."""
    for tid in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:  # the thread ended meanwhile
            pass


def signal_group(pid: int, signum: int) -> bool:
    """Signal the worker's process group (its pgid is its pid). False if it is gone."""
    try:
        os.killpg(pid, signum)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def marked_pids(token: str, exclude: Iterable[int] = ()) -> list[int]:
    """Live processes whose environment carries ERUN_JOB_TOKEN=token (zombies excluded)."""
    needle = f"\0ERUN_JOB_TOKEN={token}\0".encode()
    skip = set(exclude) | {os.getpid()}
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in skip:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                data = f.read()
        except OSError:  # gone, or a zombie with no environment
            continue
        if needle in b"\0" + data:
            found.append(int(name))
    return found


def kill_marked(token: str, signum: int = signal.SIGKILL, exclude: Iterable[int] = ()) -> list[int]:
    """Signal every process carrying the token; returns the pids signalled."""
    hit = []
    for pid in marked_pids(token, exclude):
        try:
            os.kill(pid, signum)
            hit.append(pid)
        except (ProcessLookupError, PermissionError):
            pass
    return hit
