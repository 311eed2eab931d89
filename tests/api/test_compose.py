"""runner.compose (the CLI's compile path, in a child), launching a composed plan, and runner.compat's
mapping (no processes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import runner
from runner.compat import LaunchConfig, elastic_launch, job_keys
from runner.errors import COMMAND_LINE, ConfigError
from runner.plan import EntrypointKind, EntrypointPlan, JobPlan


def test_compose_plans_a_job_file_with_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 no_survivors: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.yaml").write_text("module: json.tool\nnproc: 1\nparams: {lr: 0.1}\n")
    plan = runner.compose("train.yaml", ["nproc=2", "params.lr=0.5"])
    assert plan.nproc == 2 and plan.params == {"lr": 0.5} and plan.entrypoint.target == "json.tool"
    assert not (tmp_path / "outputs").exists()  # nothing started, nothing left


def test_compose_raises_the_clis_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              no_survivors: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.yaml").write_text("module: json.tool\n")
    with pytest.raises(ConfigError) as caught:
        runner.compose("train.yaml", ["nproc=0"])
    assert caught.value.key == "nproc" and caught.value.source == COMMAND_LINE


def test_launch_config_maps_to_job_keys() -> None:
    one = job_keys(LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=4, max_restarts=2,
                                rdzv_backend="c10d", rdzv_endpoint="localhost:0"))
    assert one == {"nproc": 4, "role": "default_role", "restart": {"max_restarts": 2}}  # one node: no rdzv
    many = job_keys(LaunchConfig(min_nodes=2, max_nodes=4, nproc_per_node=8, run_id="j1", rdzv_backend="c10d",
                                 rdzv_endpoint="head:29400", rdzv_timeout=60, local_addr="n1",
                                 log_line_prefix_template="[${role_name}${rank}]"))
    assert many["nnodes"] == "2:4"
    assert many["rdzv"] == {"backend": "c10d", "endpoint": "head:29400", "id": "j1",
                            "settings": {"join_timeout": 60, "local_addr": "n1"}}
    assert many["logs"] == {"prefix": "[{role}{rank}]", "prefix_space": False}


def test_launch_config_refuses_bad_node_counts_and_programs() -> None:
    with pytest.raises(ConfigError) as caught:
        job_keys(LaunchConfig(min_nodes=3, max_nodes=2, nproc_per_node=1))
    assert caught.value.key == "min_nodes"
    with pytest.raises(ConfigError) as program:
        elastic_launch(LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=1), "train.py")
    assert program.value.key == "entrypoint"


def env_and_attempt() -> tuple[str, str, str]:
    """Fails rank 1 on the first attempt: only the job file's restart budget brings it back."""
    rank, restart = os.environ["RANK"], os.environ["TORCHELASTIC_RESTART_COUNT"]
    if rank == "1" and restart == "0":
        raise RuntimeError("first attempt only")
    return os.environ["GREETING"], os.environ["WORLD_SIZE"], restart


def test_a_composed_plan_launches_a_function_with_the_job_files_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_survivors: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.yaml").write_text(
        "module: json.tool\nnproc: 1\nenv: {GREETING: hello}\nrestart: {max_restarts: 1}\n")
    plan = runner.compose("train.yaml", ["nproc=2"])
    result = runner.launch(env_and_attempt, plan=plan, run_dir="composed")
    assert result.succeeded and result.run_dir == tmp_path / "composed"
    assert result.return_values == {0: ("hello", "2", "1"), 1: ("hello", "2", "1")}
    assert [f["rank"] for f in result.failures] == [1]
    recorded = json.loads((tmp_path / "composed" / "plan.json").read_text())
    assert recorded["entrypoint"]["target"] == "runner.api.worker" and recorded["nproc"] == 2


def test_a_plan_with_job_keys_is_refused_before_anything_starts(tmp_path: Path) -> None:
    plan = JobPlan(EntrypointPlan(EntrypointKind.MODULE, "json.tool"), 1, str(tmp_path / "run"), "r1")
    for extra in ({"nproc": 2}, {"restart": {"max_restarts": 1}}):
        with pytest.raises(ConfigError) as caught:
            runner.launch(print, plan=plan, **extra)
        assert caught.value.key == next(iter(extra)) and "runner.compose" in caught.value.fix
    assert not (tmp_path / "run").exists()
