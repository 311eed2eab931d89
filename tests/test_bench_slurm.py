"""bench/slurm.py and bench/slurm_preempt.py, quickly: `--quick` and `--smoke` leave the Slurm
metrics out (a 2-node job costs 20-60 s a launcher on 2 busy cores, a preemption 40-60 s) and say
so without it counting as a problem; one erun measurement of each on the session's test cluster
shows that the metrics measure; the hand-written recipes take their head node from the node list,
and the preemption recipe requeues on Slurm's warning. Never asserts on speed."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # bench is not an installed package: import it from the checkout
    sys.path.insert(0, str(REPO))

from bench import slurm as bench_slurm  # noqa: E402
from bench import slurm_preempt  # noqa: E402
from bench.checks import problems  # noqa: E402
from bench.config import QUICK, SMOKE  # noqa: E402


def test_quick_and_smoke_skip_the_metric_in_words_and_it_is_no_problem() -> None:
    for cfg in (QUICK, SMOKE):
        rows = bench_slurm.run(cfg)
        assert [r.launcher for r in rows] == ["erun", "sbatch + srun torchrun", "torchx dist.ddp"]
        assert all(r.runs == 0 and r.note == f"skipped: not measured in --{cfg.mode} (python -m bench "
                   "--only slurm)" for r in rows)
        assert problems(["slurm"], rows) == []


def test_one_erun_job_is_measured_on_the_test_cluster(slurm: object, no_survivors: str) -> None:
    """The metric's own submission and measurement, with a worker that imports no torch."""
    value = bench_slurm.measure(slurm, bench_slurm.ERUN, 120.0, worker="trivial.py", stamp="start")
    assert value is not None and value > 0
    assert slurm.jobs() == []  # type: ignore[attr-defined]


def test_the_recipe_takes_the_head_node_from_the_node_list(tmp_path: Path) -> None:
    script = bench_slurm.recipe_script(tmp_path / "out", tmp_path).read_text()
    assert 'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in script
    assert "--rdzv-endpoint=$head:" in script and "--rdzv-id=$SLURM_JOB_ID" in script
    assert "#SBATCH --nodes=2" in script and "srun " in script


def test_quick_and_smoke_skip_the_preemption_metric_and_torchx_says_why() -> None:
    for cfg in (QUICK, SMOKE):
        rows = slurm_preempt.run(cfg)
        assert [r.launcher for r in rows] == ["erun", "sbatch + srun torchrun", "torchx dist.ddp"]
        assert all(r.runs == 0 for r in rows)
        assert all(r.note == f"skipped: not measured in --{cfg.mode} (python -m bench --only slurm-preempt)"
                   for r in rows[:2])
        assert rows[2].note == slurm_preempt.NO_TORCHX
        assert problems(["slurm-preempt"], rows) == []


def test_one_erun_preemption_is_measured_on_the_test_cluster(slurm: object, no_survivors: str) -> None:
    """The metric's own run: the job trains, Slurm's warning, the requeued job resumes from the
    checkpoint (a worker without torch)."""
    slurm.ready_nodes()  # type: ignore[attr-defined]
    value = slurm_preempt.measure(slurm, slurm_preempt.ERUN, 120.0, mode="plain")
    assert value is not None and value > 0
    assert slurm.jobs() == []  # type: ignore[attr-defined]


def test_the_preemption_recipe_requeues_on_the_warning(tmp_path: Path) -> None:
    script = slurm_preempt.recipe_script(tmp_path / "out", tmp_path).read_text()
    assert f"#SBATCH --signal=B:USR1@{slurm_preempt.WARNING_S}" in script and "#SBATCH --requeue" in script
    assert "trap 'scontrol requeue \"$SLURM_JOB_ID\"' USR1" in script
    assert 'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in script
    assert "--rdzv-endpoint=$head:" in script and script.rstrip().endswith("&\nwait")
