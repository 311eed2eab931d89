"""Health watchdogs and restart policies with real processes: a hung rank found by its heartbeat
or by torch's file timer, a stalled rank, a rank over its memory limit, backoff, exit-code rules,
the crash-loop guard and the budget reset. Each test ends with no survivors."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

import pytest
from conftest import Erun, read_events, read_summary, wait_for

from runner.plan import BackoffPlan, ExitRule, HealthPlan, JobPlan
from runner.state import JobState

pytestmark = pytest.mark.usefixtures("no_survivors")


def with_policy(plan: JobPlan, **restart: object) -> JobPlan:
    return dataclasses.replace(plan, restart=dataclasses.replace(plan.restart, **restart))


def reasons(run_dir: str) -> list[tuple[int, int, str]]:
    summary = read_summary(Path(run_dir))
    return [(f["attempt"], f["rank"], f["reason"]) for a in summary["per_attempt"] for f in a["failures"]]


def test_silent_heartbeat_restarts_the_group_then_succeeds(erun: Erun) -> None:
    plan = erun.plan("heartbeat_hang.py", erun.markers, max_restarts=1,
                     health=HealthPlan(heartbeat_timeout_s=1.0, interval_s=0.2))
    result = erun.run(plan)
    assert result.state is JobState.SUCCEEDED
    assert reasons(plan.run_dir) == [(0, 1, "heartbeat_timeout")]
    notes = [e["message"] for e in read_events(Path(plan.run_dir)) if e["event"] == "note"]
    assert any("rank 1: no heartbeat for" in n and "stopping the group" in n for n in notes)


def test_ranks_that_never_beat_are_not_watched(erun: Erun) -> None:
    health = HealthPlan(heartbeat_timeout_s=0.5, interval_s=0.1)
    plan = erun.plan("fail_after.py", 1.5, 0, nproc=1, health=health)
    assert erun.run(plan).state is JobState.SUCCEEDED


def test_torch_file_timer_expiry_fails_the_rank_not_the_agent(erun: Erun) -> None:
    health = HealthPlan(file_timer=True)
    plan = erun.plan("file_timer.py", erun.markers, nproc=1, max_restarts=1, health=health)
    result = erun.run(plan)
    assert result.state is JobState.SUCCEEDED  # the agent lived on and restarted the group
    assert reasons(plan.run_dir) == [(0, 0, "timer_expired")]
    assert "train_step" in result.attempts[0].failures[0].message


def test_stalled_rank_is_found_without_code_changes(erun: Erun) -> None:
    plan = erun.plan("hang.py", erun.markers, nproc=1, health=HealthPlan(stall_timeout_s=1.0, interval_s=0.2))
    result = erun.run(plan)
    assert result.state is JobState.FAILED
    assert result.root_cause is not None and result.root_cause.reason == "stalled"
    assert "no CPU use and no output" in result.root_cause.message


def test_memory_limit_stops_the_group_with_a_clear_reason(
    erun: Erun, capfd: pytest.CaptureFixture[str],
) -> None:
    plan = erun.plan("alloc.py", erun.markers, 300, health=HealthPlan(memory_limit_mb=150, interval_s=0.2))
    result = erun.run(plan)
    assert result.state is JobState.FAILED
    cause = result.root_cause
    assert cause is not None and (cause.rank, cause.reason) == (1, "memory_limit")
    assert "over health.memory_limit_mb=150" in cause.message
    assert "memory_limit: RSS of its process tree is" in capfd.readouterr().err


def test_fixed_backoff_waits_before_the_next_attempt(erun: Erun) -> None:
    plan = with_policy(erun.plan("fail_after.py", 0, 1, 1, nproc=1, max_restarts=1),
                       backoff=BackoffPlan("fixed", initial_s=1.5))
    result = erun.run(plan)
    assert result.state is JobState.SUCCEEDED
    gap = result.attempts[1].start - result.attempts[0].end  # type: ignore[operator]
    assert 1.5 <= gap < 15


def test_stop_signal_during_backoff_interrupts(erun: Erun) -> None:
    plan = with_policy(erun.plan("fail_after.py", 0, 1, nproc=1, max_restarts=1),
                       backoff=BackoffPlan("fixed", initial_s=30))
    agent = erun.start(plan)
    run_dir = Path(plan.run_dir)
    events = run_dir / "events.jsonl"
    wait_for(lambda: events.exists() and "restarting in 30.0 s" in events.read_text(),
             what="the agent to start backing off")
    agent.popen.send_signal(signal.SIGTERM)
    code, _, err = agent.finish(timeout=10)
    assert code == 128 + signal.SIGTERM
    assert read_summary(run_dir)["state"] == "INTERRUPTED"
    assert "while backing off" in err


def test_exit_code_rule_gives_up_with_budget_left(erun: Erun) -> None:
    plan = with_policy(erun.plan("fail_after.py", 0, 2, nproc=1, max_restarts=3),
                       rules=(ExitRule("give_up", exit_codes=(2,)),))
    result = erun.run(plan)
    assert result.state is JobState.FAILED and len(result.attempts) == 1


def test_sigkill_rule_restarts_without_budget(erun: Erun) -> None:
    plan = with_policy(erun.plan("die_by_signal.py", "SIGKILL", erun.markers, nproc=1, max_restarts=0),
                       rules=(ExitRule("always", signals=("SIGKILL",)),), crash_loop_failures=2,
                       crash_loop_window_s=60)
    result = erun.run(plan)
    # Always restarted, never charged: only the crash-loop guard ends it (3 failures > 2).
    assert result.state is JobState.FAILED
    assert len(result.attempts) == 3
    assert all(a.failures[0].exit.signal_name == "SIGKILL" for a in result.attempts)
    notes = [e["message"] for e in read_events(Path(plan.run_dir)) if e["event"] == "note"]
    assert "crash loop: 3 failures within 60 s" in notes[-1]


def test_budget_comes_back_after_a_healthy_run(erun: Erun) -> None:
    # Each attempt runs 1.2 s healthy, then fails; the budget is 1 but resets after 1 s healthy.
    plan = with_policy(erun.plan("fail_after.py", 1.2, 1, 3, nproc=1, max_restarts=1), reset_after_s=1.0)
    result = erun.run(plan)
    assert result.state is JobState.SUCCEEDED
    assert len(result.attempts) == 4


def test_a_rank_that_survives_sigkill_does_not_wedge_the_stop(
    erun: Erun, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    """A rank in uninterruptible sleep outlives SIGKILL; stopping must still end in bounded time.

    The process is real; only the delivery of the agent's SIGKILL to its group is withheld
    (as the kernel withholds it from a task in D state). The final sweep then kills it."""
    from runner.runtime import agent, processes
    real_signal_group = processes.signal_group

    def withhold_sigkill(pid: int, signum: int) -> bool:
        return True if signum == signal.SIGKILL else real_signal_group(pid, signum)

    monkeypatch.setattr(processes, "signal_group", withhold_sigkill)
    monkeypatch.setattr(agent, "KILL_WAIT_S", 0.5)
    plan = erun.plan("ignore_sigterm.py", erun.markers, 1, nproc=2, grace_s=0.5)
    result = erun.run(plan, timeout=30)
    assert result.state is JobState.FAILED
    assert result.attempts[0].killed_after_grace == [0]
    notes = [e["message"] for e in read_events(Path(plan.run_dir)) if e["event"] == "note"]
    stuck = [n for n in notes if n.startswith("rank 0 (pid") and "survived SIGKILL for 0.5 s" in n]
    assert len(stuck) == 1 and stuck[0] in capfd.readouterr().err


def test_a_rank_writing_its_own_log_files_is_as_active_as_their_last_write(tmp_path: Path) -> None:
    """Without pipes (a tight open-file limit), a rank's output activity, which the stall watchdog
    reads, is its log files' modification time."""
    import os
    import time

    from runner.paths import RunPaths
    from runner.plan import EntrypointKind, EntrypointPlan
    from runner.runtime.workers import WorkerGroup

    paths = RunPaths(tmp_path / "run")
    plan = JobPlan(EntrypointPlan(EntrypointKind.EXEC, "true", ()), 1, str(paths.run_dir), "r1")
    group = WorkerGroup(plan, paths, attempt=0, to_files=True)
    worker = group.workers[0]
    worker.start = time.time() - 100
    assert time.monotonic() - group.last_output(worker) >= 99  # nothing written: since its start
    log = paths.stderr(0, worker.rank)
    log.parent.mkdir(parents=True)
    log.write_text("x")
    os.utime(log, (time.time() - 30, time.time() - 30))
    assert 29 <= time.monotonic() - group.last_output(worker) < 60
