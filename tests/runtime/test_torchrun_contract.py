"""The worker environment contract against a real `torchrun`, and real torch.distributed
(gloo, env://) under erun. These tests import torch in the workers (never in the agent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Erun, read_events
from torchrun_env import BY_DESIGN, PER_LAUNCH, dump_with_torchrun, load_envs

from runner.runtime.env import available_cpus
from runner.state import JobState

pytestmark = pytest.mark.usefixtures("no_survivors")

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


@pytest.mark.slow
def test_gloo_group_initialises_again_after_a_restart(erun: Erun) -> None:
    out = erun.tmp_path / "out"
    out.mkdir()
    result = erun.run(erun.plan("gloo_allreduce.py", out, "fail-once", nproc=2, max_restarts=1))
    assert (result.state, result.restarts) == (JobState.SUCCEEDED, 1), result.root_cause
    assert [f.rank for f in result.attempts[0].failures] == [1]
    for rank in (0, 1):
        got = json.loads((out / f"allreduce_a1_r{rank}.json").read_text())
        assert got == {"rank": rank, "world_size": 2, "sum": 3.0, "torchelastic": True}
