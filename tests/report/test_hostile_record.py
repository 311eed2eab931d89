"""`erun status` and `erun report` on corrupted or hostile run directories: one clear line or a
report, never a traceback, never an unbounded read (real `erun` processes, hard timeouts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO, Erun, subprocess_env

from runner.paths import RunPaths

pytestmark = pytest.mark.usefixtures("no_survivors")

GOOD_EVENTS = [
    {"time": 1.0e9, "event": "group_state", "attempt": 0, "state": "INIT", "master_port": 1},
    {"time": 1.0e9 + 1, "event": "worker_state", "attempt": 0, "rank": 0, "state": "HEALTHY", "pid": 1},
    {"time": 1.0e9 + 2, "event": "worker_state", "attempt": 0, "rank": 0, "state": "FAILED", "exit_code": 1},
]


def lines(*events: object) -> str:
    return "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events)


def bad_events(paths: RunPaths) -> None:
    paths.events.write_text(lines(
        *GOOD_EVENTS, {"time": "x", "event": 1}, {"time": float("nan"), "event": "note"},
        {"time": 1e308, "event": "group_state", "attempt": "zz", "state": [1]},
        {"time": 1e9, "event": "worker_state", "attempt": 10**30, "rank": "a", "state": {}},
        {"time": 1e9, "event": "worker_state", "attempt": 0, "rank": 1e300, "state": "HEALTHY", "pid": "p"},
        {"time": -1e308, "event": "worker_state", "attempt": -5, "rank": 0, "state": "FAILED",
         "exit_code": "x", "signal": 7},
        {"time": 1e9, "event": "note", "rank": [], "reason": {}, "message": 5},
        {"time": 1e9, "event": "stop", "attempt": 0, "ranks": 5, "signal": "SIGTERM"},
        {"time": 1e9, "event": "job_end", "state": 3, "exit_code": 1e300},
        [1, 2], "null", '"text"', "{" * 5000,
    ))


def bad_summary(paths: RunPaths) -> None:
    paths.summary.write_text(json.dumps({
        "state": "FAILED", "exit_code": "x", "signal": 9, "root_cause": 5,
        "per_attempt": [{"attempt": 0, "start": float("nan"), "end": 1e308, "state": 4,
                         "workers": [{"rank": 0, "start": "s", "exit_code": [], "pid": 1e300}],
                         "failures": [{"attempt": 0, "rank": 0, "time": float("inf"), "stderr_tail": 5}]}],
    }).replace("NaN", "NaN"))


def bad_plan(paths: RunPaths) -> None:
    paths.plan.write_text(json.dumps({"nproc": "x", "env": [1], "entrypoint": 5, "logs": 7,
                                      "restart": {"max_restarts": float("inf")}, "name": {}}))


def events_to_dev_zero(paths: RunPaths) -> None:
    paths.events.unlink()
    paths.events.symlink_to("/dev/zero")


def events_huge(paths: RunPaths) -> None:
    with open(paths.events, "ab") as f:
        f.truncate(64 * 1024**3)  # sparse: 64 GiB of nothing after the real events


def events_fifo(paths: RunPaths) -> None:
    paths.events.unlink()
    os.mkfifo(paths.events)


def summary_to_dev_zero(paths: RunPaths) -> None:
    paths.summary.unlink(missing_ok=True)
    paths.summary.symlink_to("/dev/zero")


DAMAGE: dict[str, Callable[[RunPaths], None]] = {
    "bad_events": bad_events, "bad_summary": bad_summary, "bad_plan": bad_plan,
    "events_dev_zero": events_to_dev_zero, "events_huge": events_huge, "events_fifo": events_fifo,
    "summary_dev_zero": summary_to_dev_zero,
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    erun = Erun(tmp_path_factory.mktemp("hostile"))
    plan = erun.plan("exit_code.py", 3, nproc=2)
    erun.run(plan)
    return Path(plan.run_dir)


@pytest.mark.parametrize("command", ["status", "report"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_record_is_a_report_or_one_line_never_a_traceback(
        finished_run: Path, tmp_path: Path, damage: str, command: str) -> None:
    run_dir = tmp_path / "run"
    subprocess.run(["cp", "-a", str(finished_run), str(run_dir)], check=True)
    DAMAGE[damage](RunPaths(run_dir))
    done = subprocess.run([sys.executable, "-m", "runner", command, str(run_dir)], cwd=REPO,
                          env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 2), done.stderr
    if done.returncode == 2:
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert len(done.stdout) < 1_000_000


def test_report_never_writes_through_a_link_planted_at_report_html(
        finished_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    subprocess.run(["cp", "-a", str(finished_run), str(run_dir)], check=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    RunPaths(run_dir).report_html.symlink_to(victim)
    done = subprocess.run([sys.executable, "-m", "runner", "report", str(run_dir)], cwd=REPO,
                          env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "precious\n"
    page = RunPaths(run_dir).report_html
    assert not page.is_symlink() and page.read_text().startswith("<!")
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
