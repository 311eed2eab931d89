"""States, results, plans and paths: exit-status decoding, the plan's JSON round trip, the
summary, the root-cause rule (no processes)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
from conftest import failed_result, failure

from runner.errors import ConfigError, ExitStatus, LaunchError
from runner.paths import RunPaths
from runner.plan import EntrypointKind, EntrypointPlan, JobPlan, LogsPlan, RdzvPlan, RestartPlan
from runner.runtime import final_report as report
from runner.state import (
    AttemptResult,
    ExitInfo,
    JobState,
    RunResult,
    WorkerState,
    first_failure,
    signal_name,
)

# -- exit statuses ---------------------------------------------------------------------------


@pytest.mark.parametrize(("returncode", "code", "sig", "text"), [
    (0, 0, None, "exited 0"),
    (1, 1, None, "exited 1"),
    (137, 137, None, "exited 137"),
    (-signal.SIGKILL, None, "SIGKILL", "killed by SIGKILL"),
    (-signal.SIGSEGV, None, "SIGSEGV", "killed by SIGSEGV"),
    (-signal.SIGTERM, None, "SIGTERM", "killed by SIGTERM"),
])
def test_exit_info_decodes_popen_return_codes(returncode: int, code: int | None, sig: str | None,
                                              text: str) -> None:
    info = ExitInfo.from_returncode(returncode)
    assert (info.exit_code, info.signal_name, info.describe()) == (code, sig, text)
    assert info.ok is (returncode == 0)


def test_signal_name_of_an_unknown_number() -> None:
    assert signal_name(signal.SIGUSR1) == "SIGUSR1"
    assert signal_name(999) == "signal 999"


def test_exit_statuses() -> None:
    assert (ExitStatus.SUCCESS, ExitStatus.JOB_FAILED, ExitStatus.BAD_INPUT) == (0, 1, 2)
    assert ExitStatus.for_signal(signal.SIGINT) == 130
    assert ExitStatus.for_signal(signal.SIGTERM) == 143
    assert ConfigError("k", "bad").exit_status == LaunchError("x").exit_status == ExitStatus.BAD_INPUT


def test_config_error_is_one_line_naming_key_source_and_fix() -> None:
    error = ConfigError("nproc", "is 0", "use 1 or more", source="job/train.yaml")
    assert str(error) == "erun: error: job/train.yaml: `nproc` is 0; use 1 or more"


def test_worker_states_that_are_finished() -> None:
    assert {s for s in WorkerState if s.finished} == {WorkerState.STOPPED, WorkerState.SUCCEEDED,
                                                      WorkerState.FAILED}


# -- plans -----------------------------------------------------------------------------------


def full_plan(tmp_path: Path) -> JobPlan:
    return JobPlan(
        EntrypointPlan("module", "pkg.train", ("--lr", 0.1)), 3, str(tmp_path / "run"), "rid",
        name="train", role="trainer", env={"A": 1}, cwd=str(tmp_path),
        restart=RestartPlan(max_restarts=2, stop_grace_s=1.5), logs=LogsPlan("<{rank}>", ranks=[0, 2]),
        rdzv=RdzvPlan("c10d", "host:29400", "jid", 1, 2, {"join_timeout": 60}),
        master_addr="host", devices=("0", "1", "2"), params={"lr": 0.1, "layers": [1, 2]},
        config_file=str(tmp_path / "config.yaml"),
    )


def test_plan_json_round_trip(tmp_path: Path) -> None:
    plan = full_plan(tmp_path)
    data = json.loads(plan.to_json())
    assert data["version"] == 1
    assert data["entrypoint"]["kind"] == "module"
    assert data["logs"]["ranks"] == [0, 2]
    again = JobPlan.from_dict(data)
    assert again == plan
    assert again.entrypoint.kind is EntrypointKind.MODULE
    assert again.to_json() == plan.to_json()


def test_plan_normalises_values(tmp_path: Path) -> None:
    plan = full_plan(tmp_path)
    assert plan.entrypoint.args == ("--lr", "0.1")
    assert dict(plan.env) == {"A": "1"}
    assert plan.logs.ranks == (0, 2)
    with pytest.raises(TypeError):
        plan.env["B"] = "2"  # type: ignore[index]
    assert JobPlan(EntrypointPlan("script", "x.py"), 1, "rel/dir", "r").run_dir == os.path.abspath("rel/dir")


@pytest.mark.parametrize(("kind", "argv"), [
    ("script", [sys.executable, "-u", "train.py", "a", "1"]),
    ("module", [sys.executable, "-u", "-m", "train.py", "a", "1"]),
    ("call", [sys.executable, "-u", "-m", "runner.worker.call", "train.py", "a", "1"]),
    ("exec", ["train.py", "a", "1"]),
])
def test_entrypoint_argv_as_torchrun_builds_it(kind: str, argv: list[str]) -> None:
    assert EntrypointPlan(kind, "train.py", ("a", 1)).argv() == argv  # type: ignore[arg-type]


@pytest.mark.parametrize(("build", "key"), [
    (lambda: EntrypointPlan("script", ""), "entrypoint.script"),
    (lambda: JobPlan(EntrypointPlan("script", "x"), 0, "d", "r"), "nproc"),
    (lambda: JobPlan(EntrypointPlan("script", "x"), 2, "d", "r", devices=("0",)), "devices"),
    (lambda: JobPlan(EntrypointPlan("script", "x"), 1, "d", "r", role=""), "role"),
    (lambda: LogsPlan(prefix="{nope}"), "logs.prefix"),
    (lambda: RdzvPlan(min_nodes=3, max_nodes=2), "nnodes"),
])
def test_plan_invariants_raise_config_errors(build: object, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()  # type: ignore[operator]
    assert info.value.key == key


def test_logs_plan_rank_filter() -> None:
    assert LogsPlan().shows(5)
    assert LogsPlan(ranks=(0, 2)).shows(2) and not LogsPlan(ranks=(0, 2)).shows(1)
    assert not LogsPlan(console=False).shows(0)


# -- results and the report ------------------------------------------------------------------


def test_root_cause_is_the_first_failure_in_time_then_the_lowest_rank() -> None:
    early, late = failure(3, 1.0, 1), failure(0, 2.0, 1)
    assert first_failure([late, early]) is early
    tie_low, tie_high = failure(1, 1.0, 1), failure(2, 1.0, 1)
    assert first_failure([tie_high, tie_low]) is tie_low
    assert first_failure([]) is None


def test_a_regroup_is_an_attempt_but_not_a_restart() -> None:
    # attempt 1 re-formed the group for a joining node (same restart count); attempt 2 restarted
    attempts = [AttemptResult(i, 30000 + i, float(i), restart_count=count, state=WorkerState.STOPPED)
                for i, count in enumerate((0, 0, 1))]
    result = RunResult(JobState.SUCCEEDED, 0, attempts, run_dir="r")
    assert (result.to_dict()["attempts"], result.restarts) == (3, 1)
    assert "(3 attempts, 1 restart)" in report.render(result, 1.0)
    assert RunResult(JobState.FAILED, 1, []).restarts == 0


def test_run_result_summary() -> None:
    data = failed_result().to_dict()
    assert (data["state"], data["exit_code"], data["attempts"], data["restarts"]) == ("FAILED", 1, 2, 1)
    assert data["root_cause"] == {"rank": 1, "attempt": 1, "exit_code": None, "signal": "SIGSEGV",
                                  "message": "killed by SIGSEGV"}
    second = data["per_attempt"][1]
    assert second["killed_after_grace"] == [2]
    assert second["workers"][1] == {"rank": 1, "local_rank": 1, "pid": 101, "start": 6.0, "end": 10.0,
                                    "state": "FAILED", "exit_code": None, "signal": "SIGSEGV"}
    json.dumps(data)  # JSON-ready as is


def test_run_paths_layout(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    assert paths.stdout(2, 3) == tmp_path / "attempt_2" / "rank_3" / "stdout.log"
    assert paths.stderr(0, 1) == tmp_path / "attempt_0" / "rank_1" / "stderr.log"
    assert paths.error_file(1, 0) == tmp_path / "attempt_1" / "rank_0" / "error.json"
    assert (paths.plan.name, paths.events.name, paths.summary.name) == (
        "plan.json", "events.jsonl", "summary.json")


