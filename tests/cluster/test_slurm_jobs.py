"""cluster=slurm against a real two-node Slurm cluster on loopback (tests/slurm_cluster.py):
a 2-node gloo DDP job, a failing rank restarted inside the allocation, sbatch's refusals, scancel.

One cluster for the whole session (the `slurm` fixture of tests/conftest.py); skipped, with the
reason, where slurm-wlm and munge are not installed or the cluster cannot start. Each job's
processes carry the test's ERUN_TEST_ID (sbatch exports the environment), so the no-survivor
check sees them too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, WORKERS, alive, read_summary, subprocess_env, wait_for
from erun_cli import erun
from slurm_cluster import SlurmCluster, run_dir_of

from runner.record.read import load_run

JOB_TIMEOUT_S = 240.0


def worker_job(folder: Path, worker: str, *args: object, extra: str = "") -> None:
    """folder/job.yaml running tests/workers/WORKER with nproc 2 on each node."""
    quoted = ", ".join(json.dumps(str(a)) for a in args)
    (folder / "job.yaml").write_text(f"entrypoint: {WORKERS / worker}\nargs: [{quoted}]\nnproc: 2\n{extra}")


def test_a_two_node_ddp_job_trains_to_the_end_with_one_shared_checkpoint(
        tmp_path: Path, cluster_env: dict[str, str]) -> None:
    done = erun(["+job=ddp", "nnodes=2", "cluster=slurm", "cluster.partition=debug", "cluster.time=10:00",
                 "params.steps=60", "params.ckpt_every=30", "--wait"], tmp_path, cluster_env, JOB_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[0]: attempt 0: world size 4, starting at step 0 of 60" in done.stdout
    assert "[0]: done: 60 steps" in done.stdout
    run_dir = tmp_path / run_dir_of(done.stdout)
    for node in (0, 1):
        summary = read_summary(run_dir / f"node_{node}")
        assert (summary["state"], summary["restarts"]) == ("SUCCEEDED", 0)
    assert [p.name for p in (run_dir / "checkpoints").iterdir()]  # one folder, shared by both nodes
    assert not list(run_dir.glob("node_*/checkpoints"))


def test_a_failing_rank_restarts_the_group_on_both_nodes(tmp_path: Path, cluster_env: dict[str, str]) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    worker_job(tmp_path, "slurm_rank.py", markers, 3, extra="restart:\n  max_restarts: 1\n")
    done = erun(["+job=job.yaml", "nnodes=2", "cluster=slurm", "--wait"], tmp_path, cluster_env,
                JOB_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = tmp_path / run_dir_of(done.stdout)
    seen = [json.loads((run_dir / f"seen_a1_r{rank}.json").read_text()) for rank in range(4)]
    assert {s["TORCHELASTIC_RESTART_COUNT"] for s in seen} == {"1"}
    assert {s["WORLD_SIZE"] for s in seen} == {"4"}
    assert {s["ERUN_JOB_DIR"] for s in seen} == {str(run_dir)}
    assert sorted(s["GROUP_RANK"] for s in seen) == ["0", "0", "1", "1"]
    assert len({s["MASTER_ADDR"] for s in seen}) == 1 and seen[0]["MASTER_ADDR"] in ("n1", "n2")
    assert {Path(str(s["ERUN_RUN_DIR"])).name for s in seen} == {"node_0", "node_1"}
    for node in (0, 1):
        summary = read_summary(run_dir / f"node_{node}")
        assert (summary["state"], summary["restarts"]) == ("SUCCEEDED", 1)


@pytest.mark.parametrize(("override", "words"), [
    ("cluster.partition=nope", ["`cluster.partition` was refused by sbatch", "Invalid partition name"]),
    ("nnodes=3", ["`nnodes` is 3, but partition debug has 2 nodes; use nnodes=2"]),
])
def test_what_the_cluster_cannot_run_is_refused_in_one_line(tmp_path: Path, cluster_env: dict[str, str],
                                                           slurm: SlurmCluster, override: str,
                                                           words: list[str]) -> None:
    worker_job(tmp_path, "slurm_rank.py", tmp_path)
    done = erun(["+job=job.yaml", "nnodes=2", "cluster=slurm", override], tmp_path, cluster_env)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert all(w in done.stderr for w in words), done.stderr
    assert slurm.jobs() == [] and not (tmp_path / "outputs").exists()


def test_scancel_stops_every_agent_and_worker(tmp_path: Path, cluster_env: dict[str, str],
                                             slurm: SlurmCluster) -> None:
    """Each worker gets Slurm's SIGTERM once: the agents do not send it again (nor srun)."""
    markers = tmp_path / "markers"
    markers.mkdir()
    worker_job(tmp_path, "preemptible.py", markers)
    argv = [sys.executable, "-m", "runner", "+job=job.yaml", "nnodes=2", "cluster=slurm", "--wait"]
    follower = subprocess.Popen(argv, cwd=tmp_path, env=subprocess_env(cluster_env), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(list(markers.glob("ready_a0_r?"))) == 4 or follower.poll() is not None,
                 JOB_TIMEOUT_S, "4 ranks ready")
        assert follower.poll() is None, follower.communicate()
        pids = [int(p.read_text()) for p in markers.glob("ready_a0_r?")]
        job_ids = slurm.jobs()
        assert len(job_ids) == 1
        assert slurm.steps_alive() and len(slurm.erun_processes()) >= 4  # 2 srun, 2 agents
        started = time.monotonic()
        slurm.run(["scancel", job_ids[0]])
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode not in (0, 2), out + err
    assert f"Slurm job {job_ids[0]} ended CANCELLED" in err
    wait_for(lambda: not slurm.jobs() and not slurm.steps_alive(), 30, "the job and its steps gone")
    assert not any(alive(pid) for pid in pids)
    assert [json.loads((markers / f"signals_a0_r{rank}.json").read_text()) for rank in range(4)] == [
        {"USR1": 0, "TERM": 1}] * 4
    assert time.monotonic() - started < 30
    assert not slurm.erun_processes()
    assert REPO.is_dir()


@pytest.mark.parametrize("scope", [[], ["--batch"]], ids=["steps", "batch"])
def test_scancel_signal_reaches_each_worker_exactly_once(tmp_path: Path, cluster_env: dict[str, str],
                                                          slurm: SlurmCluster, scope: list[str]) -> None:
    """Slurm signals every process of the step (and srun passes a batch signal on to the whole
    step): the agents must not forward it again (regression: each worker got SIGUSR1 2-3 times).
    (With cluster.warning_s, a SIGUSR1 to the batch script is Slurm's warning of the end: the
    preemption test below.)"""
    markers = tmp_path / "markers"
    markers.mkdir()
    worker_job(tmp_path, "count_signals.py", markers)
    no_warning = ["cluster.warning_s=0"] if scope else []
    done = erun(["+job=job.yaml", "nnodes=2", "cluster=slurm", *no_warning], tmp_path, cluster_env)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: len(list(markers.glob("ready_a0_r?"))) == 4, JOB_TIMEOUT_S, "4 ranks ready")
    slurm.run(["scancel", *scope, "--signal=USR1", *slurm.jobs()])
    time.sleep(2.0)  # a second delivery, if any, comes within milliseconds
    (markers / "stop").touch()
    wait_for(lambda: len(list(markers.glob("count_a0_r*"))) == 4, 60, "4 counts")
    assert [(markers / f"count_a0_r{rank}").read_text() for rank in range(4)] == ["1"] * 4
    wait_for(lambda: not slurm.jobs(), 60, "the job's end")
    run_dir = tmp_path / run_dir_of(done.stdout)
    assert "SIGUSR1: the scheduler signals every worker itself" in (run_dir / "slurm.out").read_text()


def test_wait_exits_with_the_failed_job_status_as_a_local_run(tmp_path: Path,
                                                              cluster_env: dict[str, str]) -> None:
    """srun stops the other node once one fails (its ExitCode is then 143): the status is the
    failing node's, 1, as a local run's."""
    worker_job(tmp_path, "exit_code.py", "3")
    done = erun(["+job=job.yaml", "nnodes=2", "cluster=slurm", "--wait"], tmp_path, cluster_env,
                JOB_TIMEOUT_S)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "exited 3" in done.stdout and "ended FAILED" in done.stderr


def test_nproc_cpu_is_counted_on_each_node(tmp_path: Path, cluster_env: dict[str, str]) -> None:
    from runner.devices import HostInfo

    (tmp_path / "markers").mkdir()
    worker_job(tmp_path, "slurm_rank.py", tmp_path / "markers")
    done = erun(["+job=job.yaml", "nnodes=2", "nproc=cpu", "cluster=slurm", "--wait"], tmp_path, cluster_env,
                JOB_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = tmp_path / run_dir_of(done.stdout)
    world = 2 * HostInfo.detect({}).cpus  # both nodes are this host
    assert len(list(run_dir.glob("seen_a0_r*.json"))) == world
    assert json.loads((run_dir / "seen_a0_r0.json").read_text())["WORLD_SIZE"] == str(world)


def test_a_preempted_job_checkpoints_is_requeued_and_resumes_in_the_same_run_directory(
        tmp_path: Path, cluster_env: dict[str, str], slurm: SlurmCluster) -> None:
    """Slurm's warning (`--signal=B:USR1@N` sends it to the batch script, as `scancel --batch
    --signal=USR1` does here) reaches each worker once, which checkpoints; erun requeues the job,
    whose stop (SIGTERM) also reaches each worker once; the requeued job continues each node's
    record (segment 2, attempt 1, TORCHELASTIC_RESTART_COUNT 1), resumes from the checkpoint and
    succeeds. A secret set only in the job file's env reaches the workers of both runs."""
    markers = tmp_path / "markers"
    markers.mkdir()
    worker_job(tmp_path, "preemptible.py", markers, extra="env:\n  API_TOKEN: s3cret-value\n")
    argv = [sys.executable, "-m", "runner", "+job=job.yaml", "nnodes=2", "cluster=slurm",
            "cluster.warning_s=4", "--wait"]
    follower = subprocess.Popen(argv, cwd=tmp_path, env=subprocess_env(cluster_env), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(list(markers.glob("ready_a0_r?"))) == 4, JOB_TIMEOUT_S, "4 ranks ready")
        slurm.run(["scancel", "--batch", "--signal=USR1", *slurm.jobs()])
        out, err = follower.communicate(timeout=JOB_TIMEOUT_S)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, out + err
    run_dir = tmp_path / run_dir_of(out)
    for rank in range(4):
        assert json.loads((markers / f"signals_a0_r{rank}.json").read_text()) == {"USR1": 1, "TERM": 1}
        first, resumed = (json.loads((markers / f"start_a{a}_r{rank}.json").read_text()) for a in (0, 1))
        assert (first["step"], first["restart"]) == (0, "0")
        assert resumed["step"] > 0 and resumed["restart"] == "1"
        assert first["token"] == resumed["token"] == "s3cret-value"
    assert all("s3cret" not in p.read_text() for p in run_dir.glob("**/plan.json"))
    batch = (run_dir / "slurm.out").read_text()
    assert "Slurm warns of the job's end" in batch and "requeued Slurm job" in batch
    for node in (0, 1):
        node_dir = run_dir / f"node_{node}"
        summary = read_summary(node_dir)
        assert (summary["state"], summary["attempts"], summary["restarts"]) == ("SUCCEEDED", 2, 1)
        assert [(s["segment"], s["state"], s["attempts"]) for s in summary["segments"]] == [
            (1, "INTERRUPTED", [0]), (2, "SUCCEEDED", [1])]
        assert [s.preempted for s in load_run(node_dir).segments] == [True, False]
        assert (node_dir / "attempt_0").is_dir() and (node_dir / "attempt_1").is_dir()
    report = erun(["report", str(run_dir / "node_0")], tmp_path, cluster_env)
    assert "segment 1" in report.stdout and "INTERRUPTED (exit 143), attempt 0, preempted" in report.stdout
