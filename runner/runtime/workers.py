"""Worker and WorkerGroup: the live state of one attempt on this node.

A `Worker` is one rank in one attempt; a `WorkerGroup` holds this node's workers for the
current attempt. Both are runtime objects: they take a `JobPlan`, never a config. State
changes are written down in `runner.state`; every change is reported to an observer (the
agent's event log) as it happens.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runner.paths import RunPaths, dir_mode, file_mode
from runner.plan import JobPlan
from runner.record.disk import DroppedWrites
from runner.runtime import logs, processes
from runner.runtime.console import Console
from runner.runtime.env import SINGLE_NODE, AttemptContext, RankLayout, worker_env
from runner.runtime.health import Verdict, WatchedRank
from runner.runtime.spares import SparePool
from runner.state import ExitInfo, Failure, WorkerResult, WorkerState

StateObserver = Callable[["Worker", WorkerState], None]


@dataclass
class Worker:
    """One rank of one attempt."""

    rank: int
    local_rank: int
    attempt: int
    paths: RunPaths
    state: WorkerState = WorkerState.INIT
    process: processes.Process | None = None
    streams: list[logs.OutputStream] = field(default_factory=list)
    start: float | None = None
    end: float | None = None
    exit: ExitInfo | None = None
    # Set when a watchdog condemned this rank: it ends FAILED with this reason, not STOPPED.
    verdict: Verdict | None = None
    warm: bool = False  # started from a warm spare (runner.runtime.spares), not a fresh interpreter

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.state in (WorkerState.HEALTHY, WorkerState.UNHEALTHY)

    def result(self) -> WorkerResult:
        return WorkerResult(self.rank, self.local_rank, self.pid, self.start, self.end, self.state, self.exit)

    def failure(self) -> Failure:
        """What to tell the user about this rank's failure (call once it has ended)."""
        exit_info = self.exit or ExitInfo(exit_code=None)
        error_file = self.paths.error_file(self.attempt, self.rank)
        message, traceback = read_error_file(error_file)
        stderr_tail = logs.tail(self.paths.stderr(self.attempt, self.rank))
        verdict = self.verdict
        return Failure(
            rank=self.rank, local_rank=self.local_rank, attempt=self.attempt,
            time=verdict.time if verdict else (self.end or time.time()), exit=exit_info,
            message=verdict.message if verdict else (message or exit_info.describe()),
            reason=verdict.reason if verdict else "exit", traceback=traceback, stderr_tail=stderr_tail,
            stdout_log=str(self.paths.stdout(self.attempt, self.rank)),
            stderr_log=str(self.paths.stderr(self.attempt, self.rank)),
            error_file=str(error_file) if error_file.exists() else "",
        )


def read_error_file(path: Path) -> tuple[str, str]:
    """(message, traceback) from torch's `@record` error file; empty strings when absent."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return "", ""
    body = data.get("message", {})
    if isinstance(body, str):
        return body, ""
    extra = body.get("extraInfo", {}) if isinstance(body, dict) else {}
    return str(body.get("message", "")), str(extra.get("py_callstack", ""))


class WorkerGroup:
    """This node's workers for one attempt: start them, route their events, stop them."""

    def __init__(
        self, plan: JobPlan, paths: RunPaths, attempt: int,
        layout: RankLayout = SINGLE_NODE, observer: StateObserver | None = None,
        console: Console | None = None, dropped: DroppedWrites | None = None,
        cpus: Mapping[int, frozenset[int]] | None = None, to_files: bool = False,
    ) -> None:
        self.console = console or Console()
        # The open-file limit holds no pipes for these workers: each writes straight to its log files.
        self.to_files = to_files
        self.dropped = dropped or DroppedWrites()
        self.plan = plan
        self.paths = paths
        self.attempt = attempt
        self.layout = layout
        self.state = WorkerState.INIT
        self._observer = observer
        self.cpus = cpus or {}  # local rank -> its CPUs (numa_binding); none: unbound
        self.copies: dict[str, logs.FilteredCopy] = {}  # stream -> filtered copy (opened by start)
        self.workers = [
            Worker(rank=layout.rank_offset + i, local_rank=i, attempt=attempt, paths=paths)
            for i in range(plan.nproc)
        ]

    def start(self, ctx: AttemptContext, base_env: Mapping[str, str],
              on_spawn: Callable[[Worker], None], spares: SparePool | None = None) -> None:
        """INIT -> HEALTHY: spawn every worker (or hand it to its warm spare), with log files and pipes."""
        argv = self.plan.entrypoint.argv()
        with contextlib.suppress(OSError):  # deleted while the job runs: as private as it was made
            self.paths.run_dir.mkdir(mode=dir_mode(self.plan.logs.private), parents=True, exist_ok=True)
        self.copies = self._copies()
        for worker in self.workers:
            rank_dir = self.paths.rank_dir(self.attempt, worker.rank)
            try:
                rank_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:  # a full disk: the worker runs, its output is counted as dropped
                self.dropped.count(0, rank_dir, e)
            env = self.env(worker.local_rank, ctx, base_env)
            cpus = self.cpus.get(worker.local_rank)
            process = spares.take(worker.local_rank, argv, env, self.plan.cwd, cpus) if spares else None
            worker.warm = process is not None
            worker.process = process or processes.spawn(argv, env, self.plan.cwd, cpus=cpus,
                                                         output=self._files(worker))
            worker.start = time.time()
            worker.streams = self._streams(worker)
            self._set(worker, WorkerState.HEALTHY)
            on_spawn(worker)
        self.state = WorkerState.HEALTHY

    def env(self, local_rank: int, ctx: AttemptContext, base_env: Mapping[str, str],
            attempt: int | None = None) -> dict[str, str]:
        """The environment of `local_rank` in this attempt (or, for a spare, in `attempt`)."""
        attempt = self.attempt if attempt is None else attempt
        rank = self.layout.rank_offset + local_rank
        return worker_env(self.plan, local_rank, ctx, str(self.paths.error_file(attempt, rank)), base_env,
                          self.layout, heartbeat_file=str(self.paths.heartbeat(attempt, rank)),
                          result_file=str(self.paths.result(attempt, rank)))

    def _files(self, worker: Worker) -> tuple[Path, Path, int] | None:
        """Where a worker that has no pipes writes (None: it has pipes, the usual way)."""
        if not self.to_files:
            return None
        rank = worker.rank
        return (self.paths.stdout(self.attempt, rank), self.paths.stderr(self.attempt, rank),
                file_mode(self.plan.logs.private))

    def _copies(self) -> dict[str, logs.FilteredCopy]:
        """This attempt's filtered copies (logs.duplicate_filters), one file a stream."""
        copies = {}
        for stream in ("stdout", "stderr"):
            logs_plan = self.plan.logs
            needles = logs_plan.duplicate_stdout if stream == "stdout" else logs_plan.duplicate_stderr
            if needles is None:
                continue
            path = self.paths.filtered(self.attempt, stream)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:  # a full disk: counted as dropped, as the rank logs are
                self.dropped.count(0, path.parent, e)
            copies[stream] = logs.FilteredCopy(path, needles, self.dropped, file_mode(self.plan.logs.private))
        return copies

    def _streams(self, worker: Worker) -> list[logs.OutputStream]:
        assert worker.process is not None
        if worker.process.stdout_fd < 0:  # it writes its log files itself
            return []
        plan = self.plan
        prefix = logs.make_prefix(plan.logs.prefix, worker.rank, worker.local_rank, plan.role, self.attempt,
                                  plan.logs.prefix_space)
        shown = plan.logs.shows(worker.rank)
        modes = {"stdout": plan.logs.stdout, "stderr": plan.logs.stderr}  # console, raw or file
        # As torchrun: the filtered copy takes the lines shown behind the prefix (its teed ranks).
        return [
            logs.OutputStream(fd, path, self.console if shown and modes[name] != "file" else None,
                              b"" if modes[name] == "raw" else prefix, name, self.dropped,
                              file_mode(plan.logs.private),
                              self.copies.get(name) if shown and modes[name] == "console" else None)
            for name, fd, path in (
                ("stdout", worker.process.stdout_fd, self.paths.stdout(self.attempt, worker.rank)),
                ("stderr", worker.process.stderr_fd, self.paths.stderr(self.attempt, worker.rank)),
            )
        ]

    def on_exit(self, worker: Worker, stopping: bool) -> None:
        """HEALTHY -> SUCCEEDED | FAILED, or -> STOPPED when the agent asked it to stop."""
        assert worker.process is not None
        returncode = worker.process.reap()
        if returncode is None:
            return
        for stream in worker.streams:
            stream.pump()
        worker.end = time.time()
        worker.exit = ExitInfo.from_returncode(returncode)
        if worker.exit.ok and worker.verdict is None:
            self._set(worker, WorkerState.SUCCEEDED)
        elif worker.verdict is not None:
            self._set(worker, WorkerState.FAILED)
        elif stopping:
            self._set(worker, WorkerState.STOPPED)
        else:
            self._set(worker, WorkerState.FAILED)

    def abandon(self, worker: Worker) -> None:
        """A rank that would not die even to SIGKILL: stop waiting (FAILED if condemned)."""
        worker.end = time.time()
        self._set(worker, WorkerState.FAILED if worker.verdict else WorkerState.STOPPED)

    def condemned(self) -> list[Worker]:
        return [w for w in self.workers if w.verdict is not None]

    def condemn(self, verdicts: list[Verdict]) -> None:
        """HEALTHY -> UNHEALTHY for each rank a watchdog found wanting; it will end FAILED."""
        for verdict in verdicts:
            worker = self.workers[verdict.rank - self.layout.rank_offset]
            if worker.running and worker.verdict is None:
                worker.verdict = verdict
                self._set(worker, WorkerState.UNHEALTHY)

    def watched(self) -> list[WatchedRank]:
        """What the health monitor needs of each running rank."""
        return [
            WatchedRank(w.rank, w.pid, str(self.paths.heartbeat(self.attempt, w.rank)),
                        self.last_output(w))
            for w in self.running() if w.pid is not None
        ]

    def last_output(self, worker: Worker) -> float:
        """When the rank last wrote (monotonic): from its pipes, or its log files' mtimes."""
        if worker.streams:
            return max(s.last_activity for s in worker.streams)
        paths = (self.paths.stdout(self.attempt, worker.rank), self.paths.stderr(self.attempt, worker.rank))
        wrote = worker.start or time.time()
        for path in paths:
            with contextlib.suppress(OSError):  # not written yet, or the run dir is gone
                wrote = max(wrote, path.stat().st_mtime)
        return time.monotonic() - max(0.0, time.time() - wrote)

    def running(self) -> list[Worker]:
        return [w for w in self.workers if w.running]

    def signal(self, signum: int) -> None:
        """Send a signal to every running worker's process group."""
        for worker in self.running():
            assert worker.pid is not None
            processes.signal_group(worker.pid, signum)

    def sweep(self, token: str, signum: int, spare_pids: Sequence[int] = ()) -> list[int]:
        """Signal what is left of every worker's tree: its group, and escaped descendants
        (all carry the token; the next attempt's spares carry it too and are left alone)."""
        for worker in self.workers:
            if worker.pid is not None:
                processes.signal_group(worker.pid, signum)
        return processes.kill_marked(token, signum, exclude=spare_pids)

    def close(self) -> None:
        """Flush and close every stream and descriptor (after all workers ended)."""
        for worker in self.workers:
            for stream in worker.streams:
                if stream.open:
                    stream.drain()
            if worker.process is not None:
                worker.process.close()
        for copy in self.copies.values():
            copy.close()

    def failed(self) -> list[Worker]:
        return [w for w in self.workers if w.state is WorkerState.FAILED]

    def all_succeeded(self) -> bool:
        return all(w.state is WorkerState.SUCCEEDED for w in self.workers)

    def _set(self, worker: Worker, state: WorkerState) -> None:
        worker.state = state
        if self._observer is not None:
            self._observer(worker, state)

