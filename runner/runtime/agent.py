"""The agent: launch this node's workers, watch them, stop and restart the group.

One thread, one event loop (runner.runtime.loop: a pidfd per worker, its pipes, the signal
inbox, the file-timer FIFO, the guard); nothing polls, except the health watchdogs and the
rendezvous on their own intervals. This module is the policy around it: rounds, attempts,
restart decisions, stops and the record. The agent never imports torch on a single node.

Job flow (one attempt after the other):

    next_round ──> attempt N: start group ──all ranks exit 0──> SUCCEEDED (exit 0)
                        │
                        ├──a rank fails / a watchdog trips──> stop the group
                        │        └──policy: restart (after its backoff)──> next_round
                        │        └──policy: give up──> FAILED (exit 1)
                        ├──nodes wait to join──> stop the group ──> next_round (no restart spent)
                        └──SIGINT/SIGTERM/SIGHUP──> stop the group ──> INTERRUPTED (exit 128+N)
"""

from __future__ import annotations

import dataclasses
import os
import resource
import signal
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import ExitStatus, LaunchError
from runner.paths import RunPaths
from runner.plan import JobPlan
from runner.record import writer as record
from runner.record.read import read_result
from runner.runtime import final_report as report
from runner.runtime import numa, processes, restart
from runner.runtime.console import Console, wants_panel
from runner.runtime.custody import Custody
from runner.runtime.env import AttemptContext, file_timers_enabled, omp_default
from runner.runtime.filetimer import FileTimerServer
from runner.runtime.health import HealthMonitor
from runner.runtime.keeper import RecordKeeper
from runner.runtime.loop import EventLoop
from runner.runtime.membership import Interrupted, Membership, Round
from runner.runtime.notes import Notes
from runner.runtime.processes import KILL_WAIT_S
from runner.runtime.registry import membership_for
from runner.runtime.signals import FORWARD_SIGNALS, STOP_SIGNALS
from runner.runtime.spares import SparePool
from runner.runtime.usage_error import usage_error
from runner.runtime.workers import Worker, WorkerGroup
from runner.state import AttemptOutcome, AttemptResult, JobState, RunResult, WorkerState, first_failure

if TYPE_CHECKING:
    from runner.runtime.panel import PanelSampler

PANEL_INTERVAL_S = 1.0


class Agent:
    """Runs a `JobPlan` on this node: `Agent(plan).run()` returns a `RunResult`."""

    def __init__(self, plan: JobPlan, membership: Membership | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        # What workers inherit (as with torchrun): the agent's environment when it was started.
        self.environ = dict(os.environ if environ is None else environ)
        self.plan = plan = plan.with_secrets(self.environ)  # a plan.json read back has them redacted
        self.membership = membership or membership_for(plan)
        self.token = uuid.uuid4().hex
        self.history: list[AttemptResult] = []
        # Running counts over `history`: each restart decision is O(1), however long the job.
        self._ledger = restart.RestartLedger(plan.restart)
        self._loop = EventLoop()
        self._paths: RunPaths | None = None
        self._events: record.EventLog | None = None
        self._notes: Notes | None = None
        self._cpus: dict[int, frozenset[int]] = {}  # numa_binding: local rank -> CPUs
        self._to_files = False  # no room for pipes under the open-file limit (runner.runtime.processes)
        self._custody = Custody(self.token, self._event, self._note)
        self._timers: FileTimerServer | None = None
        # A stop signal that arrived while a failed group was being stopped: it ends the job.
        self._interrupt: int | None = None
        self.console = Console(panel=wants_panel(plan.logs.panel))
        self._panel: PanelSampler | None = None  # psutil is loaded only for a panel
        self._started = time.time()
        self._spares = SparePool(plan)
        self._keeper = RecordKeeper(plan, self.console)

    # -- the job ---------------------------------------------------------------------------

    def run(self) -> RunResult:
        started = self._started = time.time()
        self._paths, self._events = self._keeper.open()
        self._keeper.started = started
        going_on = self._keeper.continuation
        record.record_start(self._events, self.plan, self.environ, going_on.segment)
        print(f"erun: run dir {self.plan.run_dir}", file=sys.stderr, flush=True)
        self._notes = Notes(self._events, self.console)
        if going_on.continues:  # a rerun, or a requeued Slurm job: the record goes on
            self._note(f"continuing the run in this directory: segment {going_on.segment}, from attempt "
                       f"{going_on.first_attempt} (restart count {going_on.restart_count})")
            self._keeper.summary(self._result(JobState.RUNNING, ExitStatus.SUCCESS))
        result = self._result(JobState.FAILED, ExitStatus.JOB_FAILED)
        try:
            result = self._supervised_run()
        finally:
            self._keeper.close(result)
            self.console.close()
        print(report.render(result, time.time() - started), *self._keeper.closing_lines(),
              sep="\n", file=sys.stderr, flush=True)
        return result

    def _supervised_run(self) -> RunResult:
        """Handlers and the guard exist before the first worker does, and outlive the last."""
        assert self._paths is not None
        processes.raise_fd_limit()  # up to five descriptors a worker (runner.devices.FDS_PER_PIPED_WORKER)
        if file_timers_enabled(self.plan, self.environ):
            self._timers = FileTimerServer(self._paths.timer_fifo)
        self._custody.start()  # last: `finally` leaves the cgroup
        self._loop.open(self._custody, self._timers)
        try:
            return self._run_attempts()
        finally:
            spares = self._spares.pids()
            self._spares.close()
            if self._timers is not None:
                self._timers.close()
            self._custody.close(spares)
            self._loop.close()

    def _run_attempts(self) -> RunResult:
        base_env = self.environ
        self._announce(base_env)
        # A continued run directory goes on counting (TORCHELASTIC_RESTART_COUNT, attempt_N/);
        # the restart budget is this segment's own.
        restart_count, spent = self._keeper.continuation.restart_count, 0
        first = self._keeper.continuation.first_attempt
        while True:
            try:
                group_round = self.membership.next_round(restart_count, spent)
            except Interrupted as stop:  # a stop signal while waiting for the other nodes
                self.membership.leave()
                return self._interrupted(stop.signum)
            restart_count, spent = group_round.restart_count, group_round.spent
            outcome = self._run_attempt(first + len(self.history), group_round, base_env)
            self.history.append(outcome.result)
            self._keeper.summary(self._result(JobState.RUNNING, ExitStatus.SUCCESS))
            if outcome.signal is not None:
                self.membership.leave()
                return self._interrupted(outcome.signal)
            if outcome.regroup:
                continue
            if outcome.succeeded:
                self.membership.finish(succeeded=True)
                return self._result(JobState.SUCCEEDED, ExitStatus.SUCCESS)
            decision = self._decide(outcome, spent)
            if not decision.restart:
                self.membership.finish(succeeded=False)
                return self._result(JobState.FAILED, ExitStatus.JOB_FAILED)
            signum = self._pause(decision.delay_s)
            if signum is not None:
                self.membership.leave()
                return self._interrupted(signum)
            restart_count, spent = restart_count + 1, decision.spent

    def _decide(self, outcome: AttemptOutcome, spent: int = 0) -> restart.RestartDecision:
        usage = usage_error(self.plan.restart, self.history)  # not worth a restart, whatever the budget
        decision = (restart.RestartDecision(False, usage) if usage else restart.decide(
            self.plan.restart, self.history, shared_spent=spent, ledger=self._ledger))
        cause = first_failure(outcome.result.failures)
        what = "the group failed"
        if cause is not None:
            what = f"rank {cause.rank} {cause.exit.describe()}" if cause.reason == "exit" else (
                f"rank {cause.rank}: {cause.message}")
        verb = "giving up"
        if decision.restart:
            verb = f"restarting in {decision.delay_s:.1f} s" if decision.delay_s else "restarting now"
        self._note(f"{what}; {verb} ({decision.reason})", decision="restart" if decision.restart else "stop",
                   reason=decision.reason, delay_s=round(decision.delay_s, 3))
        return decision

    def _pause(self, delay_s: float) -> int | None:
        """Back off before the next attempt; a stop signal ends the wait (and the job)."""
        deadline = time.monotonic() + delay_s
        while time.monotonic() < deadline:
            stop = next((s for s in self._loop.turn(None, deadline) if s in STOP_SIGNALS), None)
            if stop is not None:
                self._note(f"received {signal.Signals(stop).name} while backing off; stopping")
                return stop
        return None

    def _interrupted(self, signum: int) -> RunResult:
        return self._result(JobState.INTERRUPTED, ExitStatus.for_signal(signum), signum)

    def _result(self, state: JobState, exit_code: int, signum: int | None = None) -> RunResult:
        failures = self.history[-1].failures if self.history else []
        return RunResult(
            state=state, exit_code=int(exit_code), attempts=list(self.history),
            root_cause=None if state is JobState.SUCCEEDED else first_failure(failures),
            signal=signum, run_dir=self.plan.run_dir,
            result=read_result(Path(self.plan.run_dir), self.history[-1].attempt) if self.history else None,
        )

    def _announce(self, base_env: dict[str, str]) -> None:
        self._cpus, bound = numa.binding(self.plan.numa_binding, self.plan.nproc, base_env)
        if bound:
            self._note(bound)
        self._to_files = not processes.pipes_fit(self.plan.nproc)
        if self._to_files:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            self._note(f"the open-file limit ({soft}) holds no pipes for {self.plan.nproc} workers: each "
                       "rank writes straight to its log files, and the console shows none of it "
                       "(raise ulimit -n to see it)")
        omp = omp_default(self.plan, base_env)
        if omp is not None:
            self._note(f"OMP_NUM_THREADS={omp} for each of {self.plan.nproc} workers "
                       f"(cores / nproc; set OMP_NUM_THREADS or env.OMP_NUM_THREADS to choose)")

    # -- one attempt -----------------------------------------------------------------------

    def _run_attempt(self, attempt: int, group_round: Round, base_env: dict[str, str]) -> AttemptOutcome:
        assert self._paths is not None
        timer_file = None
        if self._timers is not None:
            self._timers.clear()
            timer_file = str(self._timers.path)
        ctx = AttemptContext(group_round.restart_count, group_round.master_addr, group_round.master_port,
                             self.token, timer_file, group_round.agent_store)
        group = WorkerGroup(self.plan, self._paths, attempt, group_round.layout, self._worker_changed,
                            self.console, self._keeper.dropped, self._cpus, self._to_files)
        result = AttemptResult(attempt=attempt, master_port=ctx.master_port, start=time.time(),
                               restart_count=group_round.restart_count, nodes=group_round.nodes)
        self._event("group_state", attempt=attempt, state=WorkerState.INIT.value, master_port=ctx.master_port,
                    restart_count=group_round.restart_count, nodes=group_round.nodes,
                    group_rank=group_round.layout.group_rank)
        try:
            group.start(ctx, base_env, self._watch, self._spares)
        except Exception:
            self._stop(group, result, signal.SIGKILL, 0.0)
            raise
        self._event("group_state", attempt=attempt, state=WorkerState.HEALTHY.value)
        spares_due = time.monotonic() + self.plan.restart.prewarm.after_s if self._spares.enabled else None
        outcome = self._supervise(group, result, lambda: self._fill_spares(group, ctx, base_env), spares_due)
        result.workers = [w.result() for w in group.workers]
        result.end = time.time()
        self._event("group_state", attempt=attempt, state=result.state.value)
        return outcome

    def _supervise(self, group: WorkerGroup, result: AttemptResult, fill_spares: Callable[[], None],
                   spares_due: float | None) -> AttemptOutcome:
        """Wait for the group to finish, fail, regroup or be interrupted; leave nothing running
        but the next attempt's spares (started once, at `spares_due`)."""
        monitor = HealthMonitor(self.plan.health, self._timers)
        next_poll = self._next_membership_poll()
        grace = self.plan.restart.stop_grace_s
        next_panel = self._refresh_panel(group, result)
        while True:
            deadline = _earliest(monitor.next_due(), next_poll, next_panel, spares_due)
            signums = self._loop.turn(group, deadline=deadline, stopping=False)
            if next_panel is not None and time.monotonic() >= next_panel:
                next_panel = self._refresh_panel(group, result)
            if spares_due is not None and time.monotonic() >= spares_due and group.running():
                spares_due = None
                fill_spares()
            stop = next((s for s in signums if s in STOP_SIGNALS), None)
            if stop is not None:
                # Under Slurm every process of the step got the signal from Slurm: not sent again.
                sent = self.plan.forward_signals
                self._note(f"received {signal.Signals(stop).name}; stopping {len(group.running())} workers"
                           + ("" if sent else " (the scheduler signalled each of them itself)"))
                self._stop(group, result, stop, grace, send=sent)
                result.state = WorkerState.STOPPED
                return AttemptOutcome(result, stop)
            self._forward(group, signums)
            self._check_health(group, monitor)
            if group.failed() or group.condemned():
                group.state = WorkerState.UNHEALTHY  # HEALTHY -> UNHEALTHY -> FAILED
                self._stop(group, result, signal.SIGTERM, grace)
                result.failures = [w.failure() for w in group.failed()]
                result.state = group.state = WorkerState.FAILED
                return AttemptOutcome(result, self._interrupt)
            if group.all_succeeded():
                self._stop(group, result, signal.SIGTERM, 0.0)  # sweeps leftover children
                result.state = group.state = WorkerState.SUCCEEDED
                return AttemptOutcome(result)
            if next_poll is not None and time.monotonic() >= next_poll:
                next_poll = self._next_membership_poll()
                if self.membership.changed():
                    self._note("the group changed (a node joins, or another node restarted or ended the "
                               "job); re-forming it (no restart spent)")
                    self._stop(group, result, signal.SIGTERM, grace)
                    result.state = group.state = WorkerState.STOPPED
                    return AttemptOutcome(result, self._interrupt, regroup=True)

    def _fill_spares(self, group: WorkerGroup, ctx: AttemptContext, base_env: Mapping[str, str]) -> None:
        """Start the next attempt's spares, each with the environment its rank will have then
        (the port and the restart count may still change: the hand-over sets the final one)."""
        if self._spares.filled:
            return
        following = dataclasses.replace(ctx, restart_count=ctx.restart_count + 1)
        envs = [group.env(i, following, base_env, attempt=group.attempt + 1) for i in range(self.plan.nproc)]
        try:
            pids = self._spares.fill(envs)
        except LaunchError as e:
            self._note(f"no warm spares: {e}; restarts start cold")
            self._spares.close()
            return
        for pid in pids:
            self._custody.watch(pid)
        self._event("spares", attempt=group.attempt + 1, pids=pids,
                    modules=list(self.plan.restart.prewarm.modules))

    def _refresh_panel(self, group: WorkerGroup, result: AttemptResult) -> float | None:
        """Redraw the live status panel (terminals only); returns when to redraw next."""
        if not self.console.panel_enabled:
            return None
        from runner.runtime.panel import PanelSampler

        self._panel = self._panel or PanelSampler()
        self.console.panel(self._panel.rows(group, self._started, result.restart_count,
                                            self.plan.restart.max_restarts))
        return time.monotonic() + PANEL_INTERVAL_S

    def _next_membership_poll(self) -> float | None:
        interval = self.membership.poll_interval_s
        return None if interval is None else time.monotonic() + interval

    def _check_health(self, group: WorkerGroup, monitor: HealthMonitor) -> None:
        if not monitor.active:
            return
        verdicts = monitor.check(group.watched())
        for verdict in verdicts:
            self._note(f"rank {verdict.rank}: {verdict.message}; stopping the group",
                       rank=verdict.rank, reason=verdict.reason)
        group.condemn(verdicts)

    def _forward(self, group: WorkerGroup, signums: list[int]) -> None:
        for signum in signums:
            if signum in FORWARD_SIGNALS and not self.plan.forward_signals:
                self._note(f"{signal.Signals(signum).name}: the scheduler signals every worker itself; "
                           "not forwarded")
            elif signum in FORWARD_SIGNALS:
                self._event("signal_forwarded", signal=signal.Signals(signum).name)
                group.signal(signum)

    def _stop(self, group: WorkerGroup, result: AttemptResult, signum: int, grace_s: float,
              send: bool = True) -> None:
        """Stop every running worker: signum to its group (unless the scheduler already sent it
        to every worker: `send` False), SIGKILL after the grace, sweep the rest.

        A second stop signal during the grace kills at once (Ctrl-C twice).
        """
        running = group.running()
        if running:
            self._event("stop", attempt=group.attempt, signal=signal.Signals(signum).name,
                        ranks=[w.rank for w in running], grace_s=grace_s,
                        **({} if send else {"sent_by": "scheduler"}))
            if send:
                group.signal(signum)
            if send and signum != signal.SIGKILL:
                # A stopped (SIGSTOP, SIGTSTP) worker cannot run its handler until continued:
                # continue it right after, as systemd does.
                group.signal(signal.SIGCONT)
            began = time.monotonic()
            self._wait_until_ended(group, began + grace_s)
            waited = time.monotonic() - began
        stubborn = group.running()
        if stubborn:
            result.killed_after_grace = [w.rank for w in stubborn]
            self._note(f"rank(s) {', '.join(str(w.rank) for w in stubborn)} still running after "
                       f"{waited:.1f} s of the {grace_s:g} s grace; sending SIGKILL",
                       ranks=result.killed_after_grace)
            group.signal(signal.SIGKILL)
            self._wait_until_ended(group, time.monotonic() + KILL_WAIT_S)
        for worker in group.running():  # RUNNING -> STOPPED without an exit status
            self._note(f"rank {worker.rank} (pid {worker.pid}) survived SIGKILL for {KILL_WAIT_S:g} s "
                       f"(uninterruptible sleep?); leaving it behind", rank=worker.rank, pid=worker.pid)
            group.abandon(worker)
        swept = group.sweep(self.token, signal.SIGKILL, self._spares.pids())
        swept += self._custody.sweep([*self._spares.pids(), *(w.pid for w in group.workers if w.pid)])
        if swept:
            self._event("swept", pids=swept)
        self._loop.release(group)

    def _wait_until_ended(self, group: WorkerGroup, deadline: float) -> None:
        while group.running() and time.monotonic() < deadline:
            signums = self._loop.turn(group, deadline, stopping=True)
            stop = next((s for s in signums if s in STOP_SIGNALS), None)
            if stop is not None:
                self._interrupt = self._interrupt or stop  # no restart after this attempt
                deadline = time.monotonic()  # impatient user: go straight to SIGKILL
            self._forward(group, signums)

    def _watch(self, worker: Worker) -> None:
        """Register a fresh worker's pidfd and pipes, and tell the guard its process group."""
        assert worker.process is not None
        self._custody.watch(worker.process.pid)
        self._loop.watch(worker)

    # -- record ----------------------------------------------------------------------------

    def _worker_changed(self, worker: Worker, state: WorkerState) -> None:
        fields: dict[str, object] = {"attempt": worker.attempt, "rank": worker.rank, "state": state.value}
        if state is WorkerState.HEALTHY:
            fields["pid"] = worker.pid
            if worker.warm:
                fields["warm"] = True
        if worker.exit is not None:
            fields.update(exit_code=worker.exit.exit_code, signal=worker.exit.signal_name)
        self._event("worker_state", **fields)

    def _event(self, event: str, **fields: object) -> None:
        if self._events is not None:
            self._events.write(event, **fields)

    def _note(self, message: str, **fields: object) -> None:
        if self._notes is not None:
            self._notes.note(message, **fields)


def _earliest(*times: float | None) -> float | None:
    return min((t for t in times if t is not None), default=None)
