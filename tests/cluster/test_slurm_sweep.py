"""`erun -m ... cluster=slurm` on the real two-node test cluster: a 4-point sweep goes as one job
array (one sbatch), erun returns at once (or follows it with --wait), every point's job id is
recorded, `erun status SWEEP_DIR` shows each point's Slurm state and result, and --resume
submits again only the point that did not succeed."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import WORKERS, wait_for
from erun_cli import erun
from slurm_cluster import SlurmCluster

JOB_TIMEOUT_S = 240.0


def objective_job(folder: Path) -> None:
    """rank 0 reports (x - 1) ** 2; x >= 3 exits 1 (tests/workers/objective.py)."""
    (folder / "job.yaml").write_text(f"entrypoint: {WORKERS / 'objective.py'}\nnproc: 1\nparams:\n  x: 0\n")


def sweep_dir_of(tmp_path: Path) -> Path:
    found = list((tmp_path / "multirun").glob("*/*"))
    assert len(found) == 1, found
    return found[0]


def test_a_sweep_is_one_job_array_with_status_per_point_and_resume(
        tmp_path: Path, cluster_env: dict[str, str], slurm: SlurmCluster) -> None:
    objective_job(tmp_path)
    done = erun(["-m", "+job=job.yaml", "cluster=slurm", "params.x=0,1,2,3", "--wait"], tmp_path, cluster_env,
                JOB_TIMEOUT_S)
    assert done.returncode == 1, done.stdout + done.stderr  # point 3 failed
    assert "erun: sweep of 4 point(s) on Slurm: 4 submitted" in done.stderr
    assert "did not succeed" in done.stderr and "point(s) 3 did" in done.stderr
    sweep = sweep_dir_of(tmp_path)
    record = json.loads((sweep / "slurm.json").read_text())
    ids = [p["job_id"] for p in record["points"]]
    array = ids[0].split("_")[0]
    assert ids == [f"{array}_{t}" for t in range(4)]  # one submission: one array, a task a point
    assert [p.name for p in sweep.glob("slurm_array_*.sbatch")] == ["slurm_array_0.sbatch"]
    for t in range(4):
        assert json.loads((sweep / str(t) / "slurm.json").read_text())["job_id"] == f"{array}_{t}"
        assert (sweep / str(t) / "node_0" / "summary.json").is_file()

    status = erun(["status", str(sweep)], tmp_path, cluster_env)
    assert status.returncode == 0, status.stderr
    row = re.compile(r"^\s+(\d)\s+\S*params\.x=\d .*$", re.M)
    rows = {m.group(1): m.group(0) for m in row.finditer(status.stdout)}
    assert sorted(rows) == ["0", "1", "2", "3"], status.stdout
    for t, result in (("0", "1.0"), ("1", "0.0"), ("2", "1.0")):
        assert re.search(rf"{array}_{t} COMPLETED\s+SUCCEEDED\s+0\s+{re.escape(result)}$", rows[t]), rows[t]
    assert re.search(rf"{array}_3 FAILED\b.*\s+FAILED\s+0\s+-$", rows["3"]), rows["3"]

    again = erun(["-m", "+job=job.yaml", "cluster=slurm", "params.x=0,1,2,3", f"hydra.sweep.dir={sweep}",
                  "--resume"], tmp_path, cluster_env)
    assert again.returncode == 0, again.stdout + again.stderr  # returns once queued
    assert "erun: sweep of 4 point(s) on Slurm: 1 submitted" in again.stderr
    points = json.loads((sweep / "slurm.json").read_text())["points"]
    assert [p["note"] for p in points] == ["succeeded earlier"] * 3 + [""]
    assert [p["job_id"] for p in points[:3]] == ids[:3] and points[3]["job_id"] not in ids
    assert Path(points[3]["run_dir"]).name == "3_retry1" and (sweep / "3" / "node_0").is_dir()
    assert "_" not in points[3]["job_id"]  # a point of its own: a plain job, no array
    wait_for(lambda: not slurm.jobs(), JOB_TIMEOUT_S, "the resubmitted point's end")
    assert json.loads((sweep / "3_retry1" / "node_0" / "summary.json").read_text())["state"] == "FAILED"


def test_points_asking_for_different_resources_go_as_separate_submissions(tmp_path: Path) -> None:
    objective_job(tmp_path)
    done = erun(["-m", "+job=job.yaml", "cluster=slurm", "params.x=0,1", "nnodes=1,2", "--dry-run"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("#SBATCH --array=0-1") == 2
    assert "#SBATCH --nodes=1\n" in done.stdout and "#SBATCH --nodes=2\n" in done.stdout
    assert 'ERUN_POINT_DIR="${POINT_DIRS[$SLURM_ARRAY_TASK_ID]}"' in done.stdout
    assert not (tmp_path / "multirun").exists()
