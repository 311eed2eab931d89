"""Results for sweepers: `runner.result(value)` and a `call` entrypoint's return value reach
summary.json and the point's JobReturn; a failed point's JobReturn is FAILED (a sweeper marks the
trial failed); a sweep in batches (Optuna's n_jobs) records every batch and stops at Ctrl-C."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import WORKERS, ctrl_c
from erun_cli import erun

import runner
from runner.worker import call
from runner.worker.result import RESULT_VAR

pytestmark = pytest.mark.usefixtures("no_survivors")


# -- runner.result (no processes) --------------------------------------------------------------


def test_result_writes_json_to_the_file_erun_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "result.json"
    monkeypatch.setenv(RESULT_VAR, str(target))
    runner.result({"loss": 0.25})
    runner.result(0.5)  # a later call replaces an earlier one
    assert json.loads(target.read_text()) == 0.5
    with pytest.raises(TypeError, match="JSON"):
        runner.result(object())
    assert call.RESULT_VAR == RESULT_VAR


def test_result_outside_erun_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RESULT_VAR, raising=False)
    runner.result(1.0)


# -- real jobs and sweeps ----------------------------------------------------------------------


def write_objective(folder: Path, how: str = "entrypoint") -> None:
    target = f"call: objective:square\ncwd: {WORKERS}\n" if how == "call" \
        else f"entrypoint: {WORKERS / 'objective.py'}\n"
    (folder / "obj.yaml").write_text(f"{target}nproc: 1\nparams:\n  x: 0\n")


def test_a_call_entrypoints_return_value_is_the_jobs_result(tmp_path: Path) -> None:
    write_objective(tmp_path, "call")
    done = erun(["+job=obj.yaml", "params.x=4", "hydra.run.dir=run"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["result"] == 9.0


def test_optuna_optimises_what_the_workers_report_and_failed_trials_fail(tmp_path: Path) -> None:
    write_objective(tmp_path)
    # Seeded random sampling: this seed tries x=1 (the best) and x=3 (which fails), in 3 batches of 2.
    done = erun(["-m", "+job=obj.yaml", "hydra/sweeper=optuna", "hydra/sweeper/sampler=random",
                 "hydra.sweeper.sampler.seed=1", "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=2",
                 "hydra.sweeper.max_failure_rate=1.0", "params.x=choice(0,1,2,3)", "hydra.sweep.dir=sweep",
                 "hydra.launcher.slots=2"], tmp_path)
    assert done.returncode == 1, done.stderr  # a trial failed (the sweep still ran to its end)
    best = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert best["best_value"] == 0.0 and best["best_params"] == {"params.x": 1}  # as typed, not ++params.x
    assert "Failed experiment: erun: point" in done.stdout + done.stderr  # Optuna marked x=3 failed
    rows = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["points"]
    assert [r["point"] for r in rows] == [0, 1, 2, 3, 4, 5]  # every batch
    xs = [int(r["label"].removeprefix("[x=").removesuffix("]")) for r in rows]
    assert {1, 3} <= set(xs)
    for x, row in zip(xs, rows, strict=True):
        assert (row["state"], row["result"]) == (("FAILED", None) if x == 3 else ("SUCCEEDED", (x - 1) ** 2))


def test_ctrl_c_stops_a_sweep_in_batches(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    (tmp_path / "point.yaml").write_text(
        f"entrypoint: {WORKERS / 'sweep_point.py'}\nnproc: 1\nrestart:\n  stop_grace_s: 2\n"
        f"params:\n  markers: {markers}\n  sleep: 60\n  code: 0\n  tag: x\n")
    argv = [sys.executable, "-m", "runner", "-m", "+job=point.yaml", "params.tag=a,b,c,d",
            "hydra.sweeper.max_batch_size=2", "hydra.launcher.slots=2", "hydra.sweep.dir=sweep"]
    done = ctrl_c(argv, tmp_path, lambda: len(list(markers.glob("start_*"))) >= 2, "the first batch running")
    assert done.returncode == 130, done.stderr
    assert done.seconds < 15
    assert sorted(p.name.split("_")[1] for p in markers.glob("ran_*")) == ["a", "b"]  # no next batch
    summary: dict[str, Any] = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [r["state"] for r in summary["points"]] == ["INTERRUPTED", "INTERRUPTED"]
    assert summary["signal"] == "SIGINT" and summary["exit_status"] == 130
