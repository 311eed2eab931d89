"""Sweeps (`erun -m`) through erun's launcher: points side by side on the node's slots, packing,
the summary, exit status, --resume, fail_fast and Ctrl-C. Unit tests for packing and naming
first; then real sweeps of tiny points (tests/workers/sweep_point.py) under the no-survivor check."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import WORKERS, ctrl_c, wait_for
from erun_cli import erun
from omegaconf import OmegaConf, open_dict

from runner.devices import HostInfo
from runner.errors import ConfigError
from runner.sweep.launch import without_hydra
from runner.sweep.points import (
    EarlierRun,
    PointResult,
    PointState,
    SweepPoint,
    exit_status,
    fresh_dir,
    labels,
)
from runner.sweep.slots import SlotKind, first_fit, slot_pool, too_big

# -- packing (pure) ----------------------------------------------------------------------------


def test_first_fit_starts_points_in_order_on_the_lowest_free_slots() -> None:
    started = first_fit(["0", "1", "2", "3"], [(0, 2), (1, 1), (2, 1)])
    assert started == [(0, ("0", "1")), (1, ("2",)), (2, ("3",))]


def test_first_fit_passes_over_a_point_that_does_not_fit() -> None:
    assert first_fit(["1", "3"], [(0, 3), (1, 1), (2, 2), (3, 1)]) == [(1, ("1",)), (3, ("3",))]
    assert first_fit([], [(0, 1)]) == []


def test_first_fit_never_gives_a_slot_twice() -> None:
    started = first_fit([str(i) for i in range(8)], [(i, 1 + i % 3) for i in range(10)])
    given = [s for _, slots in started for s in slots]
    assert len(given) == len(set(given)) == 8


def test_the_pool_is_the_gpus_when_visible_else_the_cores() -> None:
    gpus = HostInfo(cpus=16, gpus=("0", "1", "2", "3"), gpu_source="test")
    cpus = HostInfo(cpus=2, gpus=(), gpu_source="none visible")
    assert slot_pool(gpus, None, "auto").ids == ("0", "1", "2", "3")
    assert slot_pool(gpus, 2, "auto").ids == ("0", "1")
    assert slot_pool(gpus, None, "cpu").kind is SlotKind.CPU and len(slot_pool(gpus, None, "cpu")) == 16
    assert slot_pool(cpus, None, "auto").ids == ("0", "1")
    assert len(slot_pool(cpus, 8, "auto")) == 8  # oversubscribing cores is allowed (sleepy jobs)
    for host, slots, pack in ((gpus, 5, "auto"), (cpus, None, "gpu"), (cpus, 0, "auto"), (cpus, None, "tpu")):
        with pytest.raises(ConfigError):
            slot_pool(host, slots, pack)


def test_a_point_gets_its_gpus_and_a_fair_thread_count() -> None:
    gpus = slot_pool(HostInfo(cpus=16, gpus=("4", "5", "6", "7"), gpu_source="test"), None, "auto")
    assert gpus.environ(("5", "6"), 2, {}) == {"CUDA_VISIBLE_DEVICES": "5,6"}
    assert gpus.host().gpus == ("4", "5", "6", "7")
    cpus = slot_pool(HostInfo(cpus=8, gpus=(), gpu_source="none"), 4, "cpu")
    assert cpus.environ(("0", "1"), 2, {}) == {"OMP_NUM_THREADS": "2"}
    assert cpus.environ(("0",), 1, {"OMP_NUM_THREADS": "3"}) == {}
    assert cpus.host().gpus == ()


def test_too_big_names_the_first_point_that_could_never_run() -> None:
    pool = slot_pool(HostInfo(cpus=2, gpus=(), gpu_source="none"), None, "auto")
    assert too_big(pool, [(0, 1), (1, 3), (2, 4)]) == (1, 3)
    assert too_big(pool, [(0, 2)]) is None


# -- names, resume, status (pure) ---------------------------------------------------------------


def test_labels_show_only_what_varies_with_short_keys() -> None:
    points = [["job@_global_=t", "++params.lr=0.1", "nproc=1"],
              ["job@_global_=t", "++params.lr=0.2", "nproc=1"]]
    assert labels(points) == ["[lr=0.1]", "[lr=0.2]"]
    both = [["params.a.x=1", "params.b.x=1"], ["params.a.x=2", "params.b.x=1"],
            ["params.a.x=1", "params.b.x=2"]]
    assert labels(both) == ["[params.a.x=1,params.b.x=1]", "[params.a.x=2,params.b.x=1]",
                            "[params.a.x=1,params.b.x=2]"]
    assert labels([["job@_global_=t"]]) == ["[0]"]


def test_a_rerun_never_reuses_a_folder_that_holds_a_run(tmp_path: Path) -> None:
    assert fresh_dir(tmp_path / "0") == tmp_path / "0"
    (tmp_path / "0").mkdir()
    assert fresh_dir(tmp_path / "0") == tmp_path / "0"  # empty: Hydra made it, nothing ran
    (tmp_path / "0" / "events.jsonl").write_text("")
    assert fresh_dir(tmp_path / "0") == tmp_path / "0_retry1"
    (tmp_path / "0_retry1" / ".hydra").mkdir(parents=True)
    assert fresh_dir(tmp_path / "0") == tmp_path / "0_retry2"


def test_exit_status_is_a_signal_then_any_failure() -> None:
    def result(state: PointState) -> PointResult:
        return PointResult(SweepPoint(0, (), "[0]", earlier_run=Path("x")), state)

    ok = [result(PointState.SUCCEEDED), result(PointState.SKIPPED)]
    assert exit_status(ok, None) == 0
    assert exit_status([*ok, result(PointState.NOT_STARTED)], None) == 1
    assert exit_status(ok, signal.SIGINT) == 130
    assert EarlierRun(Path("x"), "SUCCEEDED").state == "SUCCEEDED"


def test_without_hydra_is_run_jobs_task_config_and_leaves_the_config_as_it_was() -> None:
    config = OmegaConf.create({"a": 1, "hydra": {"x": "${a}", "big": [1, 2]}, "b": "${a}",
                               "c": {"d": "${b}"}})
    OmegaConf.set_struct(config, True)
    task = without_hydra(config)
    expected = copy.deepcopy(config)  # what Hydra's run_job gives the task
    with open_dict(expected):
        del expected["hydra"]
    assert OmegaConf.to_yaml(task) == OmegaConf.to_yaml(expected) and OmegaConf.is_struct(task)
    assert OmegaConf.to_container(task, resolve=True) == {"a": 1, "b": 1, "c": {"d": 1}}
    assert list(config) == ["a", "hydra", "b", "c"] and config.hydra.x == 1
    task.c.d = 5  # a copy: the point's config is untouched
    assert OmegaConf.to_container(config)["c"] == {"d": "${b}"}


# -- real sweeps -------------------------------------------------------------------------------


def write_job(folder: Path, sleep: float = 1.0, extra: str = "") -> Path:
    """folder/point.yaml: one sweep point (tests/workers/sweep_point.py), markers in folder/markers."""
    markers = folder / "markers"
    markers.mkdir(exist_ok=True)
    job = folder / "point.yaml"
    job.write_text(f"entrypoint: {WORKERS / 'sweep_point.py'}\nnproc: 1\nrestart:\n  stop_grace_s: 2\n"
                   f"params:\n  markers: {markers}\n  sleep: {sleep}\n  code: 0\n  tag: x\n{extra}")
    return markers


def sweep_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    return json.loads((sweep_dir / "sweep.json").read_text())["points"]


def stamps(markers: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in markers.glob("start_*") if p.suffix != ".tmp"}


def test_points_run_side_by_side_and_the_summary_says_how_each_ended(tmp_path: Path) -> None:
    markers = write_job(tmp_path)
    result = erun(["-m", "+job=point.yaml", "params.tag=a,b", "params.code=0,1", "hydra.launcher.slots=4",
                   "hydra.sweep.dir=sweep"], tmp_path, timeout=60)
    assert result.returncode == 1, result.stderr  # two points failed
    rows = sweep_rows(tmp_path / "sweep")
    assert [r["label"] for r in rows] == ["[tag=a,code=0]", "[tag=a,code=1]", "[tag=b,code=0]",
                                          "[tag=b,code=1]"]
    assert [r["state"] for r in rows] == ["SUCCEEDED", "FAILED", "SUCCEEDED", "FAILED"]
    assert all(r["restarts"] == 0 and r["duration_s"] > 0.9 for r in rows)
    assert len({r["run_dir"] for r in rows}) == 4 and len({s for r in rows for s in r["slots"]}) == 4
    assert max(r["start"] for r in rows) < min(r["end"] for r in rows)  # all four ran at once
    for i, row in enumerate(rows):
        assert row["run_dir"] == str(tmp_path / "sweep" / str(i))
        assert json.loads(Path(row["run_dir"], "summary.json").read_text())["state"] == row["state"]
        assert (Path(row["run_dir"]) / ".hydra" / "overrides.yaml").is_file()
        assert (Path(row["run_dir"]) / "job.yaml").is_file()
        assert "running" in Path(row["run_dir"], "console.log").read_text()
    assert len(stamps(markers)) == 4
    assert "[tag=b,code=1][0]: point b rank 0 running" in result.stdout.splitlines()
    assert "sweep of 4 point(s) on 4 cpu slots: 2 succeeded, 2 failed" in result.stderr
    assert "| 1 | [tag=a,code=1] | FAILED | 0 |" in (tmp_path / "sweep" / "sweep.md").read_text()
    report = erun(["report", "sweep"], tmp_path)
    assert report.returncode == 0 and "4 points" in report.stdout


def test_lines_of_points_running_at_once_never_mix(tmp_path: Path) -> None:
    write_job(tmp_path, sleep=0.1)
    result = erun(["-m", "+job=point.yaml", "params.tag=a,b,c", "params.lines=300", "hydra.sweep.dir=sweep",
                   "hydra.launcher.slots=3"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if " line " in line]
    assert len(lines) == 900
    for line in lines:
        assert re.fullmatch(r"\[tag=(.)\]\[0\]: point \1 line \d+ x{200}", line), line


def test_points_get_disjoint_gpus(tmp_path: Path) -> None:
    markers = write_job(tmp_path)
    env = {"ERUN_FAKE_GPU_COUNT": "4"}
    result = erun(["-m", "+job=point.yaml", "params.tag=a,b,c", "nproc=1,2", "isolate_gpus=true",
                   "hydra.sweep.dir=sweep"], tmp_path, env, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = sweep_rows(tmp_path / "sweep")
    seen = stamps(markers)
    assert len(seen) == 9  # 3 points of 1 rank, 3 of 2
    for row in rows:
        assert len(row["slots"]) == (2 if "nproc=2" in row["label"] else 1)
        ranks = [s for s in seen.values() if s["run_dir"] == row["run_dir"]]
        assert sorted(s["devices"] for s in ranks) == sorted(row["slots"])  # isolate_gpus: one each
    for a in rows:
        for b in rows:
            overlap = a["start"] < b["end"] and b["start"] < a["end"]
            if a is not b and overlap:
                assert not set(a["slots"]) & set(b["slots"]), (a, b)


def test_resume_skips_the_points_that_succeeded(tmp_path: Path) -> None:
    markers = write_job(tmp_path, sleep=0.2)
    (markers / "fail_b").write_text("")
    args = ["-m", "+job=point.yaml", "params.tag=a,b,c"]
    first = erun([*args, "hydra.sweep.dir=sweep"], tmp_path)
    assert first.returncode == 1, first.stderr
    again = erun([*args, "hydra.sweep.dir=sweep"], tmp_path)
    assert again.returncode == 2 and "sweep/0 already holds a run; add --resume" in again.stderr
    (markers / "fail_b").unlink()
    resumed = erun([*args, "--resume=sweep"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    rows = sweep_rows(tmp_path / "sweep")
    assert [(r["state"], Path(r["run_dir"]).name) for r in rows] == [
        ("SKIPPED", "0"), ("SUCCEEDED", "1_retry1"), ("SKIPPED", "2")]
    assert [len((markers / f"ran_{t}").read_text().split()) for t in "abc"] == [1, 2, 1]
    assert json.loads((tmp_path / "sweep" / "1" / "summary.json").read_text())["state"] == "FAILED"  # kept
    report = erun(["report", "sweep"], tmp_path)
    assert "1_retry1" in report.stdout


def test_fail_fast_stops_the_sweep_at_the_first_failure(tmp_path: Path) -> None:
    write_job(tmp_path, sleep=0.2)
    result = erun(["-m", "+job=point.yaml", "params.tag=a,b", "params.code=1", "hydra.launcher.slots=1",
                   "hydra.launcher.fail_fast=true", "hydra.sweep.dir=sweep"], tmp_path)
    assert result.returncode == 1, result.stderr
    assert [r["state"] for r in sweep_rows(tmp_path / "sweep")] == ["FAILED", "NOT_STARTED"]
    # Point 1 never started: no record, and no folder, even if it was prepared ahead while
    # point 0 ran (tests/sweep/test_standby.py makes sure it was).
    assert not (tmp_path / "sweep" / "1").exists()


def test_a_point_too_big_for_the_node_is_an_error_before_anything_runs(tmp_path: Path) -> None:
    markers = write_job(tmp_path)
    result = erun(["-m", "+job=point.yaml", "params.tag=a,b", "nproc=1,3", "hydra.launcher.slots=2",
                   "hydra.sweep.dir=sweep"], tmp_path)
    assert result.returncode == 2
    assert "`nproc` of point 1 [tag=a,nproc=3] is 3, more than the sweep's 2 cpu slots" in result.stderr
    assert not (tmp_path / "sweep").exists() and not list(markers.iterdir())


def test_two_points_sharing_a_folder_are_an_error_before_anything_runs(tmp_path: Path) -> None:
    markers = write_job(tmp_path)
    result = erun(["-m", "+job=point.yaml", "params.tag=a,b", "hydra.sweep.dir=sweep",
                   "hydra.sweep.subdir=one"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "`hydra.sweep.subdir` puts point 0 [tag=a] and point 1 [tag=b] in the same folder" in result.stderr
    assert not stamps(markers) and not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(("args", "error"), [
    (["params.tag=a,b,b", "hydra.sweep.subdir=${hydra.job.override_dirname}"],
     "`hydra.sweep.subdir` puts point 1 [tag=b] and point 2 [tag=b] in the same folder"),
    (["params.tag=a,b,c", "restart.stop_grace_s=1,1,-1"], "`restart.stop_grace_s` is -1"),
], ids=["shared-folder", "bad-value"])
def test_a_mistake_in_a_later_point_is_an_error_before_any_point_runs(tmp_path: Path, args: list[str],
                                                                      error: str) -> None:
    """Points start as each is prepared, but every point is checked before the first starts."""
    markers = write_job(tmp_path)
    result = erun(["-m", "+job=point.yaml", *args, "hydra.launcher.slots=1", "hydra.sweep.dir=sweep"],
                  tmp_path)
    assert result.returncode == 2, result.stderr
    assert error in result.stderr and "Traceback" not in result.stderr
    assert not list(markers.iterdir()) and not (tmp_path / "sweep").exists()


def test_resume_needs_a_sweep(tmp_path: Path) -> None:
    write_job(tmp_path)
    result = erun(["+job=point.yaml", "--resume=sweep"], tmp_path)
    assert result.returncode == 2 and "--resume resumes a sweep" in result.stderr


def test_ctrl_c_stops_every_point_and_leaves_no_survivors(tmp_path: Path) -> None:
    markers = write_job(tmp_path, sleep=60)
    argv = [sys.executable, "-m", "runner", "-m", "+job=point.yaml", "params.tag=a,b,c",
            "hydra.launcher.slots=2", "hydra.sweep.dir=sweep"]
    done = ctrl_c(argv, tmp_path, lambda: len(stamps(markers)) == 2, "two points running")
    assert done.returncode == 130, done.stderr
    assert done.seconds < 15
    assert sorted(r["state"] for r in sweep_rows(tmp_path / "sweep")) == ["INTERRUPTED", "INTERRUPTED",
                                                                          "NOT_STARTED"]
    for stamp in stamps(markers).values():
        wait_for(lambda pid=stamp["pid"]: not os.path.exists(f"/proc/{pid}") or _zombie(pid),
                 timeout=5, what=f"worker {stamp['pid']} to be gone")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


pytestmark = pytest.mark.usefixtures("no_survivors")
