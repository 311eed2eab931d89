"""Warm spares are opt-in, and a warm worker sees what a fresh `python -u script.py` sees.

Spares change how a restarted rank's interpreter came to be, so they are off unless asked for
(`restart=warm` or `restart.prewarm.modules=[...]`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import WORKERS, Erun, read_events
from erun_cli import erun, write_recorder_job

from runner.plan import EntrypointKind, EntrypointPlan, JobPlan, PrewarmPlan
from runner.runtime.spares import SPARE_SCRIPT
from runner.state import ExitInfo, JobState


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


# -- a probe on a cold and a warm attempt of the same job ------------------------------------

# What the probe must see identically, cold or warm.
SAME = ("main_at_start", "main", "annotations", "class_annotations", "type_hints", "argv", "orig_argv",
        "path", "flags", "excepthook", "signals", "gc", "recursion", "filters_after_import", "import_system",
        "cwd", "umask", "stdio")


def probe_plan(erun: Erun, as_module: bool, *args: str, modules: tuple[str, ...] = ("torch",)) -> JobPlan:
    """One rank, one restart, spares importing `modules` at once; OMP_NUM_THREADS=1 from the job."""
    fields: dict[str, Any] = {"env": {"OMP_NUM_THREADS": "1"}}
    if as_module:
        fields.update(entrypoint=EntrypointPlan(EntrypointKind.MODULE, "probe", (str(erun.markers), *args)),
                      cwd=str(WORKERS))
    plan = erun.plan("probe.py", erun.markers, *args, nproc=1, max_restarts=1, **fields)
    prewarm = PrewarmPlan(modules=modules, after_s=0.0)
    return dataclasses.replace(plan, restart=dataclasses.replace(plan.restart, prewarm=prewarm))


def traceback_text(run_dir: Path, attempt: int) -> str:
    stderr = (run_dir / f"attempt_{attempt}" / "rank_0" / "stderr.log").read_text()
    return stderr[stderr.index("Traceback (most recent call last):"):]


@pytest.mark.parametrize("as_module", [False, True], ids=["script", "module"])
def test_a_warm_attempt_sees_what_a_cold_one_sees(erun: Erun, no_survivors: str, as_module: bool) -> None:
    plan = probe_plan(erun, as_module)
    result = erun.run(plan)
    assert result.state is JobState.FAILED and len(result.attempts) == 2
    events = read_events(Path(plan.run_dir))
    warm_flags = [e.get("warm", False) for e in events
                  if e["event"] == "worker_state" and e["state"] == "HEALTHY"]
    assert warm_flags == [False, True]
    cold, warm = (json.loads((erun.markers / f"probe_a{a}_r0.json").read_text()) for a in (0, 1))
    for key in SAME:
        assert warm[key] == cold[key], key
    assert "annotations" not in cold["main_at_start"] and cold["annotations"]["k"] == "<class 'float'>"
    assert cold["orig_argv"][1:] == ["-u", *(["-m", "probe"] if as_module else [cold["argv"][0]]),
                                     str(erun.markers)]
    # An uncaught KeyboardInterrupt: the same report, and death by SIGINT, as Python's own.
    assert traceback_text(Path(plan.run_dir), 1) == traceback_text(Path(plan.run_dir), 0)
    assert "spare.py" not in traceback_text(Path(plan.run_dir), 1)
    for attempt in result.attempts:
        assert [w.exit for w in attempt.workers] == [ExitInfo(None, signal.SIGINT)]
    assert_the_documented_differences(cold, warm)


@pytest.mark.parametrize("end,exit,text", [
    ("exit-text", ExitInfo(1), "probe: stopping with a message\n"),
    ("exit-3", ExitInfo(3), ""),
    ("base", ExitInfo(1), "Traceback (most recent call last):"),
])
def test_a_warm_worker_ends_as_python_would(erun: Erun, no_survivors: str, end: str, exit: ExitInfo,
                                             text: str) -> None:
    plan = probe_plan(erun, False, end, "light", modules=("tomllib",))
    written = f"{WORKERS}/../workers/probe.py"  # not normalised, in __file__ and tracebacks alike
    plan = dataclasses.replace(plan, entrypoint=dataclasses.replace(plan.entrypoint, target=written))
    result = erun.run(plan)
    assert [[w.exit for w in a.workers] for a in result.attempts] == [[exit], [exit]]
    cold, warm = (json.loads((erun.markers / f"probe_a{a}_r0.json").read_text()) for a in (0, 1))
    assert warm["main"] == cold["main"] and cold["main"]["__file__"] == repr(written)
    stderr = [(Path(plan.run_dir) / f"attempt_{a}" / "rank_0" / "stderr.log").read_text() for a in (0, 1)]
    assert stderr[1] == stderr[0] and stderr[0].startswith(text)
    assert "spare.py" not in stderr[1]


def test_a_script_path_is_kept_as_written_and_a_missing_one_fails_as_python_says(
        erun: Erun, no_survivors: str, tmp_path: Path) -> None:
    folder = tmp_path / "w"
    folder.mkdir()
    for name in ("probe.py", "_common.py"):
        shutil.copy(WORKERS / name, folder / name)
    written = f"{folder}/../w/probe.py"  # Python keeps `..` in __file__ and in its messages
    plan = probe_plan(erun, False, "vanish", "light", modules=("tomllib",))
    plan = dataclasses.replace(plan, entrypoint=dataclasses.replace(plan.entrypoint, target=written))
    result = erun.run(plan)
    assert [[w.exit for w in a.workers] for a in result.attempts] == [[ExitInfo(1)], [ExitInfo(2)]]
    assert json.loads((erun.markers / "probe_a0_r0.json").read_text())["main"]["__file__"] == repr(written)
    warm = (Path(plan.run_dir) / "attempt_1" / "rank_0" / "stderr.log").read_text()
    cold = subprocess.run([sys.executable, "-u", written], capture_output=True, text=True, timeout=60)
    assert (cold.returncode, cold.stderr) == (2, warm)


def assert_the_documented_differences(cold: dict[str, Any], warm: dict[str, Any]) -> None:
    """docs/warm-restarts.md: exactly these differ, and only in these ways."""
    # torch was imported by the spare: before the script ran, with the job's environment ...
    assert (cold["modules_at_start"], warm["modules_at_start"]) == ({"torch": False}, {"torch": True})
    # ... so OMP_NUM_THREADS=3 set by the script before `import torch` came too late ...
    assert warm["threads"] == 1
    if (os.cpu_count() or 1) > 1:
        assert cold["threads"] > 1
    # ... its import-time warnings were emitted in the spare (on stderr, before the script) ...
    assert warm["import_warnings"] == []
    # ... and the warnings filters it adds on import are there from the start.
    added = [f for f in warm["filters_at_start"] if f not in cold["filters_at_start"]]
    assert [f for f in warm["filters_at_start"] if f not in added] == cold["filters_at_start"]
    assert all(f in cold["filters_after_import"] for f in added)
    # The process's own command line is the spare's; sys.orig_argv is the worker's.
    assert warm["cmdline"][2] == SPARE_SCRIPT and warm["cmdline"] != cold["cmdline"]
    assert cold["cmdline"] == cold["orig_argv"]
