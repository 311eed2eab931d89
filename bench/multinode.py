"""multi-node: several single-worker nodes on this machine (one agent each, loopback c10d).

- `init N nodes`: all N node commands start together; the value runs from just before the
  first start until every rank has initialised gloo (`init<N>` stamps).
- `absorb a late joiner (nnodes=1:2)`: one node runs alone; a second starts; the value runs
  from just before its start until both ranks of the 2-node round initialised gloo. torchrun
  with its default shared agent store deadlocks here in torch 2.13 (the joiner waits for a
  MASTER_ADDR nobody writes in the new round, until a 60 s timeout): it is run once in the
  full mode (multinode_deadlock_reps, bench/config.py) and shown as not absorbed;
  torchrun-fresh (TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1) is the torchrun that does absorb, and
  the baseline of that target.

Every launcher gets the same rendezvous settings (last_call_timeout=1 s), the same worker
(bench/workers/elastic.py) and the same local address (127.0.0.1).
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import Row, Running, last_stamp, log, started, wait_for_stamps, workdir, worker_script
from bench.config import BenchConfig
from bench.launchers import torchrun_argv

NAME = "multi-node"
TITLE = "multi-node: N single-worker nodes (c10d on loopback) until all ranks initialised gloo"
SETTINGS = {"last_call_timeout": 1, "join_timeout": 60}
INIT_CASE = "init {n} nodes x 1 worker"
ABSORB_CASE = "absorb a late joiner (nnodes=1:2)"


@dataclass(frozen=True)
class Node:
    """One node of one job: which launcher, the job's nnodes and rendezvous, the worker's target."""

    launcher: str
    nnodes: str
    endpoint: str
    rdzv_id: str
    target: int

    def argv(self, out: Path, work: Path, index: int) -> tuple[list[str], dict[str, str]]:
        script = [worker_script("elastic.py"), str(out), str(self.target)]
        if self.launcher == "erun":
            return self._erun(script, work, index), {}
        conf = ",".join(f"{k}={v}" for k, v in SETTINGS.items())
        argv = [*torchrun_argv(), f"--nnodes={self.nnodes}", "--nproc-per-node=1", "--rdzv-backend=c10d",
                f"--rdzv-endpoint={self.endpoint}", f"--rdzv-id={self.rdzv_id}", f"--rdzv-conf={conf}",
                "--local-addr=127.0.0.1", *script]
        env = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"} if self.launcher == "torchrun-fresh" else {}
        return argv, env

    def _erun(self, script: list[str], work: Path, index: int) -> list[str]:
        from runner.plan import EntrypointKind, EntrypointPlan, JobPlan, LogsPlan, RdzvPlan

        low, _, high = self.nnodes.partition(":")
        rdzv = RdzvPlan("c10d", self.endpoint, self.rdzv_id, int(low), int(high or low),
                        {**SETTINGS, "local_addr": "127.0.0.1"})
        plan = JobPlan(EntrypointPlan(EntrypointKind.SCRIPT, script[0], tuple(script[1:])), 1,
                       str(work / f"run{index}"), f"bench-{work.name}-{index}", logs=LogsPlan(console=False),
                       rdzv=rdzv)
        plan_file = work / f"plan{index}.json"
        plan_file.write_text(plan.to_json())
        return [sys.executable, "-m", "runner", "run-plan", str(plan_file)]


def node_for(launcher: str, nnodes: str, target: int) -> Node:
    from runner.runtime.membership import free_port

    return Node(launcher, nnodes, f"127.0.0.1:{free_port('127.0.0.1')}", uuid.uuid4().hex[:12], target)


@contextmanager
def nodes_started(node: Node, count: int, out: Path, work: Path, first: int = 0) -> Iterator[list[Running]]:
    """Start `count` nodes of the job; on leaving, none of them (or their workers) survives."""
    with ExitStack() as stack:
        running = []
        for index in range(first, first + count):
            argv, env = node.argv(out, work, index)
            running.append(stack.enter_context(started(argv, work / f"node{index}.log", env)))
        yield running


def measure_init(launcher: str, nodes: int, timeout_s: float) -> float | None:
    with workdir(f"multinode-{launcher}") as work:
        out = work / "stamps"
        out.mkdir()
        node = node_for(launcher, str(nodes), nodes)
        begin = time.time()
        with nodes_started(node, nodes, out, work) as running:
            done = wait_for_stamps(out, f"init{nodes}", 0, nodes, begin + timeout_s)
            end = last_stamp(out, f"init{nodes}", 0, nodes)
            if not done or end is None:
                log(f"multi-node {nodes} nodes under {launcher}: not all ranks initialised within "
                    f"{timeout_s:g} s (rc {[r.popen.poll() for r in running]})")
                return None
        return end - begin


def measure_absorb(launcher: str, timeout_s: float) -> float | None:
    with workdir(f"multinode-up-{launcher}") as work:
        out = work / "stamps"
        out.mkdir()
        node = node_for(launcher, "1:2", 2)
        with nodes_started(node, 1, out, work):
            if not wait_for_stamps(out, "init1", 0, 1, time.time() + timeout_s):
                log(f"multi-node absorb under {launcher}: the first node never ran alone")
                return None
            begin = time.time()
            with nodes_started(node, 1, out, work, first=1):
                wait_for_stamps(out, "init2", 0, 2, begin + timeout_s)
                end = last_stamp(out, "init2", 0, 2)
        if end is None:
            log(f"multi-node absorb under {launcher}: no 2-node round within {timeout_s:g} s")
            return None
        return end - begin


def run(cfg: BenchConfig) -> list[Row]:
    """Sizes from bench/config.py (multinode_*)."""
    rows: list[Row] = []
    for nodes in cfg.multinode_nodes:
        log(f"multi-node: {INIT_CASE.format(n=nodes)}")
        case = {name: Row(NAME, INIT_CASE.format(n=nodes), name) for name in cfg.multinode_launchers}
        for _ in range(cfg.multinode_reps):
            for name in cfg.multinode_launchers:  # interleaved, so noise hits every launcher alike
                case[name].add(measure_init(name, nodes, cfg.multinode_timeout_s))
        rows += case.values()
    if cfg.multinode_absorb_reps:
        log(f"multi-node: {ABSORB_CASE}")
        case = {name: Row(NAME, ABSORB_CASE, name) for name in cfg.multinode_launchers}
        for rep in range(cfg.multinode_absorb_reps):
            for name in cfg.multinode_launchers:
                if name == "torchrun" and rep >= cfg.multinode_deadlock_reps:
                    continue
                case[name].add(measure_absorb(name, cfg.multinode_timeout_s))
        if "torchrun" in case:
            case["torchrun"].note = ("default shared store: deadlocks in torch 2.13 (see bench/multinode.py)"
                                     + ("" if case["torchrun"].runs else "; not run in this mode"))
        rows += case.values()
    return rows
