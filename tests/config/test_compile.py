"""The compiler and its helpers, in-process: config in, plan (or one ConfigError) out. No processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from compiling import CPU_HOST, GPU_HOST, compile_, ctx
from conftest import REPO
from omegaconf import OmegaConf

from runner.config import params
from runner.config.compile import compile_job, parse_nnodes, parse_nproc
from runner.config.keys import suggest_key, unknown_keys
from runner.config.schema import JobConf
from runner.config.sources import KeySources
from runner.devices import HostInfo, parse_visible_devices, visible_gpus
from runner.errors import ConfigError
from runner.plan import BackoffKind, EntrypointKind, JobPlan, RuleAction
from runner.worker import call


def error(tmp_path: Path, **keys: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        compile_(tmp_path, **keys)
    return info.value


# -- entrypoints -------------------------------------------------------------------------------


def test_script_is_resolved_to_an_absolute_path_and_params_follow_args(tmp_path: Path) -> None:
    plan = compile_(tmp_path, args=["--epochs", "3"], params={"lr": 1e-3, "optim": {"name": "adam"}})
    assert plan.entrypoint.kind is EntrypointKind.SCRIPT
    assert plan.entrypoint.target == str(tmp_path / "train.py")
    assert plan.entrypoint.args == ("--epochs", "3", "--lr=0.001", "--optim.name=adam")
    assert dict(plan.params) == {"lr": 1e-3, "optim": {"name": "adam"}}


def test_a_relative_script_in_a_job_file_is_found_next_to_the_file(tmp_path: Path) -> None:
    jobs = tmp_path / "project"
    jobs.mkdir()
    (jobs / "train.py").touch()
    sources = KeySources(job_file=str(jobs / "train.yaml"), job_keys=frozenset({"entrypoint"}))
    cfg = OmegaConf.merge(OmegaConf.structured(JobConf), {"entrypoint": "train.py"})
    plan = compile_job(cfg, ctx(tmp_path, sources=sources))
    assert plan.entrypoint.target == str(jobs / "train.py")


def test_a_script_set_on_the_command_line_is_relative_to_the_working_directory(tmp_path: Path) -> None:
    sources = KeySources(job_file=str(tmp_path / "elsewhere" / "x.yaml"), cli_keys=frozenset({"entrypoint"}))
    err = pytest.raises(ConfigError, compile_job,
                        OmegaConf.merge(OmegaConf.structured(JobConf), {"entrypoint": "nope.py"}),
                        ctx(tmp_path, sources=sources)).value
    assert err.key == "entrypoint" and err.source == "command line"


@pytest.mark.parametrize("style,expected", [
    ("flags", ("--a.b=1", "--flag=true", "--items=[1,2]", "--none=null")),
    ("overrides", ("a.b=1", "flag=true", "items=[1,2]", "none=null")),
    ("env", ()),
])
def test_params_styles(tmp_path: Path, style: str, expected: tuple[str, ...]) -> None:
    values = {"flag": True, "a": {"b": 1}, "items": [1, 2], "none": None}
    plan = compile_(tmp_path, params_as=style, params=values)
    assert plan.entrypoint.args == expected


def test_module_exec_and_call_entrypoints(tmp_path: Path) -> None:
    module = compile_(tmp_path, entrypoint=None, module="json.tool", params={"x": 1})
    assert module.entrypoint.kind is EntrypointKind.MODULE and module.entrypoint.target == "json.tool"
    assert module.entrypoint.args == ("--x=1",)
    program = compile_(tmp_path, entrypoint=None, exec="true")
    assert program.entrypoint.argv() == ["true"]
    fn = compile_(tmp_path, entrypoint=None, call="json:dumps", params={"obj": 1})
    assert fn.entrypoint.argv()[-2:] == ["runner.worker.call", "json:dumps"]
    assert fn.entrypoint.args == ()  # a callable gets params as keyword arguments, not argv


def test_the_job_name_defaults_to_the_job_file_then_the_entrypoint(tmp_path: Path) -> None:
    assert compile_(tmp_path).name == "train"
    assert compile_(tmp_path, context=ctx(tmp_path, job_name="exp1")).name == "exp1"
    assert compile_(tmp_path, name="given").name == "given"


# -- sizes and devices -------------------------------------------------------------------------


@pytest.mark.parametrize("value,host,expected", [
    (3, CPU_HOST, 3), ("2", CPU_HOST, 2), ("cpu", CPU_HOST, 4), ("auto", CPU_HOST, 4),
    ("gpu", GPU_HOST, 3), ("auto", GPU_HOST, 3), ("CPU", CPU_HOST, 4),
])
def test_parse_nproc(value: Any, host: HostInfo, expected: int) -> None:
    assert parse_nproc(value, host) == expected


def test_nproc_gpu_without_devices_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no CUDA device is visible"):
        parse_nproc("gpu", CPU_HOST)


@pytest.mark.parametrize("value,expected", [(1, (1, 1)), ("2", (2, 2)), ("1:4", (1, 4)), ("3:3", (3, 3))])
def test_parse_nnodes(value: Any, expected: tuple[int, int]) -> None:
    assert parse_nnodes(value) == expected


def test_isolate_gpus_gives_each_local_rank_one_device(tmp_path: Path) -> None:
    plan = compile_(tmp_path, host=GPU_HOST, nproc="gpu", isolate_gpus=True)
    assert plan.nproc == 3 and plan.devices == ("0", "1", "2")
    shared = compile_(tmp_path, host=GPU_HOST, nproc="gpu")
    assert shared.devices == ()  # default: every rank sees all devices and picks LOCAL_RANK


def test_virtual_local_rank_maps_devices_as_torchrun_does(tmp_path: Path) -> None:
    """torch 2.13 (LocalElasticAgent._set_local_rank_env): rank i gets the i-th entry of the
    agent's CUDA_VISIBLE_DEVICES, stripped, else i itself, whether or not GPUs exist."""
    plan = compile_(tmp_path, nproc=2, virtual_local_rank=True)  # CPU_HOST: no CUDA_VISIBLE_DEVICES
    assert plan.devices == ("0", "1") and plan.virtual_local_rank
    listed = HostInfo(cpus=4, gpus=(), gpu_source="test", cuda_visible="4, GPU-x ,6")
    assert compile_(tmp_path, host=listed, nproc=3, virtual_local_rank=True).devices == ("4", "GPU-x", "6")
    for keys in ({"nproc": 4}, {"nproc": 2, "isolate_gpus": True}):
        with pytest.raises(ConfigError) as caught:
            compile_(tmp_path, host=listed, virtual_local_rank=True, **keys)
        assert caught.value.key == ("isolate_gpus" if "isolate_gpus" in keys else "virtual_local_rank")


def test_visible_gpus_reads_the_fake_count_then_cuda_visible_devices() -> None:
    assert visible_gpus({"ERUN_FAKE_GPU_COUNT": "2"})[0] == ("0", "1")
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "3,GPU-abc"})[0] == ("3", "GPU-abc")
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""})[0] == ()
    assert parse_visible_devices("1,-1,2") == ("1",)


# -- rendezvous, policies, env, logs -----------------------------------------------------------


def test_multi_node_rendezvous(tmp_path: Path) -> None:
    plan = compile_(tmp_path, nnodes="1:4", rdzv={"backend": "c10d", "endpoint": "node0", "id": "j"})
    assert (plan.rdzv.min_nodes, plan.rdzv.max_nodes, plan.rdzv.backend) == (1, 4, "c10d")
    static = compile_(tmp_path, nnodes=2, node_rank=1, rdzv={"backend": "static", "endpoint": "node0:29500"})
    assert static.rdzv.settings["rank"] == 1


def test_restart_logs_env_and_cwd_reach_the_plan(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    plan = compile_(tmp_path, restart={"max_restarts": 2, "stop_grace_s": 1.5}, env={"FOO": 1},
                    logs={"ranks": [0], "prefix": "{role}{rank}>"}, cwd="work", role="trainer")
    assert (plan.restart.max_restarts, plan.restart.stop_grace_s) == (2, 1.5)
    assert dict(plan.env) == {"FOO": "1"}
    assert plan.logs.ranks == (0,) and plan.logs.prefix == "{role}{rank}>"
    assert plan.cwd == str(tmp_path / "work") and plan.role == "trainer"


def test_several_nodes_meet_through_c10d_by_default(tmp_path: Path) -> None:
    plan = compile_(tmp_path, nnodes="1:4", rdzv={"endpoint": "node0:29400", "id": "j7"})
    assert (plan.rdzv.backend, plan.rdzv.endpoint, plan.rdzv.id) == ("c10d", "node0:29400", "j7")
    assert (plan.rdzv.min_nodes, plan.rdzv.max_nodes) == (1, 4)


def test_restart_policy_and_health_reach_the_plan(tmp_path: Path) -> None:
    rules = [{"action": "give_up", "exit_codes": [2]}, {"action": "always", "signals": ["KILL"]},
             {"action": "give_up", "reasons": ["memory_limit"]}]
    restart = {"max_restarts": 4, "backoff": {"kind": "exponential", "initial_s": 2, "jitter": 0.1},
               "rules": rules, "default": "give_up", "crash_loop_failures": 3, "crash_loop_window_s": 60,
               "reset_after_s": 600}
    health = {"heartbeat_timeout_s": 30, "stall_timeout_s": 600, "memory_limit_mb": 4096, "file_timer": True}
    plan = compile_(tmp_path, restart=restart, health=health, logs={"panel": "off"})
    r = plan.restart
    assert (r.backoff.kind, r.backoff.initial_s, r.backoff.jitter) == (BackoffKind.EXPONENTIAL, 2, 0.1)
    assert [(x.action, x.exit_codes, x.signals, x.reasons) for x in r.rules] == [
        (RuleAction.GIVE_UP, (2,), (), ()), (RuleAction.ALWAYS, (), ("SIGKILL",), ()),
        (RuleAction.GIVE_UP, (), (), ("memory_limit",))]
    assert (r.default, r.crash_loop_failures, r.crash_loop_window_s, r.reset_after_s) == (
        RuleAction.GIVE_UP, 3, 60, 600)
    h = plan.health
    assert (h.heartbeat_timeout_s, h.stall_timeout_s, h.memory_limit_mb, h.file_timer) == (
        30, 600, 4096, True)
    assert plan.logs.panel == "off"


@pytest.mark.parametrize("keys,key", [
    ({"restart": {"backoff": {"kind": "linear"}}}, "restart.backoff.kind"),
    ({"restart": {"backoff": {"jitter": 2}}}, "restart.backoff.jitter"),
    ({"restart": {"rules": [{"action": "maybe", "exit_codes": [1]}]}}, "restart.rules.0.action"),
    ({"restart": {"rules": [{"action": "always"}]}}, "restart.rules.0"),
    ({"restart": {"rules": [{"exit_codes": [1]}, {"signals": ["SIGNOPE"]}]}}, "restart.rules.1.signals"),
    ({"restart": {"rules": [{"reasons": ["oom"]}]}}, "restart.rules.0.reasons"),
    ({"restart": {"default": "retry"}}, "restart.default"),
    ({"restart": {"crash_loop_failures": -1}}, "restart.crash_loop_failures"),
    ({"health": {"memory_limit_mb": -1}}, "health.memory_limit_mb"),
    ({"health": {"interval_s": 0}}, "health.interval_s"),
    ({"logs": {"panel": "sometimes"}}, "logs.panel"),
])
def test_bad_policies_name_their_key(tmp_path: Path, keys: dict[str, Any], key: str) -> None:
    assert error(tmp_path, **keys).key == key


@pytest.mark.parametrize("keys,key", [
    ({"nproc": 0}, "nproc"),
    ({"nproc": "lots"}, "nproc"),
    ({"nproc": True}, "nproc"),
    ({"nnodes": "4:2"}, "nnodes"),
    ({"nnodes": 2}, "rdzv.endpoint"),  # several nodes need somewhere to meet
    ({"module": "json"}, "module"),  # and entrypoint: two entrypoints
    ({"entrypoint": "missing.py"}, "entrypoint"),
    ({"rdzv": {"backend": "zookeeper"}}, "rdzv.backend"),
    ({"rdzv": {"backend": "c10d", "endpoint": "h:0"}}, "rdzv.endpoint"),
    ({"rdzv": {"backend": "static", "endpoint": "h"}}, "rdzv.endpoint"),
    ({"node_rank": 0}, "node_rank"),
    ({"restart": {"max_restarts": -1}}, "restart.max_restarts"),
    ({"env": {"WORLD_SIZE": "3"}}, "env.WORLD_SIZE"),
    ({"logs": {"ranks": [2]}}, "logs.ranks"),
    ({"logs": {"prefix": "{nope}"}}, "logs.prefix"),
    ({"logs": {"prefix": "{"}}, "logs.prefix"),
    ({"params_as": "argv"}, "params_as"),
    ({"role": ""}, "role"),
    ({"isolate_gpus": True}, "isolate_gpus"),
])
def test_bad_values_name_their_key(tmp_path: Path, keys: dict[str, Any], key: str) -> None:
    assert error(tmp_path, **keys).key == key


def test_a_near_miss_backend_gets_a_suggestion(tmp_path: Path) -> None:
    assert "did you mean `c10d`" in error(tmp_path, rdzv={"backend": "c10"}).one_line()


def test_errors_name_the_job_file_that_set_the_key(tmp_path: Path) -> None:
    sources = KeySources(job_file=str(tmp_path / "train.yaml"), job_keys=frozenset({"nproc"}))
    cfg = OmegaConf.merge(OmegaConf.structured(JobConf), {"entrypoint": "train.py", "nproc": 0})
    (tmp_path / "train.py").touch()
    with pytest.raises(ConfigError) as info:
        compile_job(cfg, ctx(tmp_path, sources=sources))
    assert info.value.source is not None and info.value.source.endswith("train.yaml")


def test_missing_and_unresolvable_values_are_reported(tmp_path: Path) -> None:
    assert error(tmp_path, params={"lr": "???"}).key == "params.lr"
    assert error(tmp_path, params={"lr": "${nope}"}).key == "params.lr"


def test_the_plan_round_trips_through_json(tmp_path: Path) -> None:
    plan = compile_(tmp_path, params={"lr": 0.1}, env={"A": "b"}, nproc=2)
    assert JobPlan.from_dict(json.loads(plan.to_json())) == plan


# -- keys, params, call ------------------------------------------------------------------------


def test_unknown_keys_and_suggestions() -> None:
    assert unknown_keys({"nporc": 1, "params": {"any": {"thing": 1}}, "restart": {"max_restart": 1}}) == [
        "nporc", "restart.max_restart"]
    assert "`nproc`" in suggest_key("nporc")
    assert "`restart.max_restarts`" in suggest_key("restart.max_restart")
    assert "params" in suggest_key("learning_rate")  # not `cluster.warning_s`: another depth
    assert "`restart.max_restarts`" in suggest_key("max_restarts")  # the right name, wrong place


def test_params_render_sorted_and_flattened() -> None:
    assert params.render({"b": 1, "a": {"y": "s", "x": 2.5}}, "flags") == ["--a.x=2.5", "--a.y=s", "--b=1"]


def test_call_runs_the_callable_with_params(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "mod_under_test.py").write_text("def fn(a, b=2):\n    return a + b\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ERUN_PARAMS", json.dumps({"a": 3}))
    monkeypatch.delenv("TORCHELASTIC_ERROR_FILE", raising=False)
    assert call.main(["mod_under_test:fn"]) == 5


def test_call_writes_the_traceback_to_the_error_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "mod_failing.py").write_text("def fn():\n    raise ValueError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ERUN_PARAMS", "{}")
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(tmp_path / "error.json"))
    with pytest.raises(ValueError):
        call.main(["mod_failing:fn"])
    body = json.loads((tmp_path / "error.json").read_text())["message"]
    assert body["message"] == "ValueError: boom" and "raise ValueError" in body["extraInfo"]["py_callstack"]


def test_the_config_layer_does_not_import_torch() -> None:
    code = ("import sys, runner.app, runner.config.compile, runner.config.dryrun, "
            "runner.config.hydra_errors, runner.config.schema_json; sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60).returncode == 0
