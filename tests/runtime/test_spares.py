"""Warm spares (restart.prewarm): a restart hands each rank to an interpreter started ahead.

Real agents, real spares, real restarts: the warm worker must be indistinguishable from a cold
one (environment, argv, __main__, sys.path, exit status, traceback), spares must never outlive
the job, and a spare that died must cost nothing but its speed.
"""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path
from typing import Any

import pytest
from compiling import compile_
from conftest import WORKERS, Erun, alive, read_events, wait_for

from runner.config.dryrun import describe
from runner.errors import ConfigError
from runner.plan import EntrypointKind, EntrypointPlan, ExitRule, JobPlan, PrewarmPlan, RestartPlan
from runner.runtime.spares import SparePool, worker_argv
from runner.state import JobState

PREWARM = PrewarmPlan(modules=("tomllib",), after_s=0.1)  # light, and never imported by default
# Differ between attempts by design; everything else must be identical, cold or warm.
PER_ATTEMPT = {"MASTER_PORT", "TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_ERROR_FILE", "ERUN_HEARTBEAT_FILE",
               "ERUN_RESULT_FILE"}


def warm_plan(erun: Erun, *args: object, **fields: Any) -> JobPlan:
    plan = erun.plan("warm.py", erun.markers, *args, max_restarts=1, **fields)
    return dataclasses.replace(plan, restart=dataclasses.replace(plan.restart, prewarm=PREWARM))


def records(out: Path, attempt: int, nproc: int = 2) -> list[dict[str, Any]]:
    return [json.loads((out / f"warm_a{attempt}_r{r}.json").read_text()) for r in range(nproc)]


def healthy(events: list[dict[str, Any]], attempt: int) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "worker_state" and e["attempt"] == attempt
            and e["state"] == "HEALTHY"]


def spares_event(events: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e for e in events if e["event"] == "spares")


# -- through real restarts -------------------------------------------------------------------


def test_restart_hands_every_rank_to_its_warm_spare(erun: Erun, no_survivors: str) -> None:
    plan = warm_plan(erun)
    result = erun.run(plan)
    assert result.state is JobState.SUCCEEDED and len(result.attempts) == 2
    events = read_events(Path(plan.run_dir))
    spares = spares_event(events)
    assert spares["attempt"] == 1 and spares["modules"] == ["tomllib"] and len(spares["pids"]) == 2
    restarted = healthy(events, 1)
    assert [e.get("warm") for e in restarted] == [True, True]
    assert [e["pid"] for e in restarted] == spares["pids"]
    assert not any(e.get("warm") for e in healthy(events, 0))
    warm = records(erun.markers, 1)
    assert [w["pid"] for w in warm] == spares["pids"]
    assert all(w["preloaded"] for w in warm)
    assert not any(w["preloaded"] for w in records(erun.markers, 0))


def test_a_warm_worker_looks_exactly_like_a_cold_one(erun: Erun, no_survivors: str) -> None:
    plan = warm_plan(erun)
    assert erun.run(plan).state is JobState.SUCCEEDED
    for cold, warm in zip(records(erun.markers, 0), records(erun.markers, 1), strict=True):
        for key in ("argv", "name", "file", "path0"):
            assert warm[key] == cold[key], key
        assert warm["name"] == "__main__" and warm["path0"] == str(WORKERS)
        assert set(warm["env"]) == set(cold["env"])
        differ = {k for k in cold["env"] if cold["env"][k] != warm["env"][k]}
        assert differ <= PER_ATTEMPT, differ
        assert warm["env"]["TORCHELASTIC_RESTART_COUNT"] == "1"
        assert "attempt_1" in warm["env"]["TORCHELASTIC_ERROR_FILE"]
    ports = [e["master_port"] for e in read_events(Path(plan.run_dir))
             if e["event"] == "group_state" and e["state"] == "INIT"]
    assert records(erun.markers, 1)[0]["env"]["MASTER_PORT"] == str(ports[1])


def test_a_module_entrypoint_runs_warm_as_python_dash_m(erun: Erun, no_survivors: str) -> None:
    entrypoint = EntrypointPlan(EntrypointKind.MODULE, "warm", (str(erun.markers),))
    plan = warm_plan(erun, entrypoint=entrypoint, cwd=str(WORKERS))
    assert erun.run(plan).state is JobState.SUCCEEDED
    events = read_events(Path(plan.run_dir))
    assert [e.get("warm") for e in healthy(events, 1)] == [True, True]
    for cold, warm in zip(records(erun.markers, 0), records(erun.markers, 1), strict=True):
        assert warm["argv"] == cold["argv"] == [str(WORKERS / "warm.py"), str(erun.markers)]
        assert warm["name"] == "__main__" and warm["path0"] == cold["path0"] == str(WORKERS)


def test_an_exception_in_a_warm_worker_exits_1_with_the_users_traceback(
        erun: Erun, no_survivors: str) -> None:
    plan = warm_plan(erun, "raise")
    result = erun.run(plan)
    assert result.state is JobState.FAILED and len(result.attempts) == 2
    assert result.root_cause is not None and result.root_cause.exit.exit_code == 1
    # Both ranks raise; the one that failed first is the root cause (the other may be stopped
    # before it writes its traceback).
    rank = result.root_cause.rank
    stderr = (Path(plan.run_dir) / "attempt_1" / f"rank_{rank}" / "stderr.log").read_text()
    assert stderr.startswith("Traceback (most recent call last):\n"), stderr
    assert "ValueError: warm worker failed on purpose" in stderr
    assert "spare.py" not in stderr and "runpy" not in stderr
    assert f'File "{WORKERS / "warm.py"}"' in stderr


def test_a_warm_worker_can_start_multiprocessing_spawn_children(erun: Erun, no_survivors: str) -> None:
    plan = warm_plan(erun, "mp")
    assert erun.run(plan).state is JobState.SUCCEEDED
    assert [e.get("warm") for e in healthy(read_events(Path(plan.run_dir)), 1)] == [True, True]
    assert (erun.markers / "mp_r0").read_text() == "49"


def test_a_dead_spare_costs_only_its_speed(erun: Erun, no_survivors: str) -> None:
    plan = warm_plan(erun, "ok", 0)  # rank 1 kills the spare of local rank 0 before failing
    assert erun.run(plan).state is JobState.SUCCEEDED
    events = read_events(Path(plan.run_dir))
    spares = spares_event(events)
    restarted = healthy(events, 1)
    assert [bool(e.get("warm")) for e in restarted] == [False, True]
    assert restarted[0]["pid"] != spares["pids"][0] and restarted[1]["pid"] == spares["pids"][1]


def test_spares_never_outlive_a_job_that_succeeds(erun: Erun, no_survivors: str) -> None:
    plan = warm_plan(erun, "done")  # every rank exits 0 once the spares exist
    result = erun.run(plan)
    assert result.state is JobState.SUCCEEDED and len(result.attempts) == 1
    pids = spares_event(read_events(Path(plan.run_dir)))["pids"]
    assert pids and not any(alive(pid) for pid in pids)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_spares_die_with_an_interrupted_or_killed_agent(erun: Erun, no_survivors: str, how: int) -> None:
    agent = erun.start(warm_plan(erun, "hold"))  # attempt 0 runs on, its spares waiting
    run_dir = agent.run_dir
    pids = wait_for(lambda: next((e["pids"] for e in read_events(run_dir) if e["event"] == "spares"), None),
                    what="the spares event")
    agent.popen.send_signal(how)
    code, _, _ = agent.finish()
    assert code == (128 + how if how == signal.SIGTERM else -how)
    wait_for(lambda: not any(alive(pid) for pid in pids), what="the spares to die")


@pytest.mark.slow
def test_a_torch_worker_restarts_warm_and_initialises_gloo(erun: Erun, no_survivors: str) -> None:
    out = erun.markers
    plan = erun.plan("gloo_allreduce.py", out, "fail-once", max_restarts=1)
    plan = dataclasses.replace(plan, restart=dataclasses.replace(
        plan.restart, prewarm=PrewarmPlan(modules=("torch",), after_s=0.0)))
    assert erun.run(plan).state is JobState.SUCCEEDED
    events = read_events(Path(plan.run_dir))
    assert "spares" in {e["event"] for e in events}
    for r in range(2):
        data = json.loads((out / f"allreduce_a1_r{r}.json").read_text())
        assert data == {"rank": r, "world_size": 2, "sum": 3.0, "torchelastic": True}


# -- pure logic ------------------------------------------------------------------------------


def pool(**restart: Any) -> SparePool:
    entrypoint = restart.pop("entrypoint", EntrypointPlan(EntrypointKind.SCRIPT, "train.py"))
    restart.setdefault("prewarm", PREWARM)  # spares are opt-in: turned on explicitly
    return SparePool(JobPlan(entrypoint, 2, "run", "id", restart=RestartPlan(**restart)))


def test_spares_only_where_a_restart_can_happen_and_python_runs() -> None:
    assert not SparePool(JobPlan(EntrypointPlan(EntrypointKind.SCRIPT, "t.py"), 2, "run", "id",
                                 restart=RestartPlan(max_restarts=1))).enabled  # off by default
    assert pool(max_restarts=1).enabled
    assert not pool(max_restarts=0).enabled
    assert pool(max_restarts=0, default="always").enabled
    assert pool(max_restarts=0, rules=(ExitRule("always", signals=("SIGKILL",)),)).enabled
    assert not pool(max_restarts=1, prewarm=PrewarmPlan(modules=())).enabled
    assert not pool(max_restarts=1, entrypoint=EntrypointPlan(EntrypointKind.EXEC, "/bin/true")).enabled
    assert pool(max_restarts=1, entrypoint=EntrypointPlan(EntrypointKind.CALL, "m:f")).enabled


def test_worker_argv_drops_the_interpreter_and_its_unbuffered_flag() -> None:
    assert worker_argv(["python", "-u", "train.py", "--lr", "1"]) == ["train.py", "--lr", "1"]
    assert worker_argv(["python", "-u", "-m", "pkg.train", "x"]) == ["-m", "pkg.train", "x"]
    call = "runner.worker.call"
    assert worker_argv(["python", "-u", "-m", call, "m:f"]) == ["-m", call, "m:f"]


def test_prewarm_rejects_what_is_not_a_module_name() -> None:
    with pytest.raises(ConfigError) as e:
        PrewarmPlan(modules=("torch", "not a module"))
    assert e.value.key == "restart.prewarm.modules" and "not a module" in e.value.problem
    with pytest.raises(ConfigError) as e:
        PrewarmPlan(after_s=-1)
    assert e.value.key == "restart.prewarm.after_s"


def test_the_plan_carries_prewarm_from_the_config_and_back(tmp_path: Path) -> None:
    prewarm = {"modules": ["torch", "numpy"], "after_s": 5}
    plan = compile_(tmp_path, restart={"max_restarts": 2, "prewarm": prewarm})
    assert plan.restart.prewarm == PrewarmPlan(("torch", "numpy"), 5.0)
    assert JobPlan.from_dict(json.loads(plan.to_json())).restart.prewarm == plan.restart.prewarm
    assert "warm spares importing torch, numpy from 5 s" in describe(plan)
    off = compile_(tmp_path, restart={"max_restarts": 2})  # spares are opt-in: off unless asked for
    assert off.restart.prewarm == PrewarmPlan((), 2.0) and not SparePool(off).enabled
    assert "warm spares" not in describe(off)
    err = pytest.raises(ConfigError, compile_, tmp_path, restart={"prewarm": {"modules": ["a b"]}}).value
    assert err.key == "restart.prewarm.modules"
