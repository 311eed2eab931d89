"""The bench runs end to end: `python -m bench --smoke` prints the tables and writes valid JSON;
and it exits 1 when the suite itself did not work, never because of speed (bench/checks.py).

Never asserts on speed: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SMOKE_TIMEOUT_S = 120

if str(REPO) not in sys.path:  # bench is not an installed package: import it from the checkout
    sys.path.insert(0, str(REPO))

from bench import __main__ as bench_main  # noqa: E402
from bench.checks import problems  # noqa: E402
from bench.common import Row  # noqa: E402
from bench.registry import Metric  # noqa: E402


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S)
    return proc, out


@pytest.mark.slow
def test_smoke_exits_0_and_prints_the_tables(smoke: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = smoke
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "latest.md").read_text() == proc.stdout
    expected = (
        "| trivial nproc=2 | erun | 1/1 |", "| trivial nproc=2 | torchrun |", "| trivial nproc=2 | floor |",
        "| exit 1 nproc=2 | erun | 1/1 |", "| 4 workers sleeping 1 s: CPU idle supervision | erun |",
        "## Targets", "| 2 points x 1 proc sleeping 0.2 s | erun -m | 1/1 |",
        "| 2 points x 1 proc sleeping 0.2 s | hydra basic | 1/1 |",
        "| fn on 2 workers, return values | erun | 1/1 |", "Processes left behind after the run: 0.",
    )
    for row in expected:
        assert row in proc.stdout


@pytest.mark.slow
def test_smoke_json_is_valid_and_complete(smoke: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = smoke
    data = json.loads((out / "latest.json").read_text())
    assert data["mode"] == "smoke" and data["survivors"] == 0 and data["problems"] == []
    assert set(data["durations_s"]) == {m["name"] for m in data["metrics"]}
    assert {"cores", "python", "torch"} <= set(data["machine"])
    names = {m["name"] for m in data["metrics"]}
    assert names >= {"launch", "restart", "overhead", "multi-node", "sweep", "scale", "api"}
    assert not [m["name"] for m in data["metrics"] if m["pending"]]
    rows = {(r["metric"], r["case"], r["launcher"]): r for r in data["rows"]}
    launch = rows[("launch", "trivial nproc=2", "erun")]
    assert launch["ok"] == launch["runs"] == 1 and launch["median"] > 0
    assert rows[("restart", "exit 1 nproc=2", "erun")]["ok"] == 1
    assert data["targets"] and all(t["result"] in ("PASS", "MISS", "n/a") for t in data["targets"])


@pytest.mark.slow
def test_results_hold_no_path_of_this_machine(smoke: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = smoke
    text = (out / "latest.md").read_text() + (out / "latest.json").read_text()
    assert str(REPO) not in text and str(out) not in text


# -- what fails the suite (no processes) -----------------------------------------------------


def row(metric: str, launcher: str, ok: int, runs: int, case: str = "c") -> Row:
    made = Row(metric, case, launcher)
    for i in range(runs):
        made.add(1.0 if i < ok else None)
    return made


def test_slow_runs_and_torchruns_expected_failures_are_no_problem() -> None:
    rows = [row("restart", "erun", 1, 2), row("restart", "torchrun-fresh", 1, 1),
            row("restart", "torchrun", 0, 1),  # the default shared store did not recover
            row("multi-node", "erun", 1, 1, "absorb x"), row("multi-node", "torchrun", 0, 1, "absorb x"),
            row("restart", "floor", 0, 0)]  # not run in this mode
    assert problems(["restart", "multi-node"], rows) == []


def test_a_metric_without_a_successful_erun_run_is_a_problem() -> None:
    rows = [row("launch", "erun", 0, 2), row("launch (erun agent part)", "erun", 0, 0),
            row("launch", "erun-hydra", 0, 0), row("launch", "torchrun", 2, 2)]
    found = problems(["launch", "sweep"], rows)
    assert any(p.startswith("launch: no successful erun") for p in found)
    assert any(p.startswith("sweep: no successful erun") for p in found)  # it measured nothing


def test_a_launcher_that_never_succeeds_in_a_metric_is_a_problem() -> None:
    rows = [row("launch", "erun", 2, 2), row("launch", "torchrun", 0, 1, "a"),
            row("launch", "torchrun", 0, 1, "b"), row("multi-node", "erun", 1, 1),
            row("multi-node", "torchrun", 0, 1, "init 2 nodes")]  # not the expected deadlock
    assert problems(["launch", "multi-node"], rows) == [
        "launch: torchrun failed all 2 run(s); see the log above",
        "multi-node: torchrun failed all 1 run(s); see the log above"]


def run_main(metric: Callable[..., list[Row]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             *extra: str) -> tuple[int, dict[str, object]]:
    monkeypatch.setattr(bench_main, "METRICS", (Metric("fake", "a fake metric", metric),))
    monkeypatch.setattr(bench_main.signal, "signal", lambda *args: None)  # leave pytest's SIGTERM alone
    status = bench_main.main(["--smoke", "--out", str(tmp_path), *extra])
    return status, json.loads((tmp_path / "latest.json").read_text())


def test_a_crashing_metric_exits_1_and_still_writes_the_results(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(cfg: object) -> list[Row]:
        raise RuntimeError("boom")

    status, data = run_main(crash, tmp_path, monkeypatch)
    assert status == 1 and data["problems"] == ["fake: crashed: RuntimeError: boom"]


def test_a_suite_that_measured_exits_0_whatever_the_numbers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    status, data = run_main(lambda cfg: [row("fake", "erun", 1, 3), row("fake", "torchrun", 1, 1)],
                            tmp_path, monkeypatch)
    assert status == 0 and data["problems"] == []


def test_a_failed_suite_never_saves_results_md(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved = tmp_path / "RESULTS.md"
    monkeypatch.setattr(bench_main.common, "BENCH_DIR", tmp_path)
    status, _ = run_main(lambda cfg: [row("fake", "erun", 0, 1)], tmp_path / "out", monkeypatch, "--save")
    assert status == 1 and not saved.exists()


def test_the_sweep_targets_joblib_by_a_factor_and_basics_first_point_by_a_margin() -> None:
    from bench.sweep import FIRST, WALL
    from bench.targets import verdicts

    wall, first = WALL.format(points=8, sleep=2.0), FIRST.format(points=8)

    def row(case: str, launcher: str, value: float) -> Row:
        r = Row("sweep", case, launcher)
        r.add(value)
        return r

    def results(erun_wall: float, erun_first: float) -> dict[str, str]:
        rows = [row(wall, "erun -m", erun_wall), row(wall, "hydra joblib", 10.0),
                row(wall, "hydra basic", 17.0), row(first, "erun -m", erun_first),
                row(first, "hydra basic", 1.0), row(first, "hydra joblib", 3.0)]
        return {v.target.name: v.result for v in verdicts(rows) if v.target.metric == "sweep"}

    assert results(7.5, 1.45) == {"sweep 1.3x faster than joblib": "PASS",
                                  "sweep: first point within 0.5 s of basic": "PASS"}
    assert results(8.0, 1.55) == {"sweep 1.3x faster than joblib": "MISS",
                                  "sweep: first point within 0.5 s of basic": "MISS"}
