"""How much to measure: one `BenchConfig` per mode (smoke, quick, full).

Every repetition count and size of every metric lives here, so that a mode's cost is read in
one place. How long each mode takes is in bench/README.md; each run's results list the seconds
every metric took.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchConfig:
    """Repetitions, sizes and timeouts of every metric; a metric reads only its own fields."""

    mode: str
    launch_reps: int  # trivial workers
    launch_torch_reps: int
    launch_trivial_nprocs: tuple[int, ...]
    launch_torch_nprocs: tuple[int, ...]
    launch_launchers: tuple[str, ...]
    launch_timeout_s: float
    restart_cases: tuple[tuple[int, str, int], ...]  # (nproc, "exit" | "sigkill", repetitions)
    restart_launchers: tuple[str, ...]
    restart_timeout_s: float
    # torchrun with its default shared store often hangs until the timeout (DESIGN.md): run it
    # this many times, in the first restart_shared_store_cases cases only.
    restart_shared_store_reps: int
    restart_shared_store_cases: int
    # A failure right after init, before the warm spares are ready (erun and torchrun-fresh).
    restart_cold_reps: int
    stubborn_reps: int
    stubborn_torchrun_reps: int  # each costs torchrun's fixed 30 s grace
    stubborn_grace_s: float
    overhead_s: float
    overhead_reps: int
    overhead_launchers: tuple[str, ...]
    multinode_nodes: tuple[int, ...]  # the init cases: N nodes of 1 worker each
    multinode_reps: int  # per launcher and init case
    multinode_absorb_reps: int
    # torchrun's default shared store deadlocks absorbing a late joiner until the timeout (torch
    # 2.13, bench/multinode.py): run it this many times (at most multinode_absorb_reps).
    multinode_deadlock_reps: int
    multinode_timeout_s: float
    multinode_launchers: tuple[str, ...]
    sweep_points: int  # a multirun of this many 1-process jobs
    sweep_sleep_s: float  # each job's worker sleeps this long
    sweep_reps: int
    sweep_timeout_s: float
    scale_agents: tuple[int, ...]  # N agents of one job (one worker each), erun torchrun vs torchrun
    scale_reps: int
    scale_timeout_s: float
    scale_launchers: tuple[str, ...]
    api_nprocs: tuple[int, ...]  # runner.launch of a trivial function vs torch's elastic_launch
    api_reps: int
    api_timeout_s: float
    api_launchers: tuple[str, ...]


ALL = ("erun", "erun-hydra", "torchrun", "floor")
RESTART = ("erun", "erun-cold", "erun-hydra", "torchrun-fresh", "torchrun", "floor")
AGENTS = ("erun", "erun-hydra", "torchrun")
NODES = ("erun", "torchrun", "torchrun-fresh")
SCALE = ("erun", "erun-plan", "torchrun")  # erun: `erun torchrun`; erun-plan: run-plan, no Hydra
API = ("erun", "elastic_launch")  # runner.launch, torch's elastic_launch

FULL = BenchConfig(
    mode="full", launch_reps=5, launch_torch_reps=5,
    launch_trivial_nprocs=(1, 2, 4, 8, 16), launch_torch_nprocs=(1, 2, 4, 8, 16),
    launch_launchers=ALL, launch_timeout_s=120.0,
    restart_cases=((2, "exit", 5), (2, "sigkill", 5), (4, "exit", 5), (4, "sigkill", 5)),
    restart_launchers=RESTART, restart_timeout_s=60.0, restart_shared_store_reps=3,
    restart_shared_store_cases=4, restart_cold_reps=3,
    stubborn_reps=3, stubborn_torchrun_reps=2, stubborn_grace_s=2.0,
    overhead_s=20.0, overhead_reps=2, overhead_launchers=AGENTS,
    multinode_nodes=(2, 4), multinode_reps=5, multinode_absorb_reps=5, multinode_deadlock_reps=1,
    multinode_timeout_s=90.0, multinode_launchers=NODES,
    sweep_points=8, sweep_sleep_s=2.0, sweep_reps=3, sweep_timeout_s=120.0,
    scale_agents=(2, 4, 8), scale_reps=3, scale_timeout_s=120.0, scale_launchers=SCALE,
    api_nprocs=(4,), api_reps=5, api_timeout_s=120.0, api_launchers=API,
)

# About 3 minutes on 2 busy cores: every metric, erun and torchrun side by side in each, one
# repetition where a run costs several seconds. Left out: launch at other sizes, restarts of 4
# ranks, the stubborn rank (torchrun's side costs its fixed 30 s grace), torchrun's absorb
# deadlock (a minute of timeout), the 8-point sweep.
QUICK = BenchConfig(
    mode="quick", launch_reps=3, launch_torch_reps=2,
    launch_trivial_nprocs=(8,), launch_torch_nprocs=(1,),
    launch_launchers=ALL, launch_timeout_s=60.0,
    # erun-hydra restarts in the same agent as erun (Hydra runs once, before the first attempt).
    restart_cases=((2, "exit", 1), (2, "sigkill", 1)),
    restart_launchers=("erun", "erun-cold", "torchrun-fresh", "torchrun", "floor"),
    restart_timeout_s=15.0, restart_shared_store_reps=1, restart_shared_store_cases=1, restart_cold_reps=1,
    stubborn_reps=0, stubborn_torchrun_reps=0, stubborn_grace_s=2.0,
    overhead_s=3.0, overhead_reps=1, overhead_launchers=AGENTS,
    multinode_nodes=(2, 4), multinode_reps=1, multinode_absorb_reps=1, multinode_deadlock_reps=0,
    multinode_timeout_s=75.0, multinode_launchers=NODES,
    sweep_points=4, sweep_sleep_s=1.0, sweep_reps=1, sweep_timeout_s=120.0,
    scale_agents=(2, 4), scale_reps=1, scale_timeout_s=90.0, scale_launchers=("erun", "torchrun"),
    api_nprocs=(4,), api_reps=1, api_timeout_s=90.0, api_launchers=API,
)

SMOKE = BenchConfig(
    mode="smoke", launch_reps=1, launch_torch_reps=1, launch_trivial_nprocs=(2,), launch_torch_nprocs=(),
    launch_launchers=("erun", "torchrun", "floor"), launch_timeout_s=30.0,
    restart_cases=((2, "exit", 1),), restart_launchers=("erun",),
    restart_timeout_s=20.0, restart_shared_store_reps=0, restart_shared_store_cases=0, restart_cold_reps=0,
    stubborn_reps=0, stubborn_torchrun_reps=0, stubborn_grace_s=2.0,
    overhead_s=1.0, overhead_reps=1, overhead_launchers=("erun",),
    multinode_nodes=(2,), multinode_reps=1, multinode_absorb_reps=0, multinode_deadlock_reps=0,
    multinode_timeout_s=60.0, multinode_launchers=("erun",),
    sweep_points=2, sweep_sleep_s=0.2, sweep_reps=1, sweep_timeout_s=60.0,
    scale_agents=(2,), scale_reps=1, scale_timeout_s=60.0, scale_launchers=("erun",),
    api_nprocs=(2,), api_reps=1, api_timeout_s=60.0, api_launchers=("erun",),
)

MODES = {c.mode: c for c in (FULL, QUICK, SMOKE)}
