"""States, results, plans and reports: exit-status decoding, the plan's JSON round trip, the
summary and the failure report, the error file and log helpers (no processes)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from runner.errors import ConfigError, ExitStatus, LaunchError
from runner.paths import RunPaths
from runner.plan import EntrypointKind, EntrypointPlan, JobPlan, LogsPlan, RdzvPlan, RestartPlan
from runner.record import writer as record
from runner.runtime import final_report as report
from runner.runtime import logs
from runner.runtime.console import Console
from runner.runtime.workers import read_error_file
from runner.state import (
    AttemptResult,
    ExitInfo,
    Failure,
    JobState,
    RunResult,
    WorkerResult,
    WorkerState,
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


def failure(rank: int, time: float, returncode: int, attempt: int = 0, **fields: object) -> Failure:
    return Failure(rank=rank, local_rank=rank, attempt=attempt, time=time,
                   exit=ExitInfo.from_returncode(returncode),
                   stdout_log=f"/runs/r/attempt_{attempt}/rank_{rank}/stdout.log",
                   stderr_log=f"/runs/r/attempt_{attempt}/rank_{rank}/stderr.log", **fields)  # type: ignore[arg-type]


def failed_result() -> RunResult:
    cause = failure(1, 10.0, -signal.SIGSEGV, attempt=1, message="killed by SIGSEGV",
                    stderr_tail=["loading", "segfault ahead"])
    other = failure(0, 10.5, 1, attempt=1)
    first = AttemptResult(0, 30000, 1.0, 5.0, WorkerState.FAILED, failures=[failure(0, 4.0, 2)])
    second = AttemptResult(
        1, 30001, 6.0, 11.0, WorkerState.FAILED,
        workers=[WorkerResult(0, 0, 100, 6.0, 10.5, WorkerState.FAILED, ExitInfo(1)),
                 WorkerResult(1, 1, 101, 6.0, 10.0, WorkerState.FAILED, ExitInfo(None, signal.SIGSEGV))],
        failures=[other, cause], killed_after_grace=[2], restart_count=1,
    )
    return RunResult(JobState.FAILED, 1, [first, second], root_cause=cause, run_dir="/runs/r")


def test_root_cause_is_the_first_failure_in_time_then_the_lowest_rank() -> None:
    early, late = failure(3, 1.0, 1), failure(0, 2.0, 1)
    assert report.root_cause([late, early]) is early
    tie_low, tie_high = failure(1, 1.0, 1), failure(2, 1.0, 1)
    assert report.root_cause([tie_high, tie_low]) is tie_low
    assert report.root_cause([]) is None


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


def test_interrupted_summary_names_the_signal() -> None:
    result = RunResult(JobState.INTERRUPTED, 143, [AttemptResult(0, 1, 0.0)], signal=signal.SIGTERM)
    data = result.to_dict()
    assert (data["state"], data["exit_code"], data["signal"], data["root_cause"]) == (
        "INTERRUPTED", 143, "SIGTERM", None)
    assert report.render(result, 2.0) == (
        "erun: interrupted by SIGTERM after 2.0 s; no worker was running; logs in ")
    attempt = AttemptResult(3, 1, 0.0, killed_after_grace=[1])
    attempt.workers = [WorkerResult(r, r, 10 + r, 0.0, 1.0, WorkerState.STOPPED, None) for r in (0, 1)]
    result = RunResult(JobState.INTERRUPTED, 130, [attempt], signal=signal.SIGINT, run_dir="/runs/a")
    assert report.render(result, 2.0) == (
        "erun: interrupted by SIGINT after 2.0 s; stopped rank(s) 0, 1 of attempt 3 "
        "(SIGKILL after the grace: 1); logs in /runs/a")


def test_success_report_is_one_line() -> None:
    attempts = [AttemptResult(0, 1, 0.0), AttemptResult(1, 2, 1.0, restart_count=1)]
    result = RunResult(JobState.SUCCEEDED, 0, attempts,
                       run_dir="/runs/r")
    text = report.render(result, 3.25)
    assert text == "erun: job succeeded in 3.2 s (2 attempts, 1 restart); run dir /runs/r"


def test_failure_report_is_self_contained() -> None:
    text = report.render(failed_result(), 12.0)
    assert "job FAILED after 12.0 s, 2 attempt(s), 1 restart(s)" in text
    assert "root cause: rank 1 (local rank 1), attempt 1: killed by SIGSEGV" in text
    assert "    segfault ahead" in text
    assert "/runs/r/attempt_1/rank_1/stderr.log" in text
    assert "/runs/r/attempt_1/rank_1/stdout.log" in text
    assert "attempt 0 rank 0: exited 2" in text and "attempt 1 rank 0: exited 1" in text
    assert "message:" not in text  # the message only repeats the exit status


def test_failure_report_with_traceback_and_empty_stderr() -> None:
    cause = failure(0, 1.0, 1, message="ValueError: bad", traceback="Traceback...\nValueError: bad\n",
                    error_file="/runs/r/attempt_0/rank_0/error.json")
    text = report.render(RunResult(JobState.FAILED, 1, [AttemptResult(0, 1, 0.0, failures=[cause])],
                                   root_cause=cause), 1.0)
    assert "message:   ValueError: bad" in text
    assert "traceback (from the error file):\n    Traceback...\n    ValueError: bad" in text
    assert "its stderr is empty" in text
    assert "error file: /runs/r/attempt_0/rank_0/error.json" in text


# -- error files, logs, the run directory ----------------------------------------------------


def test_read_error_file_in_torch_record_format(tmp_path: Path) -> None:
    path = tmp_path / "error.json"
    path.write_text(json.dumps({"message": {"message": "ValueError: boom", "extraInfo": {
        "py_callstack": "Traceback (most recent call last):\nValueError: boom\n", "timestamp": "1"}}}))
    traceback = "Traceback (most recent call last):\nValueError: boom\n"
    assert read_error_file(path) == ("ValueError: boom", traceback)
    path.write_text(json.dumps({"message": "plain text"}))
    assert read_error_file(path) == ("plain text", "")
    path.write_text("{not json")
    assert read_error_file(path) == ("", "")
    assert read_error_file(tmp_path / "missing.json") == ("", "")


def test_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "stderr.log"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(50)) + b"bad \xff byte")
    lines = logs.tail(path)
    assert len(lines) == 20
    assert lines[0] == "line 31" and lines[-1] == "bad \ufffd byte"
    assert logs.tail(path, lines=2) == ["line 49", "bad \ufffd byte"]
    assert logs.tail(tmp_path / "missing.log") == []
    (tmp_path / "empty.log").write_bytes(b"")
    assert logs.tail(tmp_path / "empty.log") == []


def test_make_prefix() -> None:
    assert logs.make_prefix("[{rank}]:", 3, 1, "r", 0) == b"[3]: "
    assert logs.make_prefix("{role}/{local_rank}@{attempt} ", 3, 1, "trainer", 2) == b"trainer/1@2 "
    assert logs.make_prefix("", 3, 1, "r", 0) == b""


def test_output_stream_files_every_byte_and_prefixes_whole_lines(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    with open(tmp_path / "console", "w+") as console:
        stream = logs.OutputStream(read_fd, tmp_path / "stdout.log", Console(out=console), b"[1]: ")
        os.write(write_fd, b"one\ntw")
        assert stream.pump()
        os.write(write_fd, b"o\nthree")
        os.close(write_fd)
        assert not stream.pump()  # EOF: closed, the partial line flushed
        assert not stream.open
        console.seek(0)
        assert console.read() == "[1]: one\n[1]: two\n[1]: three\n"
    os.close(read_fd)
    assert (tmp_path / "stdout.log").read_bytes() == b"one\ntwo\nthree"
    assert stream.last_line == b"three"


def test_run_paths_layout(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    assert paths.stdout(2, 3) == tmp_path / "attempt_2" / "rank_3" / "stdout.log"
    assert paths.stderr(0, 1) == tmp_path / "attempt_0" / "rank_1" / "stderr.log"
    assert paths.error_file(1, 0) == tmp_path / "attempt_1" / "rank_0" / "error.json"
    assert (paths.plan.name, paths.events.name, paths.summary.name) == (
        "plan.json", "events.jsonl", "summary.json")


def test_run_dir_is_created_with_the_plan_and_refused_once_it_holds_a_run(tmp_path: Path) -> None:
    plan = JobPlan(EntrypointPlan("script", "x.py"), 1, str(tmp_path / "a" / "run"), "r")
    paths = record.open_run_dir(plan)
    assert JobPlan.from_dict(json.loads(paths.plan.read_text())) == plan
    record.EventLog(paths.events).close()
    with pytest.raises(ConfigError) as info:
        record.open_run_dir(plan)
    assert info.value.key == "run_dir" and "already holds a run" in info.value.problem


def test_event_log_notes_reach_the_console_and_the_file(tmp_path: Path) -> None:
    with open(tmp_path / "console", "w+") as console:
        events = record.EventLog(tmp_path / "events.jsonl", Console(err=console))
        events.write("group_state", attempt=0, state="HEALTHY")
        events.note("hello", rank=1)
        events.close()
        console.seek(0)
        assert console.read() == "erun: hello\n"
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(e["event"], e.get("state"), e.get("message")) for e in lines] == [
        ("group_state", "HEALTHY", None), ("note", None, "hello")]
    assert all(isinstance(e["time"], float) for e in lines)
