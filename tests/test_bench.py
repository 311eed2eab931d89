"""The bench runs end to end: `python -m bench --smoke` prints the tables and writes valid JSON.

Never asserts on speed: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SMOKE_TIMEOUT_S = 120

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S)
    return proc, out


def test_smoke_exits_0_and_prints_the_tables(smoke: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = smoke
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "latest.md").read_text() == proc.stdout
    expected = (
        "| trivial nproc=2 | erun | 1/1 |", "| trivial nproc=2 | torchrun |", "| trivial nproc=2 | floor |",
        "| exit 1 nproc=2 | erun | 1/1 |", "| 4 workers sleeping 1 s: CPU idle supervision | erun |",
        "## Targets", "| 2 points x 1 proc sleeping 0.2 s | erun -m | 1/1 |",
        "| 2 points x 1 proc sleeping 0.2 s | hydra basic | 1/1 |", "Processes left behind after the run: 0.",
    )
    for row in expected:
        assert row in proc.stdout


def test_smoke_json_is_valid_and_complete(smoke: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = smoke
    data = json.loads((out / "latest.json").read_text())
    assert data["mode"] == "smoke" and data["survivors"] == 0
    assert {"cores", "python", "torch"} <= set(data["machine"])
    assert {m["name"] for m in data["metrics"]} >= {"launch", "restart", "overhead", "multi-node", "sweep"}
    assert not [m["name"] for m in data["metrics"] if m["pending"]]
    rows = {(r["metric"], r["case"], r["launcher"]): r for r in data["rows"]}
    launch = rows[("launch", "trivial nproc=2", "erun")]
    assert launch["ok"] == launch["runs"] == 1 and launch["median"] > 0
    assert rows[("restart", "exit 1 nproc=2", "erun")]["ok"] == 1
    assert data["targets"] and all(t["result"] in ("PASS", "MISS", "n/a") for t in data["targets"])


def test_results_hold_no_path_of_this_machine(smoke: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = smoke
    text = (out / "latest.md").read_text() + (out / "latest.json").read_text()
    assert str(REPO) not in text and str(out) not in text
