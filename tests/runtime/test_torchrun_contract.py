"""The worker environment contract against a real `torchrun`, and real torch.distributed
(gloo, env://) under erun. These tests import torch in the workers (never in the agent)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, WORKERS, Erun, read_events, subprocess_env

from runner.runtime.env import available_cpus
from runner.state import JobState

pytestmark = pytest.mark.usefixtures("no_survivors")

# Values that must differ between two launches, or where erun differs by design.
PER_LAUNCH = {"MASTER_PORT", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_ERROR_FILE"}
BY_DESIGN = {
    "TORCHELASTIC_USE_AGENT_STORE",  # erun: "False", the workers' rank 0 hosts a fresh store
    "OMP_NUM_THREADS",  # erun: cores / nproc, torchrun: 1
}


def torchrun_argv() -> list[str]:
    """torchrun of this interpreter (a `torchrun` on PATH may be another Python's, or a shim
    that adds variables of its own)."""
    return [sys.executable, "-m", "torch.distributed.run"]


def dump_with_torchrun(out: Path, nproc: int) -> None:
    env = subprocess_env()
    env.pop("OMP_NUM_THREADS", None)
    argv = [*torchrun_argv(), "--nproc-per-node", str(nproc), str(WORKERS / "dump_env.py"), str(out)]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def load_envs(out: Path, nproc: int) -> list[dict[str, str]]:
    return [json.loads((out / f"env_{rank}.json").read_text()) for rank in range(nproc)]


def test_worker_env_matches_torchrun(erun: Erun, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    theirs_dir, ours_dir = erun.tmp_path / "torchrun", erun.tmp_path / "erun"
    theirs_dir.mkdir()
    ours_dir.mkdir()
    dump_with_torchrun(theirs_dir, 2)
    plan = erun.plan("dump_env.py", ours_dir, nproc=2)
    code, _, err = erun.start(plan).finish()
    assert code == 0, err

    for rank, (theirs, ours) in enumerate(zip(load_envs(theirs_dir, 2), load_envs(ours_dir, 2), strict=True)):
        erun_own = {k for k in ours if k.startswith("ERUN_")} - set(theirs)
        assert set(ours) - erun_own == set(theirs), f"rank {rank}: different variables"
        same = set(theirs) - PER_LAUNCH - BY_DESIGN
        assert {k: ours[k] for k in same} == {k: theirs[k] for k in same}, f"rank {rank}"
        assert erun_own >= {"ERUN_RUN_DIR", "ERUN_JOB_TOKEN"}
        store = "TORCHELASTIC_USE_AGENT_STORE"
        assert (theirs[store], ours[store]) == ("True", "False")
        assert theirs["OMP_NUM_THREADS"] == "1"
        assert ours["OMP_NUM_THREADS"] == str(max(1, available_cpus() // 2))
        error_file = Path(plan.run_dir) / f"attempt_0/rank_{rank}/error.json"
        assert ours["TORCHELASTIC_ERROR_FILE"] == str(error_file)
        assert ours["TORCHELASTIC_RUN_ID"] == plan.run_id
        assert ours["MASTER_PORT"].isdigit() and theirs["MASTER_PORT"].isdigit()
    ours_both = load_envs(ours_dir, 2)
    assert ours_both[0]["MASTER_PORT"] == ours_both[1]["MASTER_PORT"]
    notes = [e for e in read_events(Path(plan.run_dir)) if e["event"] == "note"]
    assert len(notes) == 1 and "OMP_NUM_THREADS" in notes[0]["message"]


def test_gloo_all_reduce_over_env_init(erun: Erun) -> None:
    out = erun.tmp_path / "out"
    out.mkdir()
    result = erun.run(erun.plan("gloo_allreduce.py", out, nproc=2))
    assert result.state is JobState.SUCCEEDED, result.root_cause
    for rank in (0, 1):
        got = json.loads((out / f"allreduce_a0_r{rank}.json").read_text())
        assert got == {"rank": rank, "world_size": 2, "sum": 3.0, "torchelastic": True}


def test_gloo_group_initialises_again_after_a_restart(erun: Erun) -> None:
    out = erun.tmp_path / "out"
    out.mkdir()
    result = erun.run(erun.plan("gloo_allreduce.py", out, "fail-once", nproc=2, max_restarts=1))
    assert (result.state, result.restarts) == (JobState.SUCCEEDED, 1), result.root_cause
    assert [f.rank for f in result.attempts[0].failures] == [1]
    for rank in (0, 1):
        got = json.loads((out / f"allreduce_a1_r{rank}.json").read_text())
        assert got == {"rank": rank, "world_size": 2, "sum": 3.0, "torchelastic": True}
