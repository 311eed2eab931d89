"""Any Hydra app's sweep on erun's launcher (runner/sweep/tasks.py): each point's task function
in a process of its own, one slot a point (a GPU as its CUDA_VISIBLE_DEVICES), a failed point
FAILED with its traceback. Apps run in this process through hydra-core's `hydra_sweep_runner`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import WORKERS, ctrl_c, subprocess_env, wait_for
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback

pytestmark = pytest.mark.usefixtures("no_survivors", "hydra_restore_singletons")

SLOTS = ["hydra.launcher.slots=2"]


def sweep_of(runner: Any, task: Any, tmp_path: Path, *overrides: str) -> Any:
    return runner(calling_file=None, calling_module="hydra.test_utils.a_module", task_function=task,
                  config_path="configs", config_name="compose", temp_dir=tmp_path,
                  overrides=["hydra/launcher=erun", *overrides])


def test_a_failed_task_is_failed_with_its_traceback(hydra_sweep_runner: Any, tmp_path: Path) -> None:
    def task(cfg: Any) -> Any:
        if cfg.a == 1:
            raise ValueError("a is one")
        return {"a": cfg.a, "pid": os.getpid()}

    sweep = sweep_of(hydra_sweep_runner, task, tmp_path, *SLOTS, "+a=0,1")
    with pytest.raises(ValueError, match="a is one"), sweep:  # the basic sweeper raises the point's error
        pass
    rows = json.loads((tmp_path / "sweep.json").read_text())["points"]
    assert [r["state"] for r in rows] == ["SUCCEEDED", "FAILED"]
    assert rows[0]["result"]["a"] == 0 and rows[0]["result"]["pid"] != os.getpid()  # its own process
    assert "Traceback" in rows[1]["error"] and "ValueError: a is one" in rows[1]["error"]


def test_each_point_gets_a_gpu_of_its_own(hydra_sweep_runner: Any, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERUN_FAKE_GPU_COUNT", "2")

    def task(cfg: Any) -> Any:
        return os.environ.get("CUDA_VISIBLE_DEVICES")

    with sweep_of(hydra_sweep_runner, task, tmp_path, "+a=0,1,2,3") as sweep:
        returns = [r.return_value for r in sweep.returns[0]]
        rows = json.loads((tmp_path / "sweep.json").read_text())["points"]
    assert returns == [r["slots"][0] for r in rows] and set(returns) == {"0", "1"}
    assert rows[0]["slots"] != rows[1]["slots"]  # the first two ran at once, on different GPUs
    for a in rows:
        for b in rows:
            if a is not b and a["start"] < b["end"] and b["start"] < a["end"]:
                assert a["slots"] != b["slots"], (a, b)


def test_ctrl_c_stops_a_hydra_apps_sweep_and_leaves_no_survivors(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    argv = [sys.executable, str(WORKERS / "hydra_app.py"), "-m", "hydra/launcher=erun", *SLOTS,
            f"+markers={markers}", "+sleep=60", "+a=0,1,2", "hydra.sweep.dir=sweep"]
    done = ctrl_c(argv, tmp_path, lambda: len(list(markers.glob("start_*"))) == 2, "two points running")
    assert done.returncode == 130, done.stderr
    assert done.seconds < 10
    rows = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["points"]
    assert [r["state"] for r in rows] == ["INTERRUPTED", "INTERRUPTED", "NOT_STARTED"]
    for pid in (int(p.read_text()) for p in markers.glob("start_*")):
        wait_for(lambda pid=pid: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie",
                 timeout=5, what=f"point process {pid} to be gone")


class RecordingCallback(Callback):
    """Writes what Hydra's callbacks saw into the job's output directory (and the pid they ran in)."""

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        Path(HydraConfig.get().runtime.output_dir, "started").write_text(str(os.getpid()))

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        Path(HydraConfig.get().runtime.output_dir, "ended").write_text(job_return.status.name)


def test_hydra_runs_the_job_in_the_points_process(hydra_sweep_runner: Any, tmp_path: Path) -> None:
    def task(cfg: Any) -> Any:
        return {"pid": os.getpid(), "cwd": os.getcwd(), "name": HydraConfig.get().job.name}

    callback = f"+hydra.callbacks.rec._target_={__name__}.RecordingCallback"
    overrides = [*SLOTS, "+a=0,1", "hydra.job.chdir=true", callback]
    with sweep_of(hydra_sweep_runner, task, tmp_path, *overrides) as sweep:
        for n, ret in enumerate(sweep.returns[0]):
            out = tmp_path / str(n)
            assert ret.return_value == {"pid": int((out / "started").read_text()), "cwd": str(out),
                                        "name": "a_module"}
            assert ret.return_value["pid"] != os.getpid() and (out / "ended").read_text() == "COMPLETED"
            assert (out / ".hydra" / "overrides.yaml").is_file() and ret.overrides == [f"+a={n}"]


def test_two_points_sharing_a_folder_are_an_error_before_anything_runs(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    for subdir in ["hydra.sweep.subdir=fixed", "hydra.sweep.subdir=${hydra.job.override_dirname}"]:
        argv = [sys.executable, str(WORKERS / "hydra_app.py"), "-m", "hydra/launcher=erun", *SLOTS,
                f"+markers={markers}", "+sleep=0", "+a=0,1", "+b=2", "hydra.sweep.dir=sweep", subdir,
                "hydra.job.config.override_dirname.exclude_keys=[a]"]
        done = subprocess.run(argv, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 2, done.stderr
        assert "`hydra.sweep.subdir` puts point 0 [a=0] and point 1 [a=1] in the same folder" in done.stderr
        assert not list(markers.iterdir())  # nothing ran


def test_a_point_writing_20_mb_without_a_newline_is_linear_and_split(hydra_sweep_runner: Any, tmp_path: Path,
                                                                   capfdbinary: Any) -> None:
    """The sweep reads a point's pipe as the agent reads a rank's: only new data is scanned, and
    the console gets pieces of LINE_MAX (once re-joining the tail on every read was quadratic)."""
    from runner.runtime.logs import CONTINUED, LINE_MAX

    def task(cfg: Any) -> Any:
        chunk = b"z" * 1_000_000
        for _ in range(20):
            os.write(1, chunk)
        return cfg.a

    with sweep_of(hydra_sweep_runner, task, tmp_path, "+a=7") as sweep:
        assert [r.return_value for r in sweep.returns[0]] == [7]
    lines = [line for line in capfdbinary.readouterr().out.split(b"\n") if b"zzz" in line]
    assert sum(line.count(b"z") for line in lines) == 20_000_000
    assert len(lines) == -(-20_000_000 // LINE_MAX) and max(map(len, lines)) <= LINE_MAX + 40
    assert all(CONTINUED in line for line in lines[1:]) and CONTINUED not in lines[0]
