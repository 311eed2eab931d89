"""The worker environment contract: exactly what torchrun 2.13 gives each worker, plus erun's own.

Pure functions, no processes: `worker_env` is unit-tested variable by variable and compared
with a real torchrun in an integration test.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from runner.plan import JobPlan
from runner.runtime.filetimer import TIMER_FILE_VAR
from runner.worker.liveness import HEARTBEAT_VAR
from runner.worker.result import RESULT_VAR

# torchrun sets this for its own signal handling in workers that use torch's elastic helpers.
SIGNALS_TO_HANDLE = "SIGTERM,SIGINT,SIGHUP,SIGQUIT"
# Every descendant of a worker inherits this; the agent and the orphan guard find stragglers
# (grandchildren that left the worker's process group) by it.
TOKEN_VAR = "ERUN_JOB_TOKEN"


@dataclass(frozen=True)
class RankLayout:
    """Where this node's workers sit in the job. Single node: group 0 of 1, ranks from 0."""

    group_rank: int = 0
    group_world_size: int = 1
    rank_offset: int = 0
    world_size: int | None = None  # None: this node's nproc (single node)
    role_rank_offset: int = 0
    role_world_size: int | None = None


SINGLE_NODE = RankLayout()


@dataclass(frozen=True)
class AttemptContext:
    """What changes from one attempt to the next."""

    restart_count: int  # TORCHELASTIC_RESTART_COUNT: the job's, the same on every node
    master_addr: str
    master_port: int
    token: str
    timer_file: str | None = None  # torch FileTimerClient's FIFO, when file timers are on
    agent_store: bool = False  # the agent hosts this attempt's fresh store (multi-node)


def default_omp_threads(nproc: int, cpus: int | None = None) -> int:
    """Cores divided among local workers, at least 1 (torchrun always uses 1)."""
    cpus = cpus or available_cpus()
    return max(1, cpus // max(1, nproc))


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def file_timers_enabled(plan: JobPlan, base: Mapping[str, str]) -> bool:
    """As torchrun: TORCHELASTIC_ENABLE_FILE_TIMER=1 in the agent's env, or health.file_timer."""
    return plan.health.file_timer or base.get("TORCHELASTIC_ENABLE_FILE_TIMER") == "1"


def omp_default(plan: JobPlan, base: Mapping[str, str]) -> str | None:
    """The OMP_NUM_THREADS the agent sets, or None when the user (or nproc=1) decides."""
    if "OMP_NUM_THREADS" in base or "OMP_NUM_THREADS" in plan.env or plan.nproc <= 1:
        return None
    return str(default_omp_threads(plan.nproc))


def worker_env(
    plan: JobPlan,
    local_rank: int,
    ctx: AttemptContext,
    error_file: str,
    base: Mapping[str, str],
    layout: RankLayout = SINGLE_NODE,
    heartbeat_file: str = "",
    result_file: str = "",
) -> dict[str, str]:
    """The full environment of one worker: agent env, torchrun's contract, then the plan's env."""
    world = layout.world_size or plan.nproc
    rank = layout.rank_offset + local_rank
    env = dict(base)
    env.update({
        "LOCAL_RANK": str(local_rank),
        "RANK": str(rank),
        "GROUP_RANK": str(layout.group_rank),
        "ROLE_RANK": str(layout.role_rank_offset + local_rank),
        "ROLE_NAME": plan.role,
        "LOCAL_WORLD_SIZE": str(plan.nproc),
        "WORLD_SIZE": str(world),
        "GROUP_WORLD_SIZE": str(layout.group_world_size),
        "ROLE_WORLD_SIZE": str(layout.role_world_size or world),
        "MASTER_ADDR": ctx.master_addr,
        "MASTER_PORT": str(ctx.master_port),
        "TORCHELASTIC_RESTART_COUNT": str(ctx.restart_count),
        "TORCHELASTIC_MAX_RESTARTS": str(plan.restart.max_restarts),
        "TORCHELASTIC_RUN_ID": plan.run_id,
        # A fresh store on a fresh port each attempt (no stale keys): hosted by the workers' rank 0,
        # or (multi-node) by the agent of group rank 0, so no rank waits for it to come up.
        "TORCHELASTIC_USE_AGENT_STORE": str(ctx.agent_store),
        "TORCH_NCCL_ASYNC_ERROR_HANDLING": base.get("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1"),
        "TORCHELASTIC_ERROR_FILE": error_file,
        "TORCHELASTIC_SIGNALS_TO_HANDLE": SIGNALS_TO_HANDLE,
        "ERUN_RUN_DIR": plan.run_dir,
        TOKEN_VAR: ctx.token,
    })
    omp = omp_default(plan, base)
    if omp is not None:
        env["OMP_NUM_THREADS"] = omp
    if heartbeat_file:
        env[HEARTBEAT_VAR] = heartbeat_file
    if result_file:
        env[RESULT_VAR] = result_file
    if ctx.timer_file:
        env[TIMER_FILE_VAR] = ctx.timer_file
    if plan.params:
        env["ERUN_PARAMS"] = json.dumps(dict(plan.params), sort_keys=True)
    if plan.config_file:
        env["ERUN_CONFIG"] = plan.config_file
    if plan.devices:
        env["CUDA_VISIBLE_DEVICES"] = plan.devices[local_rank]
    if plan.virtual_local_rank:
        env["LOCAL_RANK"] = "0"
    env.update(plan.env)
    return env
