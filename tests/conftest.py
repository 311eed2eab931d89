"""Shared fixtures: plans for the test workers, agents in-process and as subprocesses, hard
deadlines on every wait, and the no-survivor check.

Every process a test starts inherits ERUN_TEST_ID (a fresh value per test, set in os.environ
and passed to subprocess agents), and so does every descendant: after the test, any live
process that carries it (or carries ERUN_JOB_TOKEN and is a new descendant of pytest) is a
leak. Leaks are killed, then the test fails, so one leak does not cascade into the next test.
"""

from __future__ import annotations

import compileall
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import xdist_groups

from runner.paths import STATE_DIR_VAR
from runner.plan import EntrypointPlan, JobPlan, LogsPlan, RestartPlan
from runner.runtime.agent import Agent
from runner.state import AttemptResult, ExitInfo, Failure, JobState, RunResult, WorkerResult, WorkerState

REPO = Path(__file__).resolve().parent.parent
WORKERS = Path(__file__).resolve().parent / "workers"
TEST_ID_VAR = "ERUN_TEST_ID"
# Generous: the suite runs on 2 busy cores; no test asserts speed beyond these.
RUN_TIMEOUT_S = 60.0
WAIT_TIMEOUT_S = 30.0


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT_TIMEOUT_S, what: str = "condition") -> Any:
    """Poll until `predicate()` is truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def wait_for_markers(marker_dir: Path, count: int, name: str = "ready", attempt: int = 0) -> None:
    wait_for(lambda: len(list(marker_dir.glob(f"{name}_a{attempt}_r*"))) >= count,
             what=f"{count} {name} marker(s) of attempt {attempt} in {marker_dir}")


@contextmanager
def deadline(seconds: float = RUN_TIMEOUT_S) -> Iterator[None]:
    """Abort an in-process agent that runs too long (the agent leaves SIGALRM alone)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"the agent ran past the test's {seconds:g} s deadline")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """The run's events so far ([] before the agent created the log)."""
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def read_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class AgentProcess:
    """An agent run as `python -m runner run-plan plan.json` (so tests can signal or kill it)."""

    popen: subprocess.Popen[str]
    run_dir: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def finish(self, timeout: float = RUN_TIMEOUT_S) -> tuple[int, str, str]:
        try:
            out, err = self.popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            out, err = self.popen.communicate()
            pytest.fail(f"the agent ran past {timeout:g} s; stderr:\n{err}")
        return self.popen.returncode, out, err


class Erun:
    """Builds plans for the test workers and runs them (one per test, under tmp_path)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.markers = tmp_path / "markers"
        self.markers.mkdir()
        self._runs = 0

    def plan(self, worker: str, *args: object, nproc: int = 2, max_restarts: int = 0,
             grace_s: float = 1.0, logs: LogsPlan | None = None, **fields: Any) -> JobPlan:
        """A plan running tests/workers/WORKER (a script) with a fresh run dir."""
        entrypoint = fields.pop("entrypoint", None) or EntrypointPlan(
            "script", str(WORKERS / worker), tuple(str(a) for a in args))
        self._runs += 1
        return JobPlan(
            entrypoint, nproc, str(self.tmp_path / f"run_{self._runs}"), f"test-{self._runs}",
            restart=RestartPlan(max_restarts=max_restarts, stop_grace_s=grace_s),
            logs=logs or LogsPlan(), **fields,
        )

    def run(self, plan: JobPlan, timeout: float = RUN_TIMEOUT_S) -> RunResult:
        """`Agent(plan).run()` in this process, under a hard deadline."""
        with deadline(timeout):
            return Agent(plan).run()

    def start(self, plan: JobPlan, env: dict[str, str] | None = None) -> AgentProcess:
        """The agent as a subprocess of its own (`python -m runner run-plan plan.json`)."""
        plan_file = self.tmp_path / f"plan_{self._runs}.json"
        plan_file.write_text(plan.to_json())
        popen = subprocess.Popen(
            [sys.executable, "-m", "runner", "run-plan", str(plan_file)],
            cwd=REPO, env=subprocess_env(env), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        return AgentProcess(popen, Path(plan.run_dir))


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment (with ERUN_TEST_ID) and the repository on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


@pytest.fixture
def private_tmpdir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TMPDIR for the processes a test starts: `erun torchrun` leaves its run record in a new
    temporary folder (as torchrun leaves its logs), which must not pile up in /tmp."""
    folder = tmp_path_factory.mktemp("tmpdir")
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


@pytest.fixture
def erun(tmp_path: Path) -> Erun:
    return Erun(tmp_path)


# -- the no-survivor check -----------------------------------------------------------------


def _environ(proc: psutil.Process) -> dict[str, str]:
    try:
        return proc.environ()
    except (psutil.Error, OSError):
        return {}


def _live(procs: list[psutil.Process]) -> list[psutil.Process]:
    live = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                live.append(proc)
        except psutil.Error:
            pass
    return live


def survivors(test_id: str, before: set[int]) -> list[psutil.Process]:
    """Processes of this test still alive: marked with its id, or new descendants of pytest
    that carry a job token. Zombies and the processes alive before the test do not count."""
    me = psutil.Process()
    found: dict[int, psutil.Process] = {}
    for proc in me.children(recursive=True):
        if proc.pid not in before and "ERUN_JOB_TOKEN" in _environ(proc):
            found[proc.pid] = proc
    for proc in psutil.process_iter():
        if proc.pid != me.pid and _environ(proc).get(TEST_ID_VAR) == test_id:
            found[proc.pid] = proc
    return _live(list(found.values()))


def _describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid}: {' '.join(proc.cmdline())}"
    except psutil.Error:
        return f"pid {proc.pid}"


@pytest.fixture(autouse=True, scope="session")
def _runs_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every agent a test starts records its run in a temporary index, never in the user's
    ~/.local/state/erun (subprocess agents inherit the variable)."""
    saved = os.environ.get(STATE_DIR_VAR)
    os.environ[STATE_DIR_VAR] = str(tmp_path_factory.mktemp("erun-state"))
    yield
    if saved is None:
        os.environ.pop(STATE_DIR_VAR, None)
    else:
        os.environ[STATE_DIR_VAR] = saved


@pytest.fixture
def no_survivors(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Fail the test if any process it started outlives it (after killing them all)."""
    test_id = uuid.uuid4().hex
    monkeypatch.setenv(TEST_ID_VAR, test_id)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield test_id
    # A stop is bounded (grace, then SIGKILL): give the kernel a moment to reap.
    deadline_at = time.monotonic() + 3.0
    left = survivors(test_id, before)
    while left and time.monotonic() < deadline_at:
        time.sleep(0.05)
        left = survivors(test_id, before)
    if left:
        described = [_describe(p) for p in left]
        for proc in left:
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(left, timeout=5)
        pytest.fail("processes survived the test:\n  " + "\n  ".join(described))


# -- results for report tests (no processes) --------------------------------------------------


def failure(rank: int, time: float, returncode: int, attempt: int = 0, **fields: object) -> Failure:
    return Failure(rank=rank, local_rank=rank, attempt=attempt, time=time,
                   exit=ExitInfo.from_returncode(returncode),
                   stdout_log=f"/runs/r/attempt_{attempt}/rank_{rank}/stdout.log",
                   stderr_log=f"/runs/r/attempt_{attempt}/rank_{rank}/stderr.log", **fields)  # type: ignore[arg-type]


def failed_result() -> RunResult:
    cause = failure(1, 10.0, -signal.SIGSEGV, attempt=1, message="killed by SIGSEGV",
                    stderr_tail=["loading", "segfault ahead"])
    other = failure(0, 10.5, 1, attempt=1)
    first = AttemptResult(0, 30000, 1.0, 5.0, WorkerState.FAILED, failures=[failure(0, 4.0, 2)])
    second = AttemptResult(
        1, 30001, 6.0, 11.0, WorkerState.FAILED,
        workers=[WorkerResult(0, 0, 100, 6.0, 10.5, WorkerState.FAILED, ExitInfo(1)),
                 WorkerResult(1, 1, 101, 6.0, 10.0, WorkerState.FAILED, ExitInfo(None, signal.SIGSEGV))],
        failures=[other, cause], killed_after_grace=[2], restart_count=1,
    )
    return RunResult(JobState.FAILED, 1, [first, second], root_cause=cause, run_dir="/runs/r")


@dataclass(frozen=True)
class Interrupted:
    """How a command ended after a terminal's Ctrl-C: its exit status, its stderr, and how long
    it took to exit after the signal."""

    returncode: int
    stderr: str
    seconds: float


def start_as_from_a_terminal(argv: list[str], cwd: Path, **popen_args: Any) -> subprocess.Popen[str]:
    """Start `argv` in its own session, with SIGINT at its default as a terminal's shell gives
    its foreground command. Tests started from a non-interactive shell's `&` have SIGINT ignored,
    and every child inherits that: a Python started so installs no KeyboardInterrupt handler, and
    a Ctrl-C test of it could only time out."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:  # a handler, which exec turns into the default (SIG_IGN it keeps)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(argv, cwd=cwd, env=subprocess_env(), start_new_session=True, text=True,
                                **popen_args)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def ctrl_c(argv: list[str], cwd: Path, ready: Callable[[], Any], what: str) -> Interrupted:
    """Start `argv` in its own process group, wait until `ready()`, then SIGINT the group (as a
    terminal's Ctrl-C) and wait for it to exit; a command that does not is SIGKILLed."""
    proc = start_as_from_a_terminal(argv, cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(ready, what=what)
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        return Interrupted(proc.returncode, err, time.monotonic() - started)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def assert_sigterm_answered(agent: AgentProcess, finish_timeout: float = RUN_TIMEOUT_S) -> None:
    """SIGTERM the agent: it must exit 128+15 within 10 s, its record saying INTERRUPTED."""
    agent.popen.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    code, _, err = agent.finish(timeout=finish_timeout)
    assert time.monotonic() - sent < 10, "SIGTERM was answered late"
    assert code == 128 + signal.SIGTERM, err
    assert read_summary(agent.run_dir)["state"] == "INTERRUPTED"



# -- the test Slurm cluster (tests/slurm_cluster.py): one per session, shared by tests/cluster/ --


@pytest.fixture(scope="session")
def slurm() -> Iterator[Any]:
    """A real two-node Slurm cluster on loopback, up in about 1 s; skipped, with the reason,
    where slurm-wlm and munge are not installed or the cluster cannot start."""
    from slurm_cluster import SlurmCluster, missing

    reason = missing()
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster()
    try:
        cluster.start()
    except (RuntimeError, OSError) as e:
        pytest.skip(f"the test Slurm cluster did not start: {str(e).splitlines()[0]}")
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_env(slurm: Any, no_survivors: str) -> Iterator[dict[str, str]]:
    """What erun needs to reach the cluster; both nodes idle before, every job gone after."""
    slurm.ready_nodes()
    yield {"SLURM_CONF": str(slurm.conf)}
    slurm.drain_jobs()
    assert slurm.jobs() == [] and slurm.steps_alive() == []


# -- two pytest workers (scripts/test.sh: pytest-xdist, --dist loadgroup): tests/xdist_groups.py --


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # once, before any worker starts
        precompile()
    xdist_groups.configure(config)


def precompile() -> None:
    """Write the checkout's bytecode, as `pip install` does for an installed package (torch's is in
    its wheel): under PYTHONDONTWRITEBYTECODE=1 (CI's environment) every agent, CLI call and
    worker the suite starts would otherwise compile erun's sources again, 0.1 to 0.2 s of CPU each,
    thousands of times. bench/common.py does the same for the benchmarks."""
    for folder in ("runner", "hydra_plugins", "tests/workers"):
        compileall.compile_dir(str(REPO / folder), quiet=1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    xdist_groups.heavy_first(items)
    xdist_groups.record(config, items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    return xdist_groups.make_scheduler(config, log) if config.getvalue("dist") == "loadgroup" else None
