"""The agent with real processes: entrypoints, supervision, restarts, logs, the run record,
the failure report and the no-orphan guarantees. Every test ends with the no-survivor check."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    REPO,
    WORKERS,
    Erun,
    alive,
    read_events,
    read_summary,
    subprocess_env,
    wait_for,
    wait_for_markers,
)

from runner.errors import LaunchError
from runner.plan import EntrypointPlan, JobPlan, LogsPlan
from runner.record.read import load_run
from runner.runtime import processes
from runner.state import JobState, WorkerState

pytestmark = pytest.mark.usefixtures("no_survivors")

# The promise: a SIGKILLed agent leaves no worker or grandchild alive after this long.
AGENT_DEATH_S = 2.0


def worker_states(result_attempt: object) -> dict[int, tuple[str, int | None, str | None]]:
    return {w.rank: (w.state.value, w.exit.exit_code if w.exit else None,
                     w.exit.signal_name if w.exit else None)
            for w in result_attempt.workers}  # type: ignore[attr-defined]


def test_success_returns_the_run_result_and_records_the_run(erun: Erun) -> None:
    plan = erun.plan("exit_code.py", 0, nproc=2)
    result = erun.run(plan)

    assert (result.state, result.exit_code, len(result.attempts), result.restarts) == (
        JobState.SUCCEEDED, 0, 1, 0)
    assert result.root_cause is None and result.signal is None
    assert worker_states(result.attempts[0]) == {0: ("SUCCEEDED", 0, None), 1: ("SUCCEEDED", 0, None)}
    run_dir = Path(plan.run_dir)
    assert JobPlan.from_dict(json.loads((run_dir / "plan.json").read_text())) == plan
    summary = read_summary(run_dir)
    (segment,) = summary.pop("segments")  # the record's one segment (a rerun would add one)
    assert (segment["segment"], segment["state"], segment["attempts"], segment["pid"]) == (
        1, "SUCCEEDED", [0], os.getpid())
    assert summary == json.loads(json.dumps(result.to_dict()))
    assert (summary["state"], summary["exit_code"], summary["attempts"], summary["restarts"]) == (
        "SUCCEEDED", 0, 1, 0)
    for worker in summary["per_attempt"][0]["workers"]:
        assert worker["pid"] > 0 and worker["start"] <= worker["end"] and worker["exit_code"] == 0
    for rank in (0, 1):
        assert (run_dir / f"attempt_0/rank_{rank}/stdout.log").read_text() == f"rank {rank} attempt 0 out\n"
        assert "exiting 0" in (run_dir / f"attempt_0/rank_{rank}/stderr.log").read_text()


def test_events_record_group_and_worker_state_changes_with_timestamps(erun: Erun) -> None:
    plan = erun.plan("exit_code.py", 0, nproc=2)
    erun.run(plan)
    events = read_events(Path(plan.run_dir))
    times = [e["time"] for e in events]
    assert times == sorted(times) and all(isinstance(t, float) for t in times)
    groups = [e["state"] for e in events if e["event"] == "group_state"]
    assert groups == ["INIT", "HEALTHY", "SUCCEEDED"]
    for rank in (0, 1):
        changes = [e for e in events if e["event"] == "worker_state" and e["rank"] == rank]
        assert [c["state"] for c in changes] == ["HEALTHY", "SUCCEEDED"]
        assert changes[0]["pid"] > 0 and changes[1]["exit_code"] == 0
    assert events[-1]["event"] == "job_end" and events[-1]["state"] == "SUCCEEDED"


def test_module_entrypoint(erun: Erun) -> None:
    plan = erun.plan("", nproc=2, cwd=str(WORKERS),
                     entrypoint=EntrypointPlan("module", "exit_code", ("0",)))
    result = erun.run(plan)
    assert result.state is JobState.SUCCEEDED
    assert (Path(plan.run_dir) / "attempt_0/rank_1/stdout.log").read_text() == "rank 1 attempt 0 out\n"


def test_exec_entrypoint_runs_the_executable_as_is(erun: Erun) -> None:
    sh = shutil.which("sh")
    assert sh is not None
    script = 'echo "rank=$RANK world=$WORLD_SIZE"; [ "$RANK" = 1 ] && exit 3; exit 0'
    plan = erun.plan("", nproc=2, entrypoint=EntrypointPlan("exec", sh, ("-c", script)))
    result = erun.run(plan)
    assert (result.state, result.exit_code) == (JobState.FAILED, 1)
    assert result.root_cause is not None
    assert (result.root_cause.rank, result.root_cause.exit.exit_code) == (1, 3)
    assert (Path(plan.run_dir) / "attempt_0/rank_0/stdout.log").read_text() == "rank=0 world=2\n"


def test_missing_executable_is_a_clean_bad_input_error(erun: Erun) -> None:
    missing = str(erun.tmp_path / "no-such-program")
    plan = erun.plan("", entrypoint=EntrypointPlan("exec", missing))
    with pytest.raises(LaunchError, match="cannot start"):
        erun.run(plan)
    # The record is complete even so: a summary and the job's end in the events.
    assert read_summary(Path(plan.run_dir))["state"] == "FAILED"
    assert read_events(Path(plan.run_dir))[-1]["event"] == "job_end"

    agent = erun.start(erun.plan("", entrypoint=EntrypointPlan("exec", missing)))
    code, _, err = agent.finish()
    assert code == 2
    assert err.strip().splitlines()[-1] == f"erun: error: cannot start `{missing}`: No such file or directory"
    assert "Traceback" not in err


def test_failure_then_success_on_restart_keeps_every_attempt_logs(erun: Erun) -> None:
    plan = erun.plan("fail_once.py", erun.markers, nproc=2, max_restarts=2)
    result = erun.run(plan)

    assert (result.state, result.exit_code, len(result.attempts), result.restarts) == (
        JobState.SUCCEEDED, 0, 2, 1)
    first, second = result.attempts
    assert worker_states(first) == {0: ("STOPPED", None, "SIGTERM"), 1: ("FAILED", 1, None)}
    assert [f.rank for f in first.failures] == [1]
    assert worker_states(second) == {0: ("SUCCEEDED", 0, None), 1: ("SUCCEEDED", 0, None)}
    assert first.master_port != second.master_port  # a fresh store each attempt
    run_dir = Path(plan.run_dir)
    for attempt in (0, 1):  # TORCHELASTIC_RESTART_COUNT counted up; nothing overwritten
        for rank in (0, 1):
            assert (run_dir / f"attempt_{attempt}/rank_{rank}/stdout.log").read_text().startswith(
                f"attempt {attempt} rank {rank} stdout\n")
            assert (run_dir / f"attempt_{attempt}/rank_{rank}/stderr.log").read_text().startswith(
                f"attempt {attempt} rank {rank} stderr\n")
    decisions = [e["decision"] for e in read_events(run_dir) if "decision" in e]
    assert decisions == ["restart"]


def test_restart_budget_exhausted(erun: Erun, capfd: pytest.CaptureFixture[str]) -> None:
    plan = erun.plan("exit_code.py", "0,1", "0.5,0", nproc=2, max_restarts=2)
    result = erun.run(plan)

    assert (result.state, result.exit_code, len(result.attempts), result.restarts) == (
        JobState.FAILED, 1, 3, 2)
    assert result.root_cause is not None
    assert (result.root_cause.rank, result.root_cause.attempt, result.root_cause.exit.exit_code) == (1, 2, 1)
    summary = read_summary(Path(plan.run_dir))
    assert (summary["state"], summary["exit_code"], summary["attempts"], summary["restarts"]) == (
        "FAILED", 1, 3, 2)
    assert summary["root_cause"]["rank"] == 1 and summary["root_cause"]["exit_code"] == 1
    assert len(summary["per_attempt"]) == 3
    for attempt in range(3):
        stdout = Path(plan.run_dir) / f"attempt_{attempt}/rank_1/stdout.log"
        assert stdout.read_text() == f"rank 1 attempt {attempt} out\n"
    decisions = [(e["decision"], e["reason"]) for e in read_events(Path(plan.run_dir)) if "decision" in e]
    assert [d for d, _ in decisions] == ["restart", "restart", "stop"]
    assert decisions[-1][1] == "restart budget spent (2 of 2)"
    assert "giving up (restart budget spent (2 of 2))" in capfd.readouterr().err


def test_a_worker_exiting_zero_while_others_run_is_fine(erun: Erun) -> None:
    plan = erun.plan("exit_code.py", 0, "0,1.0", nproc=2)
    result = erun.run(plan)
    assert result.state is JobState.SUCCEEDED
    early, late = result.attempts[0].workers
    assert early.end is not None and late.end is not None and early.end < late.end
    assert not [e for e in read_events(Path(plan.run_dir)) if e["event"] == "stop"]


@pytest.mark.parametrize("signame", ["SIGSEGV", "SIGKILL"])
def test_failure_report_names_root_cause_signal_and_stderr(
    erun: Erun, capfd: pytest.CaptureFixture[str], signame: str,
) -> None:
    plan = erun.plan("die_by_signal.py", signame, erun.markers, 1, nproc=2)
    result = erun.run(plan)

    assert (result.state, result.exit_code) == (JobState.FAILED, 1)
    cause = result.root_cause
    assert cause is not None
    assert (cause.rank, cause.exit.exit_code, cause.exit.signal_name) == (1, None, signame)
    assert worker_states(result.attempts[0])[0][0] == "STOPPED"  # the other rank was stopped
    assert read_summary(Path(plan.run_dir))["root_cause"]["signal"] == signame
    err = capfd.readouterr().err
    report = err[err.index("erun: job FAILED"):]
    assert f"root cause: rank 1 (local rank 1), attempt 0: killed by {signame}" in report
    assert "stderr line 29 of rank 1" in report  # the last lines, inline
    assert "stderr line 9 of rank 1" not in report  # ...only the last ~20
    assert str(Path(plan.run_dir) / "attempt_0/rank_1/stderr.log") in report
    assert str(Path(plan.run_dir) / "attempt_0/rank_1/stdout.log") in report


def test_failure_report_has_the_traceback_from_torch_record(
    erun: Erun, capfd: pytest.CaptureFixture[str],
) -> None:
    plan = erun.plan("record_error.py", 0, nproc=2)
    result = erun.run(plan)

    cause = result.root_cause
    assert cause is not None and cause.rank == 0 and cause.exit.exit_code == 1
    assert cause.message == "ValueError: shard 7 is corrupt"
    assert "in load_shard" in cause.traceback
    assert read_summary(Path(plan.run_dir))["root_cause"]["message"] == "ValueError: shard 7 is corrupt"
    err = capfd.readouterr().err
    report = err[err.index("erun: job FAILED"):]
    assert "message:   ValueError: shard 7 is corrupt" in report
    assert "traceback (from the error file):" in report and "in load_shard" in report
    assert "about to fail" in report  # the stderr tail too
    assert f"error file: {Path(plan.run_dir) / 'attempt_0/rank_0/error.json'}" in report


def test_worker_ignoring_sigterm_is_killed_after_the_grace(
    erun: Erun, capfd: pytest.CaptureFixture[str],
) -> None:
    plan = erun.plan("ignore_sigterm.py", erun.markers, 1, nproc=2, grace_s=1.0)
    result = erun.run(plan)

    assert (result.state, result.exit_code) == (JobState.FAILED, 1)
    attempt = result.attempts[0]
    assert attempt.killed_after_grace == [0]
    assert worker_states(attempt) == {0: ("STOPPED", None, "SIGKILL"), 1: ("FAILED", 1, None)}
    summary = read_summary(Path(plan.run_dir))
    assert summary["per_attempt"][0]["killed_after_grace"] == [0]
    err = capfd.readouterr().err
    assert "rank(s) 0 still running after" in err and "of the 1 s grace; sending SIGKILL" in err


def test_console_lines_get_the_rank_prefix(erun: Erun, capfd: pytest.CaptureFixture[str]) -> None:
    erun.run(erun.plan("exit_code.py", 0, nproc=2))
    out, err = capfd.readouterr()
    assert sorted(line for line in out.splitlines() if "attempt 0 out" in line) == [
        "[0]: rank 0 attempt 0 out", "[1]: rank 1 attempt 0 out"]
    assert "[1]: rank 1 attempt 0 exiting 0" in err.splitlines()


def test_console_prefix_is_configurable_and_ranks_filtered(
    erun: Erun, capfd: pytest.CaptureFixture[str],
) -> None:
    logs = LogsPlan(prefix="<{role}/{rank}@{attempt}>", ranks=(1,))
    plan = erun.plan("exit_code.py", 0, nproc=3, logs=logs)
    erun.run(plan)
    out, err = capfd.readouterr()
    assert [line for line in out.splitlines() if "out" in line] == ["<default/1@0> rank 1 attempt 0 out"]
    assert "rank 0" not in err and "rank 2" not in err
    for rank in range(3):  # the files always get everything
        assert (Path(plan.run_dir) / f"attempt_0/rank_{rank}/stdout.log").read_text() == (
            f"rank {rank} attempt 0 out\n")


def test_a_rerun_continues_the_record_and_keeps_the_earlier_segment(erun: Erun) -> None:
    """Segment 1 fails twice (a restart), segment 2 succeeds in the same run directory: attempt
    numbers and TORCHELASTIC_RESTART_COUNT go on, segment 1's logs and attempts are kept."""
    failing = erun.plan("exit_code.py", 3, nproc=1, max_restarts=1)
    assert erun.run(failing).exit_code == 1
    run_dir = Path(failing.run_dir)
    kept = {p: p.read_bytes() for p in run_dir.glob("attempt_*/rank_0/*.log")}
    events_before = (run_dir / "events.jsonl").read_bytes()
    passing = EntrypointPlan("script", str(WORKERS / "exit_code.py"), ("0",))
    result = erun.run(dataclasses.replace(failing, entrypoint=passing))
    assert result.exit_code == 0 and [a.attempt for a in result.attempts] == [2]
    assert (run_dir / "attempt_2/rank_0/stdout.log").read_text() == "rank 0 attempt 2 out\n"
    assert {p: p.read_bytes() for p in kept} == kept
    assert (run_dir / "events.jsonl").read_bytes().startswith(events_before)
    summary = read_summary(run_dir)
    assert (summary["state"], summary["attempts"], summary["restarts"]) == ("SUCCEEDED", 3, 2)
    assert [a["attempt"] for a in summary["per_attempt"]] == [0, 1, 2]
    assert [(s["segment"], s["state"], s["attempts"]) for s in summary["segments"]] == [
        (1, "FAILED", [0, 1]), (2, "SUCCEEDED", [2])]
    record = load_run(run_dir)
    assert record.state is JobState.SUCCEEDED and [a.attempt for a in record.attempts] == [0, 1, 2]
    assert [(s.number, s.state, s.attempts) for s in record.segments] == [
        (1, "FAILED", [0, 1]), (2, "SUCCEEDED", [2])]


def test_a_run_dir_whose_agent_still_runs_is_refused(erun: Erun) -> None:
    plan = erun.plan("hang.py", erun.markers, nproc=1)
    first = erun.start(plan)
    wait_for_markers(erun.markers, 1)
    try:
        code, _, err = erun.start(plan).finish()
    finally:
        first.popen.send_signal(signal.SIGTERM)
        first.finish()
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("erun: error: `hydra.run.dir`") and "is still running" in err
    assert [s.number for s in load_run(Path(plan.run_dir)).segments] == [1]


def test_omp_default_is_set_and_noted_once(
    erun: Erun, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    plan = erun.plan("fail_once.py", erun.markers, nproc=2, max_restarts=1)
    assert erun.run(plan).restarts == 1
    notes = [e for e in read_events(Path(plan.run_dir))
             if e["event"] == "note" and "OMP_NUM_THREADS" in e["message"]]
    assert len(notes) == 1
    assert capfd.readouterr().err.count("OMP_NUM_THREADS=") == 1


def test_omp_is_left_alone_when_set(erun: Erun, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    out = erun.tmp_path / "env"
    out.mkdir()
    plan = erun.plan("dump_env.py", out, nproc=2)
    erun.run(plan)
    assert json.loads((out / "env_1.json").read_text())["OMP_NUM_THREADS"] == "3"
    assert not [e for e in read_events(Path(plan.run_dir)) if e["event"] == "note"]


# -- the agent as a subprocess --------------------------------------------------------------


def test_agent_never_imports_torch(erun: Erun) -> None:
    out = erun.tmp_path / "maps"
    out.mkdir()
    plan = erun.plan("parent_maps.py", out, nproc=2)
    plan_file = erun.tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "runner", "run-plan", str(plan_file)],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "runner.runtime.agent" in imported
    assert not {m for m in imported if m == "torch" or m.startswith("torch.")}
    for rank in (0, 1):
        maps = json.loads((out / f"maps_{rank}.json").read_text())
        assert maps["torch"] == []


@pytest.mark.parametrize("setpriv", [True, False], ids=["setpriv", "preexec_fn"])
def test_every_worker_dies_with_the_agent_by_its_parent_death_signal(
        erun: Erun, monkeypatch: pytest.MonkeyPatch, setpriv: bool) -> None:
    if setpriv and processes.SETPRIV is None:
        pytest.skip("util-linux setpriv is not installed")
    if not setpriv:
        monkeypatch.setattr(processes, "SETPRIV", None)
    out = erun.tmp_path / "pdeathsig"
    out.mkdir()
    assert erun.run(erun.plan("pdeathsig.py", out, nproc=2)).state is JobState.SUCCEEDED
    for rank in (0, 1):
        seen = json.loads((out / f"pdeathsig_{rank}.json").read_text())
        assert seen == {"signal": signal.SIGKILL, "ppid": os.getpid()}


def test_agent_in_process_leaves_torch_unimported(erun: Erun) -> None:
    plan = erun.plan("exit_code.py", 0, nproc=2)
    code = ("import json, sys\n"
            "from runner.runtime.agent import Agent\n"
            "from runner.plan import JobPlan\n"
            f"plan = JobPlan.from_dict(json.loads({plan.to_json()!r}))\n"
            "assert Agent(plan).run().exit_code == 0\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"


def read_pids(markers: Path, nproc: int) -> list[int]:
    pids = []
    for rank in range(nproc):
        pids += json.loads((markers / f"pids_a0_r{rank}.json").read_text()).values()
    return pids


def test_stop_kills_each_worker_tree_including_a_setsid_grandchild(erun: Erun) -> None:
    plan = erun.plan("spawn_child_and_hang.py", erun.markers, 1, nproc=2)
    result = erun.run(plan)
    assert result.root_cause is not None and result.root_cause.rank == 1
    pids = read_pids(erun.markers, 2)
    assert len(set(pids)) == 6
    wait_for(lambda: not any(alive(p) for p in pids), timeout=5.0, what="every tree to be gone")


def test_children_left_behind_by_successful_workers_are_swept(erun: Erun) -> None:
    code = ("import subprocess\n"
            "same_group = subprocess.Popen(['sleep', '30'])\n"
            "escaped = subprocess.Popen(['sleep', '30'], start_new_session=True)\n"
            "print(same_group.pid, escaped.pid)\n")
    plan = erun.plan("", nproc=2, entrypoint=EntrypointPlan("exec", sys.executable, ("-c", code)))
    assert erun.run(plan).state is JobState.SUCCEEDED
    pids = [int(pid) for rank in (0, 1)
            for pid in (Path(plan.run_dir) / f"attempt_0/rank_{rank}/stdout.log").read_text().split()]
    assert len(pids) == 4
    wait_for(lambda: not any(alive(p) for p in pids), timeout=5.0, what="the leftover children to be gone")


def test_agent_sigkilled_leaves_no_worker_or_grandchild(erun: Erun) -> None:
    agent = erun.start(erun.plan("spawn_child_and_hang.py", erun.markers, nproc=2))
    wait_for_markers(erun.markers, 2)
    pids = read_pids(erun.markers, 2)
    assert all(alive(p) for p in pids)
    os.kill(agent.pid, signal.SIGKILL)
    agent.finish()
    wait_for(lambda: not any(alive(p) for p in pids), timeout=AGENT_DEATH_S,
             what=f"workers and grandchildren to die within {AGENT_DEATH_S:g} s of the agent")
    assert WorkerState.HEALTHY.value in (agent.run_dir / "events.jsonl").read_text()
