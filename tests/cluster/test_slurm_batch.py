"""runner.cluster.batch without a cluster: the batch script's process runs a step (a test worker
in place of srun) and answers Slurm's warning (SIGUSR1) once: the step gets it, every node's
record gets a `preempted` event, and `scontrol requeue` runs (a recording stand-in on PATH),
unless a restart rule gives up on reason `preempted`. The real thing, on a real cluster, is
test_slurm_jobs.py's preemption test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import WORKERS, read_events, subprocess_env, wait_for_markers

from runner.plan import EntrypointPlan, ExitRule, JobPlan, RestartPlan, RuleAction

pytestmark = pytest.mark.usefixtures("no_survivors")


def run_batch(tmp_path: Path, rules: tuple[ExitRule, ...] = ()) -> tuple[int, str, Path]:
    """Start the batch process on a step that exits 0 on SIGUSR1, warn it, wait for its end."""
    run_dir, markers, bin_dir = tmp_path / "run", tmp_path / "markers", tmp_path / "bin"
    for folder in (run_dir / "node_0", markers, bin_dir):
        folder.mkdir(parents=True)
    (run_dir / "node_0" / "events.jsonl").write_text("")
    plan = JobPlan(EntrypointPlan("script", "train.py"), 1, str(run_dir), "r",
                   restart=RestartPlan(rules=rules))
    (run_dir / "plan.json").write_text(plan.to_json())
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.args"}\n')
    scontrol.chmod(0o755)
    env = subprocess_env({"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SLURM_JOB_ID": "77"})
    batch = subprocess.Popen([sys.executable, "-m", "runner.cluster.batch", str(run_dir / "plan.json"), "4",
                              sys.executable, str(WORKERS / "trap_sigusr1.py"), str(markers)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_markers(markers, 1)
        batch.send_signal(signal.SIGUSR1)
        out, _ = batch.communicate(timeout=60)
    finally:
        if batch.poll() is None:
            batch.kill()
            batch.wait()
    assert (markers / "got_a0_r0").exists()  # the step got the warning
    return batch.returncode, out, tmp_path / "scontrol.args"


def test_the_warning_reaches_the_step_marks_the_record_and_requeues_the_job(tmp_path: Path) -> None:
    code, out, requeued = run_batch(tmp_path)
    assert code == 0, out
    assert requeued.read_text() == "requeue 77\n"
    assert "Slurm warns of the job's end (SIGUSR1, 4 s ahead)" in out and "requeued Slurm job 77" in out
    (event,) = [e for e in read_events(tmp_path / "run" / "node_0") if e["event"] == "preempted"]
    assert (event["job_id"], event["requeue"]) == ("77", True)


def test_a_give_up_rule_on_preempted_keeps_the_job_from_being_requeued(tmp_path: Path) -> None:
    code, out, requeued = run_batch(tmp_path, (ExitRule(RuleAction.GIVE_UP, reasons=("preempted",)),))
    assert code == 0, out
    assert not requeued.exists()
    assert "not requeued (restart.rules: give_up on preempted)" in out
    events = read_events(tmp_path / "run" / "node_0")
    assert [e["requeue"] for e in events if e["event"] == "preempted"] == [False]
