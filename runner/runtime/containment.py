"""Membership a process cannot shed: a cgroup per job, the agent as child subreaper, the token.

A worker's descendants can leave its process group (setsid) and scrub their environment
(`env -i`), escaping both the group signal and the token sweep. Two mechanisms hold them, as
systemd, Slurm and Kubernetes do, each where this host allows it:

- **cgroup** (v2; root, or a delegated subtree): the agent moves itself into a cgroup of its
  own before the first worker starts, so every descendant is born inside it; at the end of
  each attempt everything in it but the agent and the spares is killed, and if the agent dies,
  the orphan guard (which stays outside) kills the whole cgroup and removes it.
- **subreaper** (PR_SET_CHILD_SUBREAPER): orphaned descendants are re-parented to the agent
  instead of init; at the end of each attempt the agent kills and reaps the ones it did not
  start. It holds them only while the agent lives.
- **token**: ERUN_JOB_TOKEN in every worker's environment, swept from /proc (always on).

`Containment.mechanisms` says which were in force; the agent records it in events.jsonl.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import time
from collections.abc import Iterable
from pathlib import Path

_PR_SET_CHILD_SUBREAPER = 36
CGROUP_PREFIX = "erun-"
# Kill rounds: a process may fork while the previous round ran.
SWEEP_ROUNDS = 3


class Containment:
    """The job's cgroup (if one could be made) and the subreaper flag, for one agent."""

    def __init__(self, token: str) -> None:
        # Children this process already had (an embedding program's): not the job's.
        self._before = {pid for pid, _ in _children()}
        self.subreaper = _set_subreaper(True)
        self.cgroup: Path | None = None
        self.home: Path | None = None
        found = _own_cgroup()
        if found is not None:
            self.home = found
            self.cgroup = _enter(found / f"{CGROUP_PREFIX}{token[:16]}")

    @property
    def mechanisms(self) -> list[str]:
        return [m for m, on in (("cgroup", self.cgroup), ("subreaper", self.subreaper)) if on] + ["token"]

    def sweep(self, known_children: Iterable[int]) -> list[int]:
        """Kill what escaped the workers' groups: every process in the cgroup but this one and
        `known_children` (spares, the guard), and adopted orphans; reap the adopted."""
        keep = {os.getpid(), *known_children, *self._before}
        killed: list[int] = []
        for _ in range(SWEEP_ROUNDS):
            found = [p for p in self._members() + adopted_children(keep) if p not in keep]
            if not found:
                break
            killed += [p for p in found if _kill(p)]
        reap_adopted(keep)
        return sorted(set(killed))

    def close(self, known_children: Iterable[int]) -> None:
        """End of the job: kill what is left, leave the cgroup, remove it, stop adopting."""
        keep = {*known_children, *self._before}
        self.sweep(keep)
        if self.cgroup is not None and self.home is not None:
            _move_self(self.home)
            kill_cgroup(self.cgroup)
            self.cgroup = None
        if self.subreaper:
            _set_subreaper(False)
            reap_adopted(keep | {os.getpid()})

    def _members(self) -> list[int]:
        return cgroup_pids(self.cgroup) if self.cgroup is not None else []


def kill_cgroup(cgroup: Path, timeout_s: float = 5.0) -> None:
    """SIGKILL everything in `cgroup` and remove it (the guard calls this if the agent died)."""
    try:
        (cgroup / "cgroup.kill").write_text("1")
    except FileNotFoundError:  # already gone
        return
    except OSError:  # kernels before 5.14: one by one
        for _ in range(SWEEP_ROUNDS):
            for pid in cgroup_pids(cgroup):
                _kill(pid)
    _wait_empty(cgroup, timeout_s)
    try:
        cgroup.rmdir()
    except OSError:  # gone, or one in uninterruptible sleep holds it: nothing more to do
        pass


def cgroup_pids(cgroup: Path) -> list[int]:
    try:
        return [int(line) for line in (cgroup / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def adopted_children(known: set[int]) -> list[int]:
    """Live children of this process that it did not start (orphans re-parented to it)."""
    return [pid for pid, state in _children() if state != "Z" and pid not in known]


def reap_adopted(known: set[int]) -> None:
    """Reap zombie children this process did not start (never a Popen's: it reaps its own)."""
    for pid, state in _children():
        if state == "Z" and pid not in known:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _children() -> list[tuple[int, str]]:
    """(pid, state letter) of this process's children: the kernel's list of each of its
    threads' children (/proc/self/task/TID/children), else every process's parent in /proc."""
    listed = _listed_children()
    names = [str(pid) for pid in listed] if listed is not None else os.listdir("/proc")
    me, found = os.getpid(), []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == me:  # still ours: not a pid reused since the list was read
            found.append((int(name), fields[0]))
    return found


def _listed_children() -> set[int] | None:
    """The pids in /proc/self/task/*/children (a child is listed under the thread that forked
    it; an adopted orphan under the thread that reaps it): one read a thread instead of one for
    every process. None where the kernel has no such file (CONFIG_PROC_CHILDREN off)."""
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    pids: set[int] = set()
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.update(int(p) for p in f.read().split())
        except FileNotFoundError:  # a thread that ended meanwhile; the main thread's: no such file
            if tid == str(os.getpid()):
                return None
        except (OSError, ValueError):
            return None
    return pids


def _own_cgroup() -> Path | None:
    """This process's cgroup v2 folder, if cgroup2 is mounted (unified or hybrid layout)."""
    mount = _cgroup2_mount()
    if mount is None:
        return None
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    path = next((line[3:] for line in lines if line.startswith("0::")), None)
    if path is None or path.endswith("(deleted)"):
        return None
    return mount / path.lstrip("/")


def _cgroup2_mount() -> Path | None:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            return Path(left.split()[4])
    return None


def _enter(cgroup: Path) -> Path | None:
    """Create `cgroup` and move this process into it; None where that is not allowed."""
    try:
        cgroup.mkdir()
    except OSError:
        return None
    if _move_self(cgroup):
        return cgroup
    try:
        cgroup.rmdir()
    except OSError:
        pass
    return None


def _move_self(cgroup: Path) -> bool:
    try:
        (cgroup / "cgroup.procs").write_text(str(os.getpid()))
        return True
    except OSError:
        return False


def _wait_empty(cgroup: Path, timeout_s: float) -> None:
    """Until "populated 0" in cgroup.events: the kernel notifies each change (POLLPRI)."""
    try:
        fd = os.open(cgroup / "cgroup.events", os.O_RDONLY)
    except OSError:
        return
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI | select.POLLERR)
        deadline = time.monotonic() + timeout_s
        while b"populated 0" not in os.pread(fd, 4096, 0):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            poller.poll(left * 1000)
    except OSError:
        return
    finally:
        os.close(fd)


def _set_subreaper(on: bool) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False
