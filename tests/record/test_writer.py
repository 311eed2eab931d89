"""The run directory as the runtime writes it (no processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.plan import EntrypointPlan, JobPlan
from runner.record import writer as record


def test_run_dir_is_created_with_the_plan_and_opened_again_for_a_rerun(tmp_path: Path) -> None:
    plan = JobPlan(EntrypointPlan("script", "x.py"), 1, str(tmp_path / "a" / "run"), "r")
    paths = record.open_run_dir(plan)
    assert JobPlan.from_dict(json.loads(paths.plan.read_text())) == plan
    record.EventLog(paths.events).close()
    assert record.open_run_dir(plan) == paths  # a rerun continues it (runner.record.continuation)


def test_write_file_replaces_a_planted_link_and_never_writes_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out.json"
    out.symlink_to(victim)
    record.write_file(out, "new\n")
    assert victim.read_text() == "precious\n"
    assert not out.is_symlink() and out.read_text() == "new\n"
    assert oct(out.stat().st_mode & 0o777) == oct(0o600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "victim.txt"]


def test_write_file_that_fails_leaves_no_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()  # a folder where the file should go: the rename fails
    with pytest.raises(OSError):
        record.write_file(tmp_path / "taken", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
