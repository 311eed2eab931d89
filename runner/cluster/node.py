"""Inside the allocation, once per node (srun starts it): the job's plan becomes this node's plan,
then this process becomes an ordinary erun agent (`erun run-plan`).

What only the allocation knows is filled in here, from Slurm's environment (no scontrol):
the rendezvous host is the first node of SLURM_JOB_NODELIST (runner.cluster.hostlist), its port
comes from the job id, the rendezvous id is the job id, and only that node hosts the c10d store.
Each node keeps its record in run_dir/node_<SLURM_NODEID>/; the workers' ERUN_JOB_DIR is the
run directory itself, shared by every node. nproc=cpu/gpu/auto counts this node's CPUs or GPUs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from runner.cluster import hostlist
from runner.devices import HostInfo
from runner.errors import ConfigError, ErunError
from runner.paths import RunPaths
from runner.plan import JobPlan

PORT_BASE = 20000
PORT_SPAN = 10000


@dataclass(frozen=True)
class SlurmNode:
    """This node's view of the allocation (Slurm's environment of a job step)."""

    job_id: str
    nodelist: str
    node_id: int
    nnodes: int
    name: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SlurmNode:
        names = ("SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_NODEID", "SLURM_JOB_NUM_NODES",
                 "SLURMD_NODENAME")
        lacking = [n for n in names if not environ.get(n)]
        if lacking:
            raise ConfigError(None, f"not inside a Slurm job step ({', '.join(lacking)} unset)",
                              "runner.cluster.node runs under srun, from the batch script erun submits")
        return cls(environ["SLURM_JOB_ID"], environ["SLURM_JOB_NODELIST"], int(environ["SLURM_NODEID"]),
                   int(environ["SLURM_JOB_NUM_NODES"]), environ["SLURMD_NODENAME"])


def rdzv_port(job_id: str) -> int:
    """The c10d port of a job: from its id, so jobs sharing a first node use different ports."""
    return PORT_BASE + int(job_id.split("_")[0]) % PORT_SPAN


def node_plan(plan: JobPlan, node: SlurmNode) -> JobPlan:
    """The job's plan as this node runs it."""
    run_dir = str(RunPaths(Path(plan.run_dir)).node_dir(node.node_id))
    # Slurm signals every process of the step (scancel --signal): the agent must not forward again.
    plan = dataclasses.replace(plan, run_dir=run_dir, forward_signals=False)
    if plan.rdzv.single_node:
        return plan
    host = hostlist.first(node.nodelist)
    settings = {**plan.rdzv.settings, "is_host": node.name == host, "local_addr": node.name}
    rdzv = dataclasses.replace(plan.rdzv, backend="c10d", endpoint=f"{host}:{rdzv_port(node.job_id)}",
                               id=node.job_id, min_nodes=min(plan.rdzv.min_nodes, node.nnodes),
                               max_nodes=node.nnodes, settings=settings)
    return dataclasses.replace(plan, rdzv=rdzv)


def with_node_nproc(plan: JobPlan, nproc: str, isolate_gpus: bool, host: HostInfo) -> JobPlan:
    """nproc=cpu/gpu/auto counted on this node (and isolate_gpus: one device per local rank)."""
    from runner.config.compile import parse_nproc  # only then: it costs OmegaConf's import

    count = parse_nproc(nproc, host)
    devices = tuple(host.gpus[:count]) if isolate_gpus else ()
    if isolate_gpus and len(devices) < count:
        raise ConfigError("isolate_gpus", f"needs one CUDA device per worker: nproc={count}, "
                          f"{len(host.gpus)} visible on {socket.gethostname()}", "use nproc=gpu")
    return dataclasses.replace(plan, nproc=count, devices=devices)


def main(argv: Sequence[str]) -> int:
    """`python -m runner.cluster.node RUN_DIR/plan.json [--nproc=WORD] [--isolate-gpus]`: write
    this node's plan, become its agent."""
    args = [a for a in argv if not a.startswith("--")]
    nproc = next((a.split("=", 1)[1] for a in argv if a.startswith("--nproc=")), None)
    try:
        if len(args) != 1:
            raise ConfigError(None, "usage: python -m runner.cluster.node PLAN.json [--nproc=cpu|gpu|auto] "
                              "[--isolate-gpus]", "give the job's plan")
        plan = JobPlan.from_dict(json.loads(Path(args[0]).read_text()))
        if nproc is not None:
            plan = with_node_nproc(plan, nproc, "--isolate-gpus" in argv, HostInfo.detect(os.environ))
        mine = node_plan(plan, SlurmNode.from_environ(os.environ))
    except ErunError as e:
        print(e, file=sys.stderr)
        return int(e.exit_status)
    path = RunPaths(Path(mine.run_dir)).plan
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(mine.to_json() + "\n")
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "runner", "run-plan", str(path)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
