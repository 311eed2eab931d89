"""Standby agents and points prepared ahead (runner.sweep.standby, runner.sweep.run): a point's
agent is an interpreter started ahead, its workers see what a fresh agent's see, a point whose
environment changes how an interpreter starts gets a fresh one, and a point prepared while
another runs but never started leaves no folder. Real sweeps of tests/workers/sweep_point.py,
real standby processes, under the no-survivor check."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import WORKERS
from erun_cli import erun, subprocess_env

from runner.sweep import standby
from runner.sweep.standby import StandbyAgents, same_startup

pytestmark = pytest.mark.usefixtures("no_survivors")

SPARE = "spare.py"
# What differs between any two runs of a job besides its folder: its port, ids and token.
PER_RUN = {"MASTER_PORT", "TORCHELASTIC_RUN_ID", "ERUN_JOB_TOKEN", "ERUN_RUN_ID"}


def test_only_what_an_interpreter_reads_as_it_starts_needs_a_fresh_one() -> None:
    base = {"PATH": "/usr/bin", "HOME": "/root", "X": "1"}
    assert same_startup(base, {**base, "X": "2", "CUDA_VISIBLE_DEVICES": "3", "ERUN_SLOT": "1"})
    for name, value in [("PYTHONPATH", "/src"), ("LC_ALL", "C"), ("LANG", "C"), ("PATH", "/bin"),
                        ("LD_PRELOAD", "x.so"), ("HOME", "/tmp"), ("PYTHONHASHSEED", "0")]:
        assert not same_startup(base, {**base, name: value}), name
    assert not same_startup({**base, "PYTHONWARNINGS": "error"}, base)  # one the point has not


def write_job(folder: Path, sleep: float, extra: str = "") -> Path:
    markers = folder / "markers"
    markers.mkdir(exist_ok=True)
    (folder / "point.yaml").write_text(
        f"entrypoint: {WORKERS / 'sweep_point.py'}\nnproc: 1\nrestart:\n  stop_grace_s: 2\n"
        f"params:\n  markers: {markers}\n  sleep: {sleep}\n  code: 0\n  tag: x\n{extra}")
    return markers


def stamps(markers: Path) -> dict[str, dict[str, object]]:
    return {json.loads(p.read_text())["run_dir"].rsplit("/", 1)[1]: json.loads(p.read_text())
            for p in markers.glob("start_*") if p.suffix != ".tmp"}


def test_each_agent_is_a_standby_unless_its_point_changes_how_an_interpreter_starts(tmp_path: Path) -> None:
    markers = write_job(tmp_path, sleep=0.8)
    # Point 0's agent: the standby started with erun; point 1's: one started while point 0 ran.
    warm = erun(["-m", "+job=point.yaml", "params.tag=a,b", "hydra.launcher.slots=1",
                 "hydra.sweep.dir=warm"], tmp_path, timeout=60)
    assert warm.returncode == 0, warm.stderr
    warm_points = stamps(markers)
    assert sorted(warm_points) == ["0", "1"]
    for stamp in warm_points.values():  # the workers' parent: a standby that became the agent
        assert Path(str(stamp["agent"][1])).name == SPARE, stamp["agent"]  # type: ignore[index]
    for stamp_file in markers.glob("start_*"):
        stamp_file.unlink()
    cold = erun(["-m", "+job=point.yaml", "params.tag=a,b", "hydra.launcher.slots=1",
                 "+hydra.job.env_set.LC_ALL=C", "hydra.sweep.dir=cold"], tmp_path, timeout=60)
    assert cold.returncode == 0, cold.stderr
    cold_points = stamps(markers)
    assert sorted(cold_points) == ["0", "1"]
    for stamp in cold_points.values():  # LC_ALL changes how Python starts: fresh agents
        assert stamp["agent"][1:4] == ["-m", "runner", "run-plan"], stamp["agent"]  # type: ignore[index]
    # The workers of a standby agent and of a fresh one see the same environment.
    warm_env, cold_env = warm_points["0"]["env"], cold_points["0"]["env"]
    assert isinstance(warm_env, dict) and isinstance(cold_env, dict)
    assert set(warm_env) == set(cold_env) - {"LC_ALL"}
    assert {k: v.replace("/warm/", "/cold/") for k, v in warm_env.items() if k not in PER_RUN} == {
        k: v for k, v in cold_env.items() if k not in PER_RUN | {"LC_ALL"}}


def test_a_point_prepared_ahead_and_never_started_leaves_no_folder(tmp_path: Path) -> None:
    markers = write_job(tmp_path, sleep=0)
    # Point 0 runs until point 1 is prepared (its folder made while point 0 runs), then fails:
    # fail_fast stops the sweep before point 1 starts.
    result = erun(["-m", "+job=point.yaml", "params.tag=a,b", "params.code=1", "+params.wait_for=1",
                   "hydra.launcher.slots=1", "hydra.launcher.fail_fast=true", "hydra.sweep.dir=sweep"],
                  tmp_path, timeout=60)
    assert result.returncode == 1, result.stderr
    assert json.loads((markers / "awaited_a").read_text()) is True  # prepared ahead
    rows = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["points"]
    assert [r["state"] for r in rows] == ["FAILED", "NOT_STARTED"]
    assert not (tmp_path / "sweep" / "1").exists()
    assert not (markers / "ran_b").exists()


def test_a_standby_that_died_is_passed_over_and_the_rest_are_reaped(tmp_path: Path) -> None:
    env = subprocess_env(None)
    agents = StandbyAgents(env, str(tmp_path), size=2)
    agents.fill(5)
    assert len(agents.pids()) == 2
    dead = agents._waiting[0].process
    dead.popen.kill()
    dead.popen.wait()
    script = tmp_path / "mark.py"
    script.write_text("import os, sys\nsys.exit(len(os.environ['MARK']))\n")
    argv = [sys.executable, str(script)]
    assert agents.take(argv, {**env, "MARK": "abc"}, str(tmp_path)) is None  # the dead one
    process = agents.take(argv, {**env, "MARK": "abc"}, str(tmp_path))
    assert process is not None and process.popen.wait(timeout=30) == 3
    process.close()
    agents.fill(1)
    assert agents.take(argv, {**env, "PYTHONPATH": "/elsewhere"}, str(tmp_path)) is None  # not taken
    assert len(agents.pids()) == 1
    agents.close()
    assert agents.pids() == []


def test_the_standby_started_with_erun_goes_to_a_sweep_of_its_environment_only(tmp_path: Path) -> None:
    env, cwd = subprocess_env(None), str(tmp_path)
    with standby.early(env, cwd, wanted=True):
        assert standby._early is not None
        started = standby._early.pids()
        pool = standby.adopt(env, cwd, size=2)
        assert pool.pids() == started and len(started) == 1 and standby._early is None
        pool.close()
    with standby.early(env, cwd, wanted=True):
        other = standby.adopt({**env, "PYTHONPATH": "/elsewhere"}, cwd, size=2)
        assert other.pids() == []  # started for another environment: killed, not taken
    with standby.early(env, cwd, wanted=True):
        pass  # no sweep took it: killed when erun's command ends
    assert standby._early is None


def test_a_standby_that_cannot_start_is_not_tried_again(tmp_path: Path) -> None:
    agents = StandbyAgents(subprocess_env(None), str(tmp_path / "gone"), size=2)  # no such folder
    agents.fill(2)
    assert agents.pids() == [] and agents.missing(5) == 0  # the points start fresh agents
