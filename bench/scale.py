"""scale: N agents of one job on this machine (loopback c10d), `erun torchrun` against `torchrun`
with the same command line: CPU per agent, and time until every rank runs.

Each agent runs `--nnodes=N --nproc-per-node=1 --no-python sh -c 'date > OUT/RANK'` (the worker
costs next to nothing, so what is measured is the agent: interpreter, imports, rendezvous,
spawning, reaping). Per run:

- `CPU per agent, N agents`: user + system seconds of each agent process and everything it
  started and waited for (os.wait4's rusage), summed over the N agents, divided by N;
- `all running, N agents`: from just before the first agent starts until the last rank stamped.

Every launcher gets the same rendezvous settings (last_call_timeout=1 s) and local address, and
runs are interleaved so that load hits all alike. `erun-hydra` is `erun torchrun` through Hydra
(ERUN_TORCHRUN_HYDRA=1, as `erun +job=FILE`; the default compiles the flags without Hydra,
runner.config.direct), `erun-plan` runs the same job as plans (`erun run-plan`): the agent's own
cost. erun torchrun writes its run record into the run's temporary folder (TMPDIR), as without
--log-dir.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.common import Row, log, started, workdir
from bench.config import BenchConfig
from bench.launchers import torchrun_argv
from runner.torchrun_job import HYDRA_PATH_VAR

NAME = "scale"
TITLE = "scale: N agents of one job (c10d on loopback), CPU per agent and time until all ranks run"
CPU_CASE = "CPU per agent, {n} agents"
RUNNING_CASE = "all running, {n} agents"
STAMP = 'date +%s.%N > "$0/$RANK"'
POLL_S = 0.02


@dataclass(frozen=True)
class Job:
    """One job of N agents: its rendezvous and where the ranks stamp."""

    nodes: int
    endpoint: str
    rdzv_id: str
    out: Path

    def argv(self, launcher: str, work: Path, index: int) -> list[str]:
        """Agent `index`: the torchrun command line (`erun torchrun` or torchrun), or for
        `erun-plan` the same job as a plan (`erun run-plan`: no Hydra, the agent alone)."""
        if launcher == "erun-plan":
            return [sys.executable, "-m", "runner", "run-plan", str(self.plan_file(work, index))]
        flags = [f"--nnodes={self.nodes}", "--nproc-per-node=1", "--rdzv-backend=c10d",
                 f"--rdzv-endpoint={self.endpoint}", f"--rdzv-id={self.rdzv_id}",
                 "--rdzv-conf=last_call_timeout=1", "--local-addr=127.0.0.1", "--no-python", "sh", "-c",
                 STAMP, str(self.out)]
        head = torchrun_argv() if launcher == "torchrun" else [sys.executable, "-m", "runner", "torchrun"]
        return [*head, *flags]

    def plan_file(self, work: Path, index: int) -> Path:
        from runner.plan import EntrypointKind, EntrypointPlan, JobPlan, LogsPlan, RdzvPlan

        rdzv = RdzvPlan("c10d", self.endpoint, self.rdzv_id, self.nodes, self.nodes,
                        {"last_call_timeout": 1, "join_timeout": 60, "local_addr": "127.0.0.1"})
        plan = JobPlan(EntrypointPlan(EntrypointKind.EXEC, "sh", ("-c", STAMP, str(self.out))), 1,
                       str(work / f"run{index}"), f"bench-{index}", logs=LogsPlan(console=False), rdzv=rdzv)
        path = work / f"plan{index}.json"
        path.write_text(plan.to_json())
        return path


def new_job(nodes: int, out: Path) -> Job:
    from runner.runtime.membership import free_port

    return Job(nodes, f"127.0.0.1:{free_port('127.0.0.1')}", uuid.uuid4().hex[:12], out)


def reap(pids: list[int], deadline: float) -> float | None:
    """Wait for every pid; their summed CPU seconds (with what each waited for), None on timeout."""
    cpu, left = 0.0, set(pids)
    while left and time.time() < deadline:
        for pid in list(left):
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                left.discard(pid)
                cpu += usage.ru_utime + usage.ru_stime
                if os.waitstatus_to_exitcode(status) != 0:
                    return None
        time.sleep(POLL_S)  # a bench loop, not a test: polling the exits is what it measures around
    return None if left else cpu


def measure(launcher: str, nodes: int, timeout_s: float) -> tuple[float | None, float | None]:
    """(CPU per agent, seconds until all ranks ran) of one run; None where it failed."""
    with workdir(f"scale-{launcher}") as work:
        out = work / "stamps"
        out.mkdir()
        env = {"TMPDIR": str(work), **({HYDRA_PATH_VAR: "1"} if launcher == "erun-hydra" else {})}
        with ExitStack() as stack:
            job = new_job(nodes, out)  # one job: the same endpoint and id for all its agents
            commands = [job.argv(launcher, work, i) for i in range(nodes)]
            begin = time.time()
            running = [stack.enter_context(started(command, work / f"agent{i}.log", env))
                       for i, command in enumerate(commands)]
            cpu = reap([r.pid for r in running], begin + timeout_s)  # Popen.wait copes with a reaped pid
        stamps = [float(p.read_text()) for p in out.iterdir() if p.read_text().strip()]
        if cpu is None or len(stamps) != nodes:
            log(f"scale {nodes} agents under {launcher}: not every agent succeeded within {timeout_s:g} s")
            return None, None
        return cpu / nodes, max(stamps) - begin


def run(cfg: BenchConfig) -> list[Row]:
    """Sizes from bench/config.py (scale_*)."""
    rows: list[Row] = []
    for nodes in cfg.scale_agents:
        log(f"scale: {nodes} agents")
        cpu = {name: Row(NAME, CPU_CASE.format(n=nodes), name, unit="s CPU") for name in cfg.scale_launchers}
        ready = {name: Row(NAME, RUNNING_CASE.format(n=nodes), name) for name in cfg.scale_launchers}
        for _ in range(cfg.scale_reps):
            for name in cfg.scale_launchers:  # interleaved
                per_agent, all_running = measure(name, nodes, cfg.scale_timeout_s)
                cpu[name].add(per_agent)
                ready[name].add(all_running)
        rows += [*cpu.values(), *ready.values()]
    return rows
