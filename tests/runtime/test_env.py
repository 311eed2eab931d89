"""The worker environment contract, variable by variable (no processes)."""

from __future__ import annotations

import json

import pytest

from runner.plan import EntrypointPlan, JobPlan, RestartPlan
from runner.runtime import env as envmod
from runner.runtime.env import AttemptContext, RankLayout, default_omp_threads, omp_default, worker_env

CTX = AttemptContext(restart_count=2, master_addr="node0", master_port=29511, token="tok")
BASE = {"PATH": "/usr/bin", "HOME": "/home/u"}
# Everything the agent adds on top of its own environment for a plain single-node plan.
CONTRACT = {
    "LOCAL_RANK", "RANK", "GROUP_RANK", "ROLE_RANK", "ROLE_NAME", "LOCAL_WORLD_SIZE", "WORLD_SIZE",
    "GROUP_WORLD_SIZE", "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
    "TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_MAX_RESTARTS", "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_USE_AGENT_STORE", "TORCH_NCCL_ASYNC_ERROR_HANDLING", "TORCHELASTIC_ERROR_FILE",
    "TORCHELASTIC_SIGNALS_TO_HANDLE", "OMP_NUM_THREADS",
}
ERUN_OWN = {"ERUN_RUN_DIR", "ERUN_JOB_TOKEN"}


def plan(nproc: int = 4, **fields: object) -> JobPlan:
    return JobPlan(EntrypointPlan("script", "train.py"), nproc, "/runs/r1", "job-42",
                   restart=RestartPlan(max_restarts=3), **fields)  # type: ignore[arg-type]


def test_adds_exactly_the_torchrun_contract_and_erun_own_variables() -> None:
    env = worker_env(plan(), 1, CTX, "/runs/r1/attempt_2/rank_1/error.json", BASE)
    assert set(env) - set(BASE) == CONTRACT | ERUN_OWN
    assert {k: env[k] for k in BASE} == BASE


@pytest.mark.parametrize(("name", "value"), [
    ("LOCAL_RANK", "1"),
    ("RANK", "1"),
    ("GROUP_RANK", "0"),
    ("ROLE_RANK", "1"),
    ("ROLE_NAME", "default"),
    ("LOCAL_WORLD_SIZE", "4"),
    ("WORLD_SIZE", "4"),
    ("GROUP_WORLD_SIZE", "1"),
    ("ROLE_WORLD_SIZE", "4"),
    ("MASTER_ADDR", "node0"),
    ("MASTER_PORT", "29511"),
    ("TORCHELASTIC_RESTART_COUNT", "2"),
    ("TORCHELASTIC_MAX_RESTARTS", "3"),
    ("TORCHELASTIC_RUN_ID", "job-42"),
    ("TORCHELASTIC_USE_AGENT_STORE", "False"),
    ("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1"),
    ("TORCHELASTIC_ERROR_FILE", "/runs/r1/attempt_2/rank_1/error.json"),
    ("TORCHELASTIC_SIGNALS_TO_HANDLE", "SIGTERM,SIGINT,SIGHUP,SIGQUIT"),
    ("ERUN_RUN_DIR", "/runs/r1"),
    ("ERUN_JOB_TOKEN", "tok"),
])
def test_single_node_variable(name: str, value: str) -> None:
    env = worker_env(plan(), 1, CTX, "/runs/r1/attempt_2/rank_1/error.json", BASE)
    assert env[name] == value


def test_multi_node_layout_offsets_ranks_and_sizes() -> None:
    layout = RankLayout(group_rank=2, group_world_size=3, rank_offset=8, world_size=10,
                        role_rank_offset=8, role_world_size=10)
    env = worker_env(plan(nproc=2), 1, CTX, "e.json", BASE, layout)
    assert (env["RANK"], env["LOCAL_RANK"], env["GROUP_RANK"]) == ("9", "1", "2")
    assert (env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"], env["GROUP_WORLD_SIZE"]) == ("10", "2", "3")
    assert (env["ROLE_RANK"], env["ROLE_WORLD_SIZE"]) == ("9", "10")


def test_role_name_comes_from_the_plan() -> None:
    assert worker_env(plan(role="trainer"), 0, CTX, "e.json", BASE)["ROLE_NAME"] == "trainer"


def test_nccl_async_error_handling_keeps_the_agent_value() -> None:
    env = worker_env(plan(), 0, CTX, "e.json", {**BASE, "TORCH_NCCL_ASYNC_ERROR_HANDLING": "3"})
    assert env["TORCH_NCCL_ASYNC_ERROR_HANDLING"] == "3"


def test_plan_env_is_applied_last_and_wins() -> None:
    env = worker_env(plan(env={"MASTER_ADDR": "override", "FOO": "bar"}), 0, CTX, "e.json", BASE)
    assert (env["MASTER_ADDR"], env["FOO"]) == ("override", "bar")


def test_params_config_and_devices_are_passed_only_when_set() -> None:
    bare = worker_env(plan(nproc=2), 1, CTX, "e.json", BASE)
    assert not {"ERUN_PARAMS", "ERUN_CONFIG", "CUDA_VISIBLE_DEVICES"} & set(bare)
    full = worker_env(plan(nproc=2, params={"lr": 0.1, "name": "x"}, config_file="/runs/r1/config.yaml",
                           devices=("2", "3")), 1, CTX, "e.json", BASE)
    assert json.loads(full["ERUN_PARAMS"]) == {"lr": 0.1, "name": "x"}
    assert full["ERUN_CONFIG"] == "/runs/r1/config.yaml"
    assert full["CUDA_VISIBLE_DEVICES"] == "3"


@pytest.mark.parametrize(("nproc", "cpus", "threads"),
                         [(1, 8, 8), (2, 8, 4), (3, 8, 2), (4, 2, 1), (16, 2, 1)])
def test_default_omp_threads_divides_cores_among_workers(nproc: int, cpus: int, threads: int) -> None:
    assert default_omp_threads(nproc, cpus) == threads


def test_omp_default_when_unset_and_several_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envmod, "available_cpus", lambda: 8)
    assert omp_default(plan(nproc=4), BASE) == "2"
    assert worker_env(plan(nproc=4), 0, CTX, "e.json", BASE)["OMP_NUM_THREADS"] == "2"


def test_omp_left_alone_for_one_worker() -> None:
    assert omp_default(plan(nproc=1), BASE) is None
    assert "OMP_NUM_THREADS" not in worker_env(plan(nproc=1), 0, CTX, "e.json", BASE)


def test_omp_left_alone_when_the_user_set_it() -> None:
    assert omp_default(plan(), {**BASE, "OMP_NUM_THREADS": "7"}) is None
    assert worker_env(plan(), 0, CTX, "e.json", {**BASE, "OMP_NUM_THREADS": "7"})["OMP_NUM_THREADS"] == "7"
    in_plan = plan(env={"OMP_NUM_THREADS": "5"})
    assert omp_default(in_plan, BASE) is None
    assert worker_env(in_plan, 0, CTX, "e.json", BASE)["OMP_NUM_THREADS"] == "5"
