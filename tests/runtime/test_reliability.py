"""Faults around the agent: its orphan guard killed mid-job, and the errors a dying pipe raises.
Real processes; every test checks that nothing it started survives."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Erun, alive, read_events, read_summary, wait_for, wait_for_markers

from runner import cli

# As tests/test_agent.py: how long workers and their children may outlive a SIGKILLed agent.
AGENT_DEATH_S = 5.0


def _notes(run_dir: Path, text: str) -> list[dict[str, Any]]:
    return [e for e in read_events(run_dir) if e["event"] == "note" and text in e["message"]]


def _guard_pid(run_dir: Path) -> int:
    event = wait_for(lambda: next((e for e in read_events(run_dir) if e["event"] == "guard"), None),
                     what="the guard event")
    return int(event["pid"])


def _kill_guard(run_dir: Path) -> dict[str, Any]:
    """SIGKILL the orphan guard; returns the agent's note about its replacement."""
    os.kill(_guard_pid(run_dir), signal.SIGKILL)
    notes = wait_for(lambda: _notes(run_dir, "orphan guard"), what="a note that the guard died")
    return notes[0]


def _marker_pid(markers: Path, attempt: int, rank: int) -> int:
    return int((markers / f"ready_a{attempt}_r{rank}").read_text())


def test_guard_killed_is_replaced_and_a_failed_job_still_exits_1(erun: Erun, no_survivors: str) -> None:
    agent = erun.start(erun.plan("hang.py", erun.markers, nproc=2, max_restarts=1))
    wait_for_markers(erun.markers, 2)
    note = _kill_guard(agent.run_dir)
    assert "SIGKILL" in note["message"] and alive(note["pid"])
    os.kill(_marker_pid(erun.markers, 0, 0), signal.SIGKILL)  # a restart tells the new guard
    wait_for_markers(erun.markers, 2, attempt=1)
    os.kill(_marker_pid(erun.markers, 1, 0), signal.SIGKILL)  # budget spent: the job fails
    code, _, err = agent.finish()
    assert code == 1, err
    assert read_summary(agent.run_dir)["state"] == "FAILED"
    assert len(_notes(agent.run_dir, "orphan guard")) == 1
    assert not _notes(agent.run_dir, "survived SIGKILL")
    assert "Traceback" not in err


def test_replacement_guard_kills_grandchildren_when_the_agent_dies(erun: Erun, no_survivors: str) -> None:
    agent = erun.start(erun.plan("spawn_child_and_hang.py", erun.markers, nproc=1))
    wait_for_markers(erun.markers, 1)
    pids = list(json.loads((erun.markers / "pids_a0_r0.json").read_text()).values())
    note = _kill_guard(agent.run_dir)
    os.kill(agent.pid, signal.SIGKILL)
    agent.finish()
    wait_for(lambda: not any(alive(p) for p in pids), timeout=AGENT_DEATH_S,
             what="the worker tree to die with the agent")
    wait_for(lambda: not alive(note["pid"]), what="the new guard to exit")


def test_a_broken_pipe_other_than_stdout_is_not_taken_for_a_closed_stdout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def breaks(args: object) -> int:
        raise BrokenPipeError("some other pipe")

    monkeypatch.setitem(cli.SUBCOMMANDS, "status", breaks)
    read_fd, write_fd = os.pipe()  # stdout: a pipe with a reader still there
    saved = os.dup(sys.stdout.fileno())
    try:
        sys.stdout.flush()
        os.dup2(write_fd, sys.stdout.fileno())
        with pytest.raises(BrokenPipeError):
            cli.main(["status", "x"])
        os.close(read_fd)  # now the reader has gone: the quiet exit 0 is right
        read_fd = -1
        assert cli.main(["status", "x"]) == 0
    finally:
        os.dup2(saved, sys.stdout.fileno())
        for fd in (saved, write_fd, read_fd):
            if fd >= 0:
                os.close(fd)


def test_a_stopped_worker_is_continued_so_it_runs_its_sigterm_handler(erun: Erun, no_survivors: str) -> None:
    agent = erun.start(erun.plan("trap_sigusr1.py", erun.markers, "SIGTERM", nproc=1, grace_s=30.0))
    wait_for_markers(erun.markers, 1)
    worker = _marker_pid(erun.markers, 0, 0)
    os.kill(worker, signal.SIGSTOP)
    wait_for(lambda: _state(worker) == "T", what="the worker to be stopped")
    agent.popen.send_signal(signal.SIGTERM)
    code, out, err = agent.finish()
    assert code == 128 + signal.SIGTERM, err
    assert (erun.markers / "got_a0_r0").exists(), "the stopped worker never ran its handler"
    assert "got SIGTERM" in out
    assert not _notes(agent.run_dir, "sending SIGKILL")


def _state(pid: int) -> str:
    """The process's state letter in /proc (T: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
