"""Finding runs without being told where: `erun runs`, and `erun status` / `erun report` with no
run directory (the newest run, from the per-user index, else ./outputs); each rank's last output
line in `erun status`; the page's links to the logs and its job config."""

from __future__ import annotations

import dataclasses
import re
import shutil
import signal
from pathlib import Path

import pytest
from conftest import Erun, wait_for

from runner.cli import main as erun_main
from runner.paths import RunPaths
from runner.report.page import run_page

pytestmark = pytest.mark.usefixtures("no_survivors")


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh per-user index, and a working directory without outputs/."""
    state = tmp_path / "state"
    monkeypatch.setenv("ERUN_STATE_DIR", str(state))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return state / "runs.jsonl"


def out(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert erun_main(list(args)) == 0
    return capsys.readouterr().out


def test_runs_lists_the_newest_first_and_skips_deleted_ones(
        erun: Erun, index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second, third = (erun.plan("exit_code.py", code, nproc=1) for code in (0, 3, 0))
    for plan in (first, second, third):
        erun.run(plan)
    shutil.rmtree(third.run_dir)
    assert index.is_file()
    lines = out(capsys, "runs").splitlines()
    assert lines[0].split() == ["state", "name", "started", "run", "dir"]
    assert [line.split()[0] for line in lines[1:]] == ["FAILED", "SUCCEEDED"]
    assert lines[1].endswith(second.run_dir) and lines[2].endswith(first.run_dir)
    assert lines[1].split()[1] == second.name
    assert len(out(capsys, "runs", "-n", "1").splitlines()) == 2
    # status and report without a directory: the newest run that still exists
    assert f"run dir:    {second.run_dir}" in out(capsys, "status")
    assert f"run dir:    {second.run_dir}" in out(capsys, "report")
    assert (Path(second.run_dir) / "report.html").is_file()


def test_without_an_index_the_newest_run_under_outputs_is_taken(
        erun: Erun, index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = Path.cwd() / "outputs" / "2026-01-01"
    plans = [dataclasses.replace(erun.plan("exit_code.py", 0, nproc=1),
                                 run_dir=str(outputs / f"00-00-0{i}_x")) for i in (1, 2)]
    for plan in plans:
        erun.run(plan)
    index.unlink()
    assert f"run dir:    {plans[1].run_dir}" in out(capsys, "status")
    assert out(capsys, "runs").splitlines()[1].endswith(plans[1].run_dir)


def test_status_shows_each_ranks_last_output_line_and_its_age(
        erun: Erun, index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = erun.plan("talk.py", 100, 30)
    agent = erun.start(plan)
    paths = RunPaths(Path(plan.run_dir))
    try:
        wait_for(lambda: all(paths.stdout(0, r).is_file() and paths.stdout(0, r).read_text() for r in (0, 1)),
                 what="a line from each rank")
        text = out(capsys, "status", plan.run_dir)
        assert "last output:" in text
        for rank in (0, 1):
            assert re.search(rf"^\s+{rank}\s+[\d.]+ (ms|s) ago  line 0 of rank {rank}$", text, re.M), text
    finally:
        agent.popen.send_signal(signal.SIGTERM)
        agent.finish()


def test_the_page_links_each_ranks_logs_and_shows_the_job_config(erun: Erun, tmp_path: Path) -> None:
    plan = erun.plan("talk.py", 1, 0)
    erun.run(plan)
    run_dir = Path(plan.run_dir)
    RunPaths(run_dir).job_config.write_text("entrypoint: talk.py\nparams:\n  lr: 0.1\nenv:\n"
                                            "  WANDB_API_KEY: abc123\n  HF_TOKEN: 'xyz'\n")
    from runner.record import read as runlog

    page = run_page(runlog.load_run_dir(run_dir))
    assert '<a href="attempt_0/rank_1/stdout.log">stdout</a>' in page
    assert '<a href="attempt_0/rank_0/stderr.log">stderr</a>' in page
    assert "Job config (job.yaml, secrets redacted)" in page and "lr: 0.1" in page
    assert "abc123" not in page and "xyz" not in page and "WANDB_API_KEY: &lt;redacted&gt;" in page
    elsewhere = run_page(runlog.load_run_dir(run_dir), tmp_path / "pages")
    assert f'href="../{run_dir.name}/attempt_0/rank_0/stdout.log"' in elsewhere
