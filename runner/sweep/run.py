"""Running a sweep: every point is one process, side by side on the node's slots: an erun job's
agent (`python -m runner run-plan`, `runner.sweep.agents`) or a Hydra task function's own
process (`runner.sweep.tasks`); each point's `PointWork` says what to start and how it ended.

Points run as separate processes, never threads: each agent installs signal handlers and forks
its own orphan guard. One event loop, as the agent's: a pidfd per point's process (readable when
it exits), its stdout and stderr pipes, and the signal inbox; nothing polls.

Point lifecycle:

    PENDING ──its slots are free──> RUNNING ──agent exits──> SUCCEEDED | FAILED | INTERRUPTED
       └──the sweep is stopped first (a signal, fail_fast)──> NOT_STARTED

Starting fast: a point's agent is a standby interpreter when one waits (`runner.sweep.standby`).
0.25 s after the last start (its agent has started its workers), work ahead is done, one piece
between events: what can wait (`later`), then standby agents for the points to come, then the
points next in line are prepared (`PointWork.ready`), so a point whose slots come free starts
without waiting for an interpreter or its own preparation.

Stopping: SIGINT/SIGTERM/SIGHUP to erun go to every running point's agent (each stops its
workers with its own grace); points not started stay so; after the longest grace plus a margin,
agents still alive get SIGKILL (their guards then kill their workers). A second Ctrl-C is
forwarded too: agents kill their workers at once. SIGUSR1/SIGUSR2 are forwarded, nothing stops.

Console: every line a point's agent writes is written whole, prefixed with the point's label
(`[lr=0.1,nproc=2][0]: ...`), so points never interleave within a line; the agent's own output
also goes, unprefixed, to the point's run_dir/console.log.
"""

from __future__ import annotations

import os
import selectors
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from runner.errors import ErunError
from runner.runtime import processes
from runner.runtime.logs import ConsoleLines
from runner.runtime.signals import FORWARD_SIGNALS, STOP_SIGNALS, SignalInbox
from runner.sweep.points import PointResult, PointState, PointWork, SweepPoint, outcome_of
from runner.sweep.slots import SlotKind, SlotPool, first_fit
from runner.sweep.standby import StandbyAgents
from runner.words import display_path

PointHook = Callable[[PointResult], None]
# After the longest stop grace of the running points: how long agents get to finish stopping.
STOP_MARGIN_S = 5.0
READ_SIZE = 65536
# This long after the last point started (its agent has started its workers), work ahead is
# done, one piece at a time between events: `SweepRun.later`, standby agents, then preparing
# the points next in line, whose start then waits for nothing.
AHEAD_AFTER_S = 0.25


@dataclass
class RunningPoint:
    """A point whose agent runs: the process, its console log and half-read lines."""

    result: PointResult
    process: processes.Process
    log: BinaryIO | None
    grace_s: float
    lines: dict[int, ConsoleLines] = field(default_factory=dict)  # per pipe: its half-read line

    @property
    def label(self) -> bytes:
        return self.result.point.label.encode()


@dataclass
class Streams:
    """Where prefixed point output goes (erun's stdout and stderr)."""

    out: BinaryIO = field(default_factory=lambda: sys.stdout.buffer)
    err: BinaryIO = field(default_factory=lambda: sys.stderr.buffer)

    def note(self, text: str) -> None:
        self.err.write(f"erun: {text}\n".encode())
        self.err.flush()


class SweepRun:
    """Runs the points on the pool: `SweepRun(...).run()` returns every point's result and the
    signal that stopped the sweep (None when it ran to its end)."""

    def __init__(self, points: Sequence[SweepPoint], pool: SlotPool, environ: Mapping[str, str],
                 cwd: Path, fail_fast: bool = False, streams: Streams | None = None,
                 on_start: PointHook | None = None, on_end: PointHook | None = None,
                 standby: StandbyAgents | None = None, later: Sequence[Callable[[], None]] = ()) -> None:
        self.pool = pool
        self.standby = standby  # agents started ahead (None: every point's process starts fresh)
        self.later = list(later)  # what need not delay a start: done once the points have started
        self._last_start = 0.0  # time.monotonic() of the last start
        self._not_ahead: set[int] = set()  # id() of the points whose preparation ahead failed
        self.on_start, self.on_end = on_start, on_end  # told when a point's process starts, ends
        self.environ = dict(environ)
        self.cwd = cwd
        self.fail_fast = fail_fast
        self.streams = streams or Streams()
        self.results = [PointResult(p) for p in points]
        self.pending = [r for r in self.results if r.point.work is not None]
        for r in self.results:
            if r.point.work is None:
                r.state = PointState.SKIPPED
                r.note = "succeeded earlier"
                outcome_of(r)
        self.running: dict[int, RunningPoint] = {}  # by pid
        self.stop_signal: int | None = None  # the signal that stopped the sweep
        self._stopping = False
        self._kill_at: float | None = None
        self._selector = selectors.DefaultSelector()
        self._inbox = SignalInbox()

    def run(self) -> tuple[list[PointResult], int | None]:
        self._inbox.install()
        self._selector.register(self._inbox.fileno(), selectors.EVENT_READ, None)
        try:
            while True:
                if not self._stopping:
                    self._start_what_fits()
                if not self.running:
                    break
                due = self._ahead_due()
                self._wait(due)
                if due is not None and self._ahead_due() == 0.0:
                    self._work_ahead()
        finally:
            if self.standby is not None:
                self.standby.close()
            self._kill_all()
            self._inbox.uninstall()
            self._selector.close()
        for r in self.pending:
            r.state = PointState.NOT_STARTED
        while self.later:  # not done ahead: points too short, or none started
            self.later.pop(0)()
        return self.results, self.stop_signal

    # -- starting --------------------------------------------------------------------------

    def _free(self) -> list[str]:
        busy = {s for rp in self.running.values() for s in rp.result.slots}
        return [s for s in self.pool.ids if s not in busy]

    def _start_what_fits(self) -> None:
        demands = [(i, r.point.nproc) for i, r in enumerate(self.pending)]
        starts = first_fit(self._free(), demands)
        chosen = {i for i, _ in starts}
        ready = [(self.pending[i], slots) for i, slots in starts]
        self.pending = [r for i, r in enumerate(self.pending) if i not in chosen]
        for result, slots in ready:
            self._start(result, slots)

    def _pending_agents(self) -> int:
        """Points still to start whose process may be a standby agent."""
        return sum(1 for r in self.pending if r.point.work is not None and not r.point.work.user_code)

    def _standby_missing(self) -> int:
        """How many more standby agents the points still to start could take (up to the pool's limit)."""
        return 0 if self.standby is None else self.standby.missing(self._pending_agents())

    def _start(self, result: PointResult, slots: tuple[str, ...]) -> None:
        """PENDING -> RUNNING (or FAILED when its process cannot even be started)."""
        work = result.point.work
        assert work is not None
        result.slots, result.start = slots, time.time()
        try:
            argv = work.command(slots, self.pool.kind is SlotKind.GPU)  # first: it may prepare the point
            env = {**self.environ, **self.pool.environ(slots, work.nproc, self.environ), **work.environ()}
            log = work.open_log()  # closed when it ends
        except (OSError, ErunError) as e:
            self._not_started(result, e)
            return
        try:
            process = self._warm(work, argv, env) or processes.spawn(argv, env, str(self.cwd))
        except ErunError as e:
            if log is not None:
                log.close()
            self._not_started(result, e)
            return
        result.state = PointState.RUNNING
        self._last_start = time.monotonic()
        running = RunningPoint(result, process, log, work.grace_s)
        self.running[process.pid] = running
        self._selector.register(process.pidfd, selectors.EVENT_READ, ("exit", running))
        self._selector.register(process.stdout_fd, selectors.EVENT_READ, ("out", running))
        self._selector.register(process.stderr_fd, selectors.EVENT_READ, ("err", running))
        self.streams.note(f"point {result.point.index} {result.point.label} started on "
                          f"{self.pool.describe(slots)}: {display_path(work.run_dir, self.cwd)}")
        if self.on_start is not None:
            self.on_start(result)

    def _warm(self, work: PointWork, argv: list[str], env: dict[str, str]) -> processes.Process | None:
        """A standby agent, now running `argv`; None: start it fresh."""
        if self.standby is None or work.user_code:
            return None
        return self.standby.take(argv, env, str(self.cwd))

    def _not_started(self, result: PointResult, error: Exception) -> None:
        """PENDING -> FAILED: its record or its agent could not even be started."""
        result.state, result.end, result.note = PointState.FAILED, time.time(), f"not started: {error}"
        self.streams.note(f"point {result.point.index} {result.point.label} could not start: {error}")
        self._failed()

    # -- the loop --------------------------------------------------------------------------

    def _ahead_due(self) -> float | None:
        """In how many seconds work ahead is due (0: now); None: there is none."""
        if self._stopping or not (self.later or self._standby_missing() or self._next_unprepared()):
            return None
        return max(0.0, self._last_start + AHEAD_AFTER_S - time.monotonic())

    def _work_ahead(self) -> None:
        """One piece: what was left for later, else standby agents (their imports then compete
        with no starting point for the cores), else preparing the next point in line."""
        if self.later:
            self.later.pop(0)()
        elif self.standby is not None and self._standby_missing():
            self.standby.fill(self._pending_agents())
        elif (work := self._next_unprepared()) is not None:
            try:
                work.ready()
            except (OSError, ErunError):  # its start tries again, and says why it cannot start
                self._not_ahead.add(id(work))

    def _next_unprepared(self) -> PointWork | None:
        """The first pending point not yet prepared, if it is among those that take the running
        points' slots when they end (one per running point)."""
        for r in self.pending[:len(self.running)]:
            work = r.point.work
            if work is not None and not work.is_ready and id(work) not in self._not_ahead:
                return work
        return None

    def _wait(self, due_s: float | None = None) -> None:
        """Handle what happens next (a point's output or end, a signal), waiting `due_s` seconds
        at most (None: until something happens)."""
        timeout = None if self._kill_at is None else max(0.0, self._kill_at - time.monotonic())
        if due_s is not None:
            timeout = due_s if timeout is None else min(timeout, due_s)
        events = self._selector.select(timeout)
        if not events and self._kill_at is not None and time.monotonic() >= self._kill_at:
            self._kill_all()
            self._kill_at = None
        for key, _ in events:
            if key.data is None:
                self._on_signals(self._inbox.drain())
                continue
            what, running = key.data
            if running.process.pid not in self.running:
                continue  # ended earlier in this batch of events
            if what == "exit":
                self._on_exit(running)
            else:
                self._read(running, int(key.fd))

    def _on_signals(self, signums: list[int]) -> None:
        for signum in signums:
            if signum in FORWARD_SIGNALS:
                self._signal_all(signum)
            elif signum in STOP_SIGNALS:
                if self.stop_signal is None:
                    self.stop_signal = signum
                    self.streams.note(f"{signal.Signals(signum).name}: stopping {len(self.running)} "
                                      f"running point(s); {len(self.pending)} not started")
                self._stop(signum)

    def _stop(self, signum: int) -> None:
        """Forward a stop to every running agent; points not started stay so."""
        if not self._stopping:
            self._stopping = True
            grace = max((rp.grace_s for rp in self.running.values()), default=0.0)
            self._kill_at = time.monotonic() + grace + STOP_MARGIN_S
        self._signal_all(signum)

    def _failed(self) -> None:
        if self.fail_fast and not self._stopping:
            self.streams.note(f"fail_fast: stopping {len(self.running)} running point(s); "
                              f"{len(self.pending)} not started")
            self._stop(signal.SIGTERM)

    def _signal_all(self, signum: int) -> None:
        for pid, running in self.running.items():
            assert running.result.point.work is not None
            running.result.point.work.signal(pid, signum)

    def _kill_all(self) -> None:
        """SIGKILL every point still running (an agent's orphan guard kills its workers) and reap it."""
        for pid, running in list(self.running.items()):
            assert running.result.point.work is not None
            running.result.point.work.signal(pid, signal.SIGKILL)
            running.process.popen.wait()
            self._on_exit(running)

    # -- a point's output and end ----------------------------------------------------------

    def _read(self, running: RunningPoint, fd: int, drain: bool = False) -> bool:
        """Copy a chunk of what the pipe holds (all of it when draining); False at its end (the
        pipe is then closed). One chunk at a time, so a chatty point cannot starve the others."""
        while True:
            try:
                chunk = os.read(fd, READ_SIZE)
            except BlockingIOError:
                return True
            except OSError:
                chunk = b""
            if not chunk:
                self._flush_partial(running, fd)
                self._selector.unregister(fd)
                running.process.closed_fds.add(fd)
                os.close(fd)
                return False
            if running.log is not None:
                running.log.write(chunk)
            self._write_lines(running, fd, running.lines.setdefault(fd, ConsoleLines()).feed(chunk))
            if not drain:
                return True

    def _write_lines(self, running: RunningPoint, fd: int, lines: list[bytes]) -> None:
        """Console lines of the point's pipe `fd`, labelled (a line without a newline comes in
        pieces of runner.runtime.logs.LINE_MAX: linear time, bounded memory, as for ranks)."""
        if lines:
            stream = self.streams.out if fd == running.process.stdout_fd else self.streams.err
            stream.write(b"".join(prefixed(running.label, line) for line in lines))
            stream.flush()

    def _flush_partial(self, running: RunningPoint, fd: int) -> None:
        rest = running.lines.pop(fd, ConsoleLines()).flush()
        if rest is not None:
            self._write_lines(running, fd, [rest])

    def _on_exit(self, running: RunningPoint) -> None:
        """RUNNING -> SUCCEEDED | FAILED | INTERRUPTED: the agent has exited."""
        process, result = running.process, running.result
        code = process.popen.wait()
        for fd in (process.stdout_fd, process.stderr_fd):
            # What is there now (a guard may hold the pipe open), unless the pipe has ended.
            if fd not in process.closed_fds and self._read(running, fd, drain=True):
                self._flush_partial(running, fd)
                self._selector.unregister(fd)
        self._selector.unregister(process.pidfd)
        process.close()
        if running.log is not None:
            running.log.close()
        del self.running[process.pid]
        result.end, result.exit_code = time.time(), code
        assert result.point.work is not None
        result.state = result.point.work.ended(code)
        outcome_of(result)
        self.streams.note(f"point {result.point.index} {result.point.label} {result.state.value} "
                          f"in {result.duration or 0:.1f} s (exit {code})")
        if self.on_end is not None:
            self.on_end(result)
        if not result.state.ok:
            self._failed()


def prefixed(label: bytes, line: bytes) -> bytes:
    """`[lr=0.1][0]: text` for a rank's line, `[lr=0.1] erun: ...` for the agent's own."""
    return label + (b"" if line.startswith(b"[") else b" ") + line + b"\n"

