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
    sweep_launchers: tuple[str, ...]  # of bench/sweep.py's
    scale_agents: tuple[int, ...]  # N agents of one job (one worker each), erun torchrun vs torchrun
    scale_reps: int
    scale_timeout_s: float
    scale_launchers: tuple[str, ...]
    slurm_reps: int  # a 2-node job on the loopback Slurm cluster (bench/slurm.py), per launcher
    slurm_timeout_s: float
    api_nprocs: tuple[int, ...]  # runner.launch of a trivial function vs torch's elastic_launch
    api_reps: int
    api_timeout_s: float
    api_launchers: tuple[str, ...]


ALL = ("erun", "erun-hydra", "torchrun", "floor")
RESTART = ("erun", "erun-cold", "erun-hydra", "torchrun-fresh", "torchrun", "floor")
AGENTS = ("erun", "erun-hydra", "torchrun")
NODES = ("erun", "torchrun", "torchrun-fresh")
# erun: `erun torchrun`; erun-hydra: the same through Hydra; erun-plan: `erun run-plan`
SCALE = ("erun", "erun-hydra", "erun-plan", "torchrun")
API = ("erun", "elastic_launch")  # runner.launch, torch's elastic_launch
SWEEP = ("erun -m", "erun -m slots=N", "hydra basic", "hydra joblib")  # bench/sweep.py

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
    sweep_points=8, sweep_sleep_s=2.0, sweep_reps=3, sweep_timeout_s=120.0, sweep_launchers=SWEEP,
    scale_agents=(2, 4, 8), scale_reps=3, scale_timeout_s=120.0, scale_launchers=SCALE,
    slurm_reps=5, slurm_timeout_s=90.0,
    api_nprocs=(4,), api_reps=5, api_timeout_s=120.0, api_launchers=API,
)

# About 2.5 minutes on 2 busy cores (CI runs it after the tests, only to check that the suite
# works): every metric, erun and its reference side by side in each, one repetition where a run
# costs several seconds. Left out: launch at other sizes, restarts of 4 ranks, torchrun's default
# shared store (its restart hangs until the timeout; torchrun-fresh is the restart baseline),
# the stubborn rank (torchrun's side costs its fixed 30 s grace), 4 nodes and 4+ agents,
# torchrun's absorb deadlock (a minute of timeout), the 8-point sweep.
QUICK = BenchConfig(
    mode="quick", launch_reps=2, launch_torch_reps=1,
    launch_trivial_nprocs=(8,), launch_torch_nprocs=(1,),
    launch_launchers=ALL, launch_timeout_s=60.0,
    # erun-hydra restarts in the same agent as erun (Hydra runs once, before the first attempt).
    restart_cases=((2, "exit", 1), (2, "sigkill", 1)),
    restart_launchers=("erun", "erun-cold", "torchrun-fresh"),
    restart_timeout_s=15.0, restart_shared_store_reps=0, restart_shared_store_cases=0, restart_cold_reps=1,
    stubborn_reps=0, stubborn_torchrun_reps=0, stubborn_grace_s=2.0,
    overhead_s=3.0, overhead_reps=1, overhead_launchers=AGENTS,
    multinode_nodes=(2,), multinode_reps=1, multinode_absorb_reps=1, multinode_deadlock_reps=0,
    multinode_timeout_s=75.0, multinode_launchers=NODES,
    sweep_points=4, sweep_sleep_s=1.0, sweep_reps=1, sweep_timeout_s=120.0, sweep_launchers=SWEEP,
    scale_agents=(2,), scale_reps=1, scale_timeout_s=90.0, scale_launchers=("erun", "torchrun"),
    # A 2-node Slurm job costs 20-60 s a launcher on 2 busy cores: not in --quick
    # (tests/test_bench_slurm.py runs one erun job on the test cluster instead).
    slurm_reps=0, slurm_timeout_s=90.0,
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
    sweep_launchers=("erun -m", "hydra basic"),
    scale_agents=(2,), scale_reps=1, scale_timeout_s=60.0, scale_launchers=("erun",),
    slurm_reps=0, slurm_timeout_s=60.0,
    api_nprocs=(2,), api_reps=1, api_timeout_s=60.0, api_launchers=("erun",),
)

MODES = {c.mode: c for c in (FULL, QUICK, SMOKE)}
