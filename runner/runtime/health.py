"""Health watchdogs: hung (heartbeat, torch file timers), stalled, and over the memory limit.

`HealthMonitor.check()` runs on the agent's loop at most every `interval_s` (and when a file
timer is due). It only reads: heartbeat file times, process trees (psutil) and the last time
each rank wrote output; it returns verdicts and the agent stops the group. Each verdict says
which rank, which watchdog and why, in words a person can act on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner.plan import HealthPlan
from runner.runtime.filetimer import FileTimerServer

if TYPE_CHECKING:
    import psutil  # imported where trees are sampled: a job without watchdogs never loads it


class HealthReason:
    HEARTBEAT = "heartbeat_timeout"
    TIMER = "timer_expired"
    STALLED = "stalled"
    MEMORY = "memory_limit"


@dataclass(frozen=True)
class Verdict:
    """A watchdog's finding about one rank."""

    rank: int
    reason: str
    message: str
    time: float = field(default_factory=time.time)


@dataclass
class WatchedRank:
    """What the monitor needs of a running rank (the agent fills it from its Worker)."""

    rank: int
    pid: int
    heartbeat_file: str
    last_output: float  # time.monotonic() of the rank's last output byte


@dataclass
class _CpuTrack:
    """The last CPU total seen for a rank's tree, and when it last grew."""

    seen: float = -1.0
    changed_at: float = field(default_factory=time.monotonic)


class HealthMonitor:
    """Watchdogs for one attempt."""

    def __init__(self, plan: HealthPlan, timers: FileTimerServer | None) -> None:
        self.plan = plan
        self.timers = timers
        self._next_sample = time.monotonic() + plan.interval_s
        self._cpu: dict[int, _CpuTrack] = {}

    @property
    def active(self) -> bool:
        return self.plan.heartbeat_timeout_s > 0 or self.plan.samples_trees or self.timers is not None

    def next_due(self) -> float | None:
        """monotonic() time of the next check, or None when nothing is watched."""
        if not self.active:
            return None
        due = self._next_sample
        expiry = self.timers.next_expiry() if self.timers else None
        if expiry is not None:
            due = min(due, time.monotonic() + max(0.0, expiry - time.time()))
        return due

    def check(self, ranks: Sequence[WatchedRank]) -> list[Verdict]:
        now = time.monotonic()
        verdicts = self._timer_verdicts(ranks)
        if now >= self._next_sample:
            self._next_sample = now + self.plan.interval_s
            for watched in ranks:
                verdict = self._heartbeat(watched) or self._tree(watched, now)
                if verdict:
                    verdicts.append(verdict)
        return verdicts

    def _timer_verdicts(self, ranks: Sequence[WatchedRank]) -> list[Verdict]:
        if self.timers is None:
            return []
        verdicts = []
        for timer in self.timers.expired(time.time()):
            watched = _owner(ranks, timer.pid)
            if watched is not None:
                verdicts.append(Verdict(watched.rank, HealthReason.TIMER,
                                        f"torch file timer `{timer.scope_id}` expired (pid {timer.pid})"))
        return verdicts

    def _heartbeat(self, watched: WatchedRank) -> Verdict | None:
        limit = self.plan.heartbeat_timeout_s
        if limit <= 0:
            return None
        try:
            silent = time.time() - os.stat(watched.heartbeat_file).st_mtime
        except FileNotFoundError:
            return None  # never beat: not watched
        if silent <= limit:
            return None
        return Verdict(watched.rank, HealthReason.HEARTBEAT,
                       f"no heartbeat for {silent:.1f} s (health.heartbeat_timeout_s={limit:g})")

    def _tree(self, watched: WatchedRank, now: float) -> Verdict | None:
        if not self.plan.samples_trees:
            return None
        procs = _tree(watched.pid)
        if not procs:
            return None
        return self._memory(watched, procs) or self._stall(watched, procs, now)

    def _memory(self, watched: WatchedRank, procs: list[psutil.Process]) -> Verdict | None:
        limit = self.plan.memory_limit_mb
        if limit <= 0:
            return None
        rss_mb = sum(_safe(lambda p=p: p.memory_info().rss, 0) for p in procs) / 2**20
        if rss_mb <= limit:
            return None
        return Verdict(watched.rank, HealthReason.MEMORY,
                       f"RSS of its process tree is {rss_mb:.0f} MiB, over health.memory_limit_mb={limit:g}")

    def _stall(self, watched: WatchedRank, procs: list[psutil.Process], now: float) -> Verdict | None:
        limit = self.plan.stall_timeout_s
        if limit <= 0:
            return None
        cpu = sum(_safe(lambda p=p: sum(p.cpu_times()[:2]), 0.0) for p in procs)
        track = self._cpu.setdefault(watched.rank, _CpuTrack())
        if cpu - track.seen > 0.01:
            track.seen, track.changed_at = cpu, now
        idle = now - max(track.changed_at, watched.last_output)
        if idle <= limit:
            return None
        return Verdict(watched.rank, HealthReason.STALLED,
                       f"no CPU use and no output for {idle:.1f} s (health.stall_timeout_s={limit:g})")


def _tree(pid: int) -> list[psutil.Process]:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _owner(ranks: Sequence[WatchedRank], pid: int) -> WatchedRank | None:
    """The rank whose tree holds pid (a timer client may be a worker's child)."""
    for watched in ranks:
        if watched.pid == pid or pid in {p.pid for p in _tree(watched.pid)}:
            return watched
    return None


def _safe(read, default):  # type: ignore[no-untyped-def]
    import psutil

    try:
        return read()
    except psutil.Error:
        return default
