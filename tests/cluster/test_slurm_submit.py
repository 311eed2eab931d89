"""cluster=slurm without a cluster: the batch script a dry run prints, the node's plan inside the
allocation, and the one-line refusals (exit 2, nothing submitted, nothing left behind)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from erun_cli import erun, write_recorder_job

from runner.cluster.node import SlurmNode, node_plan, rdzv_port
from runner.plan import JobPlan

SLURM_ENV = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "gpu-[07-08]", "SLURM_NODEID": "1",
             "SLURM_JOB_NUM_NODES": "2", "SLURMD_NODENAME": "gpu-08"}


def no_sbatch_path(tmp_path: Path) -> str:
    """A PATH with python but no Slurm commands."""
    folder = tmp_path / "bin"
    folder.mkdir()
    return str(folder)


def test_dry_run_prints_the_batch_script_and_submits_nothing(tmp_path: Path) -> None:
    write_recorder_job(tmp_path)
    done = erun(["+job=train.yaml", "nnodes=1:3", "cluster=slurm", "cluster.partition=gpu",
                 "cluster.time=1:00:00", "cluster.sbatch.account=proj", "cluster.sbatch.exclusive=true",
                 "cluster.setup=[module load cuda,echo ready]", "--dry-run"], tmp_path,
                env={"PATH": no_sbatch_path(tmp_path)})
    assert done.returncode == 0, done.stderr
    script = done.stdout
    for line in ("#SBATCH --nodes=1-3", "#SBATCH --ntasks-per-node=1", "#SBATCH --partition=gpu",
                 "#SBATCH --time=1:00:00", "#SBATCH --account=proj", "#SBATCH --exclusive",
                 "#SBATCH --job-name=train", "#SBATCH --signal=B:USR1@120", "#SBATCH --requeue",
                 "module load cuda\necho ready\nexec "):
        assert line in script
    step = script.rstrip().splitlines()[-1]
    assert " -m runner.cluster.batch " in step and " 120 srun " in step and "-m runner.cluster.node" in step
    assert "(dry run: nothing submitted)" in script
    assert not (tmp_path / "outputs").exists()


def test_a_restart_rule_may_name_the_preempted_reason(tmp_path: Path) -> None:
    write_recorder_job(tmp_path, extra="restart:\n  rules:\n    - {action: give_up, reasons: [preempted]}\n")
    done = erun(["+job=train.yaml", "nnodes=2", "cluster=slurm", "--dry-run=json"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["plan"]["restart"]["rules"][0]["reasons"] == ["preempted"]


def test_warning_s_0_asks_for_no_warning_and_no_requeue(tmp_path: Path) -> None:
    write_recorder_job(tmp_path)
    done = erun(["+job=train.yaml", "nnodes=2", "cluster=slurm", "cluster.warning_s=0", "--dry-run"],
                tmp_path)
    assert done.returncode == 0, done.stderr
    assert "--signal" not in done.stdout and "--requeue" not in done.stdout
    assert done.stdout.rstrip().splitlines()[-1].startswith("exec srun ")


def test_secrets_reach_the_nodes_by_the_job_environment_even_with_a_chosen_export(tmp_path: Path) -> None:
    """plan.json has them redacted; sbatch's --export must still let them through."""
    write_recorder_job(tmp_path, extra="env:\n  API_TOKEN: s3cret\n")
    done = erun(["+job=train.yaml", "nnodes=2", "cluster=slurm", "cluster.sbatch.export=NONE", "--dry-run"],
                tmp_path)
    assert done.returncode == 0, done.stderr
    assert "#SBATCH --export=API_TOKEN\n" in done.stdout and "s3cret" not in done.stdout


def test_dry_run_json_holds_the_plan_with_the_shared_job_dir(tmp_path: Path) -> None:
    write_recorder_job(tmp_path)
    done = erun(["+job=train.yaml", "nnodes=2", "cluster=slurm", "--dry-run=json"], tmp_path)
    assert done.returncode == 0, done.stderr
    request = json.loads(done.stdout)
    plan = request["plan"]
    assert plan["rdzv"]["backend"] == "c10d" and plan["rdzv"]["max_nodes"] == 2
    assert plan["env"]["ERUN_JOB_DIR"] == plan["run_dir"]
    assert request["sbatch"][:2] == ["sbatch", "--parsable"]


@pytest.mark.parametrize(("override", "key"), [
    ("cluster.sbatch.nodes=4", "cluster.sbatch.nodes"),
    ("+cluster.sbatch.Bad_Name=1", "cluster.sbatch.Bad_Name"),
    ("rdzv=etcd", "rdzv.backend"),
    ("cluster.backend=slurmm", "cluster.backend"),
    ("cluster.warning_s=-1", "cluster.warning_s"),
])
def test_bad_cluster_keys_are_one_line(tmp_path: Path, override: str, key: str) -> None:
    write_recorder_job(tmp_path)
    done = erun(["+job=train.yaml", "nnodes=2", "cluster=slurm", override], tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and f"`{key}`" in done.stderr
    assert not (tmp_path / "outputs").exists()


def test_no_sbatch_on_path_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    write_recorder_job(tmp_path)
    python_only = no_sbatch_path(tmp_path)
    os.symlink(shutil.which("env") or "/usr/bin/env", Path(python_only) / "env")
    done = erun(["+job=train.yaml", "nnodes=2", "cluster=slurm"], tmp_path, env={"PATH": python_only})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "erun: error: `cluster` is slurm, but sbatch is not on PATH; load Slurm's client tools "
        "(module load slurm), or use cluster=local"]
    assert not (tmp_path / "outputs").exists()


def plan_for(nnodes: tuple[int, int]) -> JobPlan:
    return JobPlan.from_dict({
        "entrypoint": {"kind": "script", "target": "train.py"}, "nproc": 2, "run_dir": "/shared/run",
        "run_id": "x", "rdzv": {"backend": "c10d", "endpoint": "SLURM_FIRST_NODE:29400", "id": "SLURM_JOB_ID",
                                "min_nodes": nnodes[0], "max_nodes": nnodes[1]}})


def test_the_node_plan_meets_at_the_first_node_on_a_port_from_the_job_id() -> None:
    node = SlurmNode.from_environ(SLURM_ENV)
    mine = node_plan(plan_for((1, 4)), node)
    assert mine.run_dir == "/shared/run/node_1"
    assert mine.rdzv.endpoint == f"gpu-07:{rdzv_port('4242')}" and mine.rdzv.id == "4242"
    assert (mine.rdzv.min_nodes, mine.rdzv.max_nodes) == (1, 2)  # the allocation's size
    assert mine.rdzv.settings["is_host"] is False and mine.rdzv.settings["local_addr"] == "gpu-08"
    first = node_plan(plan_for((2, 2)), SlurmNode.from_environ({**SLURM_ENV, "SLURMD_NODENAME": "gpu-07"}))
    assert first.rdzv.settings["is_host"] is True


def test_jobs_get_different_rendezvous_ports() -> None:
    assert len({rdzv_port(str(i)) for i in range(1000, 1100)}) == 100


def test_the_node_entry_refuses_to_run_outside_slurm(tmp_path: Path) -> None:
    from runner.cluster.node import main

    plan = tmp_path / "plan.json"
    plan.write_text(plan_for((2, 2)).to_json())
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "environ", env)
        assert main([str(plan)]) == 2


def test_a_sweep_needs_erun_launcher_and_one_cluster(tmp_path: Path) -> None:
    """Hydra's basic launcher would run the points here, one by one; a swept cluster= mixes a
    local sweep with a cluster one: both are one line, nothing made."""
    write_recorder_job(tmp_path)
    basic = erun(["-m", "+job=train.yaml", "cluster=slurm", "params.lr=1,2", "hydra/launcher=basic"],
                 tmp_path)
    assert basic.returncode == 2
    assert basic.stderr.strip().splitlines() == [
        "erun: error: command line: `cluster` is not local, but only erun's launcher submits a sweep's "
        "points; drop hydra/launcher=... (erun's is the default)"]
    mixed = erun(["-m", "+job=train.yaml", "cluster=local,slurm", "--dry-run"], tmp_path)
    assert mixed.returncode == 2 and "`cluster` differs between the sweep's points" in mixed.stderr
    assert len(mixed.stderr.strip().splitlines()) == 1, mixed.stderr
    assert not (tmp_path / "multirun").exists()


def test_a_sweep_without_sbatch_is_one_line_and_submits_nothing(tmp_path: Path) -> None:
    write_recorder_job(tmp_path)
    done = erun(["-m", "+job=train.yaml", "cluster=slurm", "params.lr=1,2"], tmp_path,
                env={"PATH": no_sbatch_path(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "erun: error: command line: `cluster` is slurm, but sbatch is not on PATH; load Slurm's client "
        "tools (module load slurm), or use cluster=local"]
    assert not list(tmp_path.glob("multirun/*/*/*/plan.json"))


def test_nproc_words_are_counted_on_each_node_not_where_erun_submits(tmp_path: Path) -> None:
    write_recorder_job(tmp_path)
    done = erun(["+job=train.yaml", "nnodes=2", "nproc=gpu", "isolate_gpus=true", "cluster=slurm",
                 "--dry-run"], tmp_path, env={"CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr
    assert "plan.json --nproc=gpu --isolate-gpus\n" in done.stdout


def test_the_node_counts_its_own_gpus() -> None:
    from runner.cluster.node import with_node_nproc
    from runner.devices import HostInfo

    host = HostInfo(cpus=8, gpus=("2", "3", "5"), gpu_source="CUDA_VISIBLE_DEVICES")
    plan = with_node_nproc(plan_for((2, 2)), "gpu", True, host)
    assert (plan.nproc, plan.devices) == (3, ("2", "3", "5"))
    assert with_node_nproc(plan_for((2, 2)), "cpu", False, host).nproc == 8
