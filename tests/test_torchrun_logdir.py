"""`erun torchrun --log-dir D`: torchrun's file layout under D, side by side with a real torchrun,
erun's record files beside the rank folders, and erun's readers finding the logs there."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, WORKERS, subprocess_env
from erun_cli import erun
from torchrun_env import torchrun_argv

from runner.paths import RunPaths
from runner.record.read import last_output, load_run, read_json

pytestmark = pytest.mark.usefixtures("no_survivors", "private_tmpdir")


def rank_tree(log_dir: Path) -> tuple[str, list[str]]:
    """The one run folder under D (its name up to the random suffix), and the files below its
    attempt_N folders, relative to it."""
    (run,) = list(log_dir.iterdir())
    files = sorted(str(p.relative_to(run)) for p in run.glob("attempt_*/**/*") if p.is_file())
    return run.name, files


@pytest.mark.slow
@pytest.mark.parametrize(("flags", "script"), [
    (["--nproc-per-node", "2", "--max-restarts", "1"], ["fail_once.py", "{markers}"]),  # two attempts
    (["--nproc-per-node", "1"], ["record_error.py"]),  # error.json, by torch's @record
])
def test_log_dir_gives_torchruns_layout(tmp_path: Path, flags: list[str], script: list[str]) -> None:
    trees = {}
    for launcher in ("torchrun", "erun"):
        markers, log_dir = tmp_path / launcher / "markers", tmp_path / launcher / "logs"
        markers.mkdir(parents=True)
        argv = [*flags, "-r", "3", "--log-dir", str(log_dir),
                str(WORKERS / script[0]), *(a.format(markers=markers) for a in script[1:])]
        if launcher == "torchrun":
            done = subprocess.run([*torchrun_argv(), *argv], cwd=REPO, env=subprocess_env(),
                                  capture_output=True, text=True, timeout=180)
        else:
            done = erun(["torchrun", *argv], tmp_path / launcher, timeout=180)
        assert done.returncode == (0 if "fail_once.py" in script else 1), done.stderr
        name, files = trees[launcher] = rank_tree(log_dir)
        assert re.fullmatch(r"[0-9a-f-]{36}_\w{8}", name), name  # one node: a fresh uuid4, mkdtemp's suffix
    assert trees["erun"][1] == trees["torchrun"][1]
    run = next((tmp_path / "erun" / "logs").iterdir())
    assert all((run / f).is_file() for f in ("plan.json", "events.jsonl", "summary.json"))


def test_readers_find_the_logs_in_torchruns_layout(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    done = erun(["torchrun", "--nproc-per-node", "2", "--log-dir", str(log_dir),
                 str(WORKERS / "exit_code.py"), "0"], tmp_path)
    assert done.returncode == 0, done.stderr
    (run,) = list(log_dir.iterdir())
    plan = read_json(RunPaths(run).plan)
    assert plan["logs"]["layout"] == "torchrun"
    paths = RunPaths.of(run, plan)
    assert paths.stdout(0, 1) == run / "attempt_0" / "1" / "stdout.log"
    assert paths.stdout(0, 1).is_file() and not (run / "attempt_0" / "rank_1").exists()
    assert load_run(run).plan["nproc"] == 2
    line = last_output(run, 0, 1)  # erun status reads the rank's folder through the plan's layout
    assert line is not None and line[0].startswith("rank 1 attempt 0 ")
    assert json.loads((run / "summary.json").read_text())["state"] == "SUCCEEDED"


def test_torchrun_layout_names_rank_folders_by_local_rank() -> None:
    run = Path("/r")
    assert RunPaths(run).stderr(1, 6) == run / "attempt_1" / "rank_6" / "stderr.log"
    assert RunPaths(run, "torchrun", 4).stderr(1, 6) == run / "attempt_1" / "2" / "stderr.log"  # node 1's
    assert RunPaths.of(run, {"logs": {"layout": "torchrun"}, "nproc": 4}) == RunPaths(run, "torchrun", 4)
    assert RunPaths.of(run, {}) == RunPaths(run)  # no plan.json: erun's own layout
