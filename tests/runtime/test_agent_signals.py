"""Signals to the agent (run as `python -m runner run-plan plan.json`): stop signals are
forwarded, then the grace, then SIGKILL, and erun exits 128+N; SIGUSR1/SIGUSR2 are forwarded
and the job goes on. Every test ends with the no-survivor check."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from conftest import Erun, read_events, read_summary, wait_for, wait_for_markers

pytestmark = pytest.mark.usefixtures("no_survivors")


def stop_events(run_dir: Path) -> list[dict[str, object]]:
    return [e for e in read_events(run_dir) if e["event"] == "stop"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_stop_signal_is_forwarded_and_erun_exits_128_plus_n(erun: Erun, signum: signal.Signals) -> None:
    agent = erun.start(erun.plan("hang.py", erun.markers, nproc=2, grace_s=5.0))
    wait_for_markers(erun.markers, 2)
    agent.popen.send_signal(signum)
    code, _, err = agent.finish()

    assert code == 128 + signum
    summary = read_summary(agent.run_dir)
    assert (summary["state"], summary["exit_code"], summary["signal"]) == (
        "INTERRUPTED", 128 + signum, signum.name)
    assert summary["root_cause"] is None
    workers = summary["per_attempt"][0]["workers"]
    assert [w["state"] for w in workers] == ["STOPPED", "STOPPED"]
    assert summary["per_attempt"][0]["killed_after_grace"] == []
    assert [e["signal"] for e in stop_events(agent.run_dir)] == [signum.name]  # forwarded as is
    assert f"erun: interrupted by {signum.name} after" in err
    assert f"stopped rank(s) 0, 1 of attempt 0; logs in {agent.run_dir}" in err


def test_worker_ignoring_the_stop_signal_is_killed_after_the_grace(erun: Erun) -> None:
    agent = erun.start(erun.plan("ignore_sigterm.py", erun.markers, nproc=2, grace_s=1.0))
    wait_for_markers(erun.markers, 2)
    agent.popen.send_signal(signal.SIGTERM)
    code, _, err = agent.finish()

    assert code == 128 + signal.SIGTERM
    summary = read_summary(agent.run_dir)
    assert summary["state"] == "INTERRUPTED"
    assert summary["per_attempt"][0]["killed_after_grace"] == [0, 1]
    assert [w["signal"] for w in summary["per_attempt"][0]["workers"]] == ["SIGKILL", "SIGKILL"]
    assert "of the 1 s grace; sending SIGKILL" in err


def test_second_stop_signal_during_the_grace_kills_at_once(erun: Erun) -> None:
    # The grace outlasts the agent's timeout: only the second SIGINT can end the job in time.
    agent = erun.start(erun.plan("ignore_sigterm.py", erun.markers, nproc=2, grace_s=300.0))
    wait_for_markers(erun.markers, 2)
    agent.popen.send_signal(signal.SIGINT)
    wait_for(lambda: stop_events(agent.run_dir), what="the agent to start stopping")
    agent.popen.send_signal(signal.SIGINT)
    code, _, _ = agent.finish(timeout=30)

    assert code == 128 + signal.SIGINT
    summary = read_summary(agent.run_dir)
    assert summary["state"] == "INTERRUPTED"
    assert summary["per_attempt"][0]["killed_after_grace"] == [0, 1]


def test_stop_signal_while_stopping_a_failed_group_ends_the_job(erun: Erun) -> None:
    # Rank 1 fails, rank 0 ignores SIGTERM: the agent waits out the grace. A SIGTERM to the
    # agent then must end the job, not be swallowed by a restart.
    plan = erun.plan("ignore_sigterm.py", erun.markers, 1, nproc=2, max_restarts=3, grace_s=300.0)
    agent = erun.start(plan)
    wait_for(lambda: stop_events(agent.run_dir), what="the agent to stop the failed group")
    agent.popen.send_signal(signal.SIGTERM)
    code, _, _ = agent.finish(timeout=30)

    assert code == 128 + signal.SIGTERM
    summary = read_summary(agent.run_dir)
    assert (summary["state"], summary["attempts"], summary["signal"]) == ("INTERRUPTED", 1, "SIGTERM")
    assert summary["root_cause"]["rank"] == 1  # the failure that was being handled is kept
    assert summary["per_attempt"][0]["killed_after_grace"] == [0]
    assert not (agent.run_dir / "attempt_1").exists()


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGUSR2])
def test_usr_signals_are_forwarded_without_stopping_the_job(erun: Erun, signum: signal.Signals) -> None:
    agent = erun.start(erun.plan("trap_sigusr1.py", erun.markers, signum.name, nproc=2))
    wait_for_markers(erun.markers, 2)
    agent.popen.send_signal(signum)
    code, out, _ = agent.finish()

    assert code == 0
    wait_for_markers(erun.markers, 2, name="got")
    summary = read_summary(agent.run_dir)
    assert (summary["state"], summary["attempts"]) == ("SUCCEEDED", 1)
    forwarded = [e["signal"] for e in read_events(agent.run_dir) if e["event"] == "signal_forwarded"]
    assert forwarded == [signum.name]
    assert not stop_events(agent.run_dir)
    assert f"[0]: got {signum.name}" in out.splitlines() and f"[1]: got {signum.name}" in out.splitlines()
