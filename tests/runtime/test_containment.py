"""Processes that shed every mark erun puts on them (`env -i setsid -f ...`: no job token, not
in the worker's group, re-parented away) still end with their attempt, and with a SIGKILLed
agent: the job's cgroup holds them, or the agent as child subreaper does. events.jsonl says
which mechanisms were in force."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from conftest import Erun, alive, read_events, wait_for, wait_for_markers

from runner.runtime import containment
from runner.state import JobState


def _daemon(markers: Path, attempt: int = 0) -> int:
    return int((markers / f"daemon_a{attempt}_r0").read_text())


def _containment(run_dir: Path) -> dict[str, Any]:
    return next(e for e in read_events(run_dir) if e["event"] == "containment")


def test_a_daemon_that_shed_the_token_dies_with_its_attempt(erun: Erun, no_survivors: str) -> None:
    # Attempt 0 starts a daemon and fails; attempt 1 succeeds only if that daemon is gone.
    agent = erun.start(erun.plan("daemonize.py", erun.markers, 1, nproc=1, max_restarts=1))
    code, _, err = agent.finish()
    assert code == 0, err
    assert "token" in _containment(agent.run_dir)["mechanisms"]
    wait_for(lambda: not alive(_daemon(erun.markers, 1)), what="the last attempt's daemon to die")


def test_a_daemon_dies_with_a_sigkilled_agent(erun: Erun, no_survivors: str) -> None:
    agent = erun.start(erun.plan("daemonize.py", erun.markers, "hang", nproc=1))
    wait_for_markers(erun.markers, 1)
    held = _containment(agent.run_dir)
    if "cgroup" not in held["mechanisms"]:
        os.kill(agent.pid, signal.SIGKILL)
        agent.finish()
        os.kill(_daemon(erun.markers), signal.SIGKILL)
        pytest.skip("no cgroup v2 here: only a cgroup holds a daemon once the agent is gone")
    os.kill(agent.pid, signal.SIGKILL)
    agent.finish()
    wait_for(lambda: not alive(_daemon(erun.markers)), what="the daemon to die with the agent")
    wait_for(lambda: not Path(held["cgroup"]).exists(), what="the guard to remove the job's cgroup")


def test_without_a_cgroup_the_subreaper_still_catches_the_daemon(
        erun: Erun, no_survivors: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(containment, "_own_cgroup", lambda: None)
    plan = erun.plan("daemonize.py", erun.markers, 0, nproc=1)
    assert erun.run(plan).state is JobState.SUCCEEDED
    assert _containment(Path(plan.run_dir))["mechanisms"] == ["subreaper", "token"]
    wait_for(lambda: not alive(_daemon(erun.markers)), what="the daemon to die with the job")
