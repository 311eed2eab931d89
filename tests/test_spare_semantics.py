"""Warm spares are opt-in, and a warm worker sees what a fresh `python -u script.py` sees.

Spares change how a restarted rank's interpreter came to be, so they are off unless asked for
(`restart=warm` or `restart.prewarm.modules=[...]`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from erun_cli import erun, write_recorder_job


def dry_plan(tmp_path: Path, *overrides: str) -> dict[str, object]:
    write_recorder_job(tmp_path)
    result = erun(["+job=train.yaml", *overrides, "--dry-run=json"], tmp_path)
    assert result.returncode == 0, result.stderr
    plan: dict[str, object] = json.loads(result.stdout)
    return plan


@pytest.mark.parametrize("overrides,modules,max_restarts", [
    (["restart=on_failure"], [], 3),  # a restart policy alone: cold restarts, as torchrun
    (["restart=warm"], ["torch"], 3),  # the preset turns spares on
    (["restart.max_restarts=2", "restart.prewarm.modules=[torch]"], ["torch"], 2),
])
def test_spares_are_off_unless_asked_for(tmp_path: Path, overrides: list[str], modules: list[str],
                                         max_restarts: int) -> None:
    restart = dry_plan(tmp_path, *overrides)["restart"]
    assert isinstance(restart, dict)
    assert (restart["prewarm"]["modules"], restart["max_restarts"]) == (modules, max_restarts)
