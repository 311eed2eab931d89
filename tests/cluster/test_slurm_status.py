"""`erun status` and `erun report` of a job run on the real two-node test cluster: every node on
one timeline, with Slurm's view of the job; a held job reads as pending with no node started;
with no Slurm command on PATH the view is UNKNOWN, said in words, and the record still shows."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import WORKERS
from erun_cli import erun
from slurm_cluster import SlurmCluster, run_dir_of

JOB_TIMEOUT_S = 240.0


def job(folder: Path, extra: str = "") -> None:
    markers = folder / "markers"
    markers.mkdir(exist_ok=True)
    args = json.dumps([str(markers), "3"])  # rank 3 (on the second node) fails once: one restart
    (folder / "job.yaml").write_text(f"entrypoint: {WORKERS / 'slurm_rank.py'}\nargs: {args}\nnproc: 2\n"
                                     f"restart:\n  max_restarts: 1\n{extra}")


def test_status_and_report_show_both_nodes_on_one_timeline_with_slurms_view(
        tmp_path: Path, cluster_env: dict[str, str]) -> None:
    job(tmp_path)
    done = erun(["+job=job.yaml", "nnodes=2", "cluster=slurm", "--wait"], tmp_path, cluster_env,
                JOB_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = tmp_path / run_dir_of(done.stdout)
    job_id = json.loads((run_dir / "slurm.json").read_text())["job_id"]

    status = erun(["status", str(run_dir), "-n", "100"], tmp_path, cluster_env)
    assert status.returncode == 0, status.stderr
    out = status.stdout
    assert f"slurm:      job {job_id} COMPLETED" in out
    assert "state:      SUCCEEDED (exit 0), attempt 1 (1 restart)" in out
    assert "node 0:     SUCCEEDED on " in out and "node 1:     SUCCEEDED on " in out
    assert "ranks (attempt 1):" in out
    assert all(f"\n       {r}  SUCCEEDED" in out for r in range(4)), out  # every node's ranks
    assert "node 0: attempt 1 rank 0: SUCCEEDED" in out and "node 1: attempt 1 rank 3: SUCCEEDED" in out

    report = erun(["report", str(run_dir)], tmp_path, cluster_env)
    assert report.returncode == 0, report.stderr
    text = report.stdout
    assert "state:      SUCCEEDED (exit 0)" in text and f"job {job_id} COMPLETED" in text
    assert "node 0:     SUCCEEDED on " in text and "node 1:     SUCCEEDED on " in text
    assert "attempt 0  FAILED" in text and "3: FAILED (exited 1)" in text and "0: STOPPED" in text
    assert "attempt 1  SUCCEEDED" in text and "2: SUCCEEDED (exited 0), 3: SUCCEEDED (exited 0)" in text
    assert "attempt 0 rank 3 at " in text  # the failure, from node 1's record
    page = (run_dir / "report.html").read_text()
    assert f"job {job_id} COMPLETED" in page and "node 1" in page
    assert all(f">rank {r}<" in page for r in range(4)), "the timeline has a row per rank of both nodes"

    newest = erun(["status"], tmp_path, cluster_env)  # the index names a node: its job is shown
    assert f"run dir:    {run_dir}\n" in newest.stdout and "node 1:     SUCCEEDED" in newest.stdout

    bare = erun(["status", str(run_dir)], tmp_path, {**cluster_env, "PATH": str(tmp_path / "markers")})
    assert bare.returncode == 0, bare.stderr
    assert f"job {job_id} UNKNOWN (no squeue, sacct or scontrol on PATH)" in bare.stdout
    assert "node 1:     SUCCEEDED" in bare.stdout


def test_a_held_job_is_pending_with_no_node_started(tmp_path: Path, cluster_env: dict[str, str],
                                                    slurm: SlurmCluster) -> None:
    job(tmp_path)
    done = erun(["+job=job.yaml", "nnodes=2", "cluster=slurm", "cluster.sbatch.hold=true"], tmp_path,
                cluster_env)
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / run_dir_of(done.stdout)
    status = erun(["status", str(run_dir)], tmp_path, cluster_env)
    assert status.returncode == 0, status.stderr
    assert "PENDING (JobHeldUser)" in status.stdout and "nodes:      none started yet" in status.stdout
    assert slurm.jobs() == [json.loads((run_dir / "slurm.json").read_text())["job_id"]]
