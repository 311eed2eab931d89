"""The run directory as the runtime writes it (no processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.errors import ConfigError
from runner.plan import EntrypointPlan, JobPlan
from runner.record import writer as record


def test_run_dir_is_created_with_the_plan_and_refused_once_it_holds_a_run(tmp_path: Path) -> None:
    plan = JobPlan(EntrypointPlan("script", "x.py"), 1, str(tmp_path / "a" / "run"), "r")
    paths = record.open_run_dir(plan)
    assert JobPlan.from_dict(json.loads(paths.plan.read_text())) == plan
    record.EventLog(paths.events).close()
    with pytest.raises(ConfigError) as info:
        record.open_run_dir(plan)
    assert info.value.key == "run_dir" and "already holds a run" in info.value.problem


