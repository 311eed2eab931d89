"""What Slurm cannot run is one line, exit 2, with nothing left queued: sbatch's own refusals
(read from its messages), and a job sbatch accepts but would keep pending for ever (more CPUs
than a node has: PartitionConfig), which erun cancels at once; and Slurm's view of a job as
squeue, sacct and scontrol tell it, each asked only about what the one before did not know."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import WORKERS
from erun_cli import erun
from slurm_cluster import SlurmCluster

from runner.cluster.jobview import SlurmView, views
from runner.cluster.slurm import refusal


@pytest.mark.parametrize(("stderr", "key", "words"), [
    ("sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified",
     "cluster.sbatch.account", "Invalid account or account/partition combination specified"),
    ("sbatch: error: Batch job submission failed: Invalid partition name specified",
     "cluster.partition", "Invalid partition name specified"),
    ("sbatch: error: Batch job submission failed: Node count specification invalid", "nnodes", "Node count"),
    ("sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some "
     "limit)", "cluster.time", "Requested time limit"),
])
def test_sbatch_refusals_name_the_key_in_one_line(stderr: str, key: str, words: str) -> None:
    line = refusal(stderr + "\n").one_line()
    assert len(line.splitlines()) == 1 and f"`{key}` was refused by sbatch: " in line and words in line


def test_a_job_that_could_never_start_is_cancelled_and_refused_in_one_line(
        tmp_path: Path, cluster_env: dict[str, str], slurm: SlurmCluster) -> None:
    (tmp_path / "job.yaml").write_text(f"entrypoint: {WORKERS / 'exit_code.py'}\nargs: ['0']\nnproc: 1\n")
    done = erun(["+job=job.yaml", "cluster=slurm", "cluster.sbatch.cpus-per-task=64"], tmp_path, cluster_env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "`cluster.sbatch` asks for what the partition cannot give: Slurm would keep the job pending " \
           "for ever (PartitionConfig; job" in done.stderr
    assert slurm.jobs() == [] and not (tmp_path / "outputs").exists()
    swept = erun(["-m", "+job=job.yaml", "cluster=slurm", "cluster.sbatch.cpus-per-task=64", "args=[0],[1]"],
                 tmp_path, cluster_env)
    assert swept.returncode == 2 and "(PartitionConfig; job" in swept.stderr, swept.stderr
    assert slurm.jobs() == [] and not list(tmp_path.glob("multirun/*/*/*/plan.json"))


def fake(outputs: dict[str, str | None]) -> object:
    """A Slurm command runner answering by command name; records what was asked."""
    asked: list[list[str]] = []

    def run(argv: Sequence[str]) -> str | None:
        asked.append(list(argv))
        return outputs.get(argv[0])
    run.asked = asked  # type: ignore[attr-defined]
    return run


def test_the_view_asks_squeue_then_sacct_then_scontrol_for_what_is_left() -> None:
    run = fake({"squeue": "7_0|RUNNING|None\n7_1|PENDING|Resources\n",
                "sacct": "7_2|CANCELLED by 0|0:15\n",
                "scontrol": "JobId=9 ArrayJobId=7 ArrayTaskId=3 JobState=FAILED Reason=NonZeroExitCode "
                            "ExitCode=1:0 Restarts=0\n"})
    seen = views(["7_0", "7_1", "7_2", "7_3", "8"], run)  # type: ignore[arg-type]
    assert seen["7_0"] == SlurmView("7_0", "RUNNING", "None", source="squeue")
    assert seen["7_1"].describe() == "PENDING (Resources)"
    assert seen["7_2"].describe() == "CANCELLED (exit 0:15)" and seen["7_2"].source == "sacct"
    assert seen["7_3"].describe() == "FAILED (NonZeroExitCode, exit 1:0)"
    assert seen["8"].state == "UNKNOWN" and seen["8"].reason == "Slurm no longer knows the job"
    asked = run.asked  # type: ignore[attr-defined]
    assert asked[0][-3:] == ["7,8", "-o", "%i|%T|%r"] and asked[1][5] == "7_2,7_3,8"


def test_one_job_also_shows_how_often_it_was_requeued() -> None:
    run = fake({"squeue": "12|RUNNING|None\n",
                "scontrol": "JobId=12 JobState=RUNNING Reason=None Restarts=2\n"})
    assert views(["12"], run)["12"].describe() == "RUNNING, requeued 2 times"  # type: ignore[arg-type]


def test_without_slurm_commands_every_job_is_unknown_in_words(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert views(["5"])["5"].describe() == "UNKNOWN (no squeue, sacct or scontrol on PATH)"
    assert json.dumps(views([])) == "{}"
