"""`erun report` and `erun status` on run records written by real agents: finished, restarted,
failed, interrupted, still running, a sweep of two runs, and bad input.

The page's SVG must parse as XML, with one `rect[data-outcome]` per rank and attempt (per
attempt and point for a sweep), coloured by outcome.
"""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from conftest import REPO, Erun, alive, read_events, subprocess_env, wait_for, wait_for_markers

from runner.cli import main as erun_main
from runner.errors import ConfigError
from runner.plan import HealthPlan, JobPlan
from runner.record import read as runlog
from runner.record.model import Outcome
from runner.report.chart import COLOURS, SVG_NS
from runner.state import JobState

pytestmark = pytest.mark.usefixtures("no_survivors")

SVG = f"{{{SVG_NS}}}"


def report(run_dir: Path | str, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert erun_main(["report", str(run_dir), *extra]) == 0
    return capsys.readouterr().out


def status(run_dir: Path | str, capsys: pytest.CaptureFixture[str]) -> str:
    assert erun_main(["status", str(run_dir)]) == 0
    return capsys.readouterr().out


def svgs(page: Path) -> list[ET.Element]:
    """Every <svg> of the page, parsed as XML (fails the test if one does not parse)."""
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", page.read_text(), re.S)]


def bars(svg: ET.Element) -> list[ET.Element]:
    return [r for r in svg.iter(f"{SVG}rect") if "data-outcome" in r.attrib]


def outcomes(svg: ET.Element) -> Counter[str]:
    """How many bars of each outcome; each bar's colour must be its outcome's."""
    found = bars(svg)
    for bar in found:
        assert bar.get("fill") == COLOURS[Outcome(bar.get("data-outcome"))]
        assert bar.find(f"{SVG}title") is not None
    return Counter(str(b.get("data-outcome")) for b in found)


def marker_kinds(svg: ET.Element) -> list[str]:
    return [str(g.get("data-kind")) for g in svg.iter(f"{SVG}g") if g.get("class") == "marker"]


# -- finished runs ---------------------------------------------------------------------------


def test_report_of_a_successful_run(erun: Erun, capsys: pytest.CaptureFixture[str]) -> None:
    plan = erun.plan("exit_code.py", 0)
    erun.run(plan)
    capsys.readouterr()
    text = report(plan.run_dir, capsys)
    assert "state:      SUCCEEDED (exit 0)" in text
    assert "1 attempt, 0 restarts" in text
    assert "root cause" not in text and "failures" not in text
    page = Path(plan.run_dir) / "report.html"
    assert f"html:       {page}" in text
    [svg] = svgs(page)
    assert outcomes(svg) == {"succeeded": 2}
    assert marker_kinds(svg) == []


def test_report_of_a_restart_then_success(erun: Erun, capsys: pytest.CaptureFixture[str]) -> None:
    plan = erun.plan("fail_once.py", erun.markers, max_restarts=1)
    erun.run(plan)
    capsys.readouterr()
    html = erun.tmp_path / "elsewhere" / "page.html"
    text = report(plan.run_dir, capsys, "--html", str(html))
    assert "SUCCEEDED (exit 0)" in text and "2 attempts, 1 restart" in text
    assert re.search(r"attempt 0  FAILED .* 1: FAILED \(exited 1\)", text)
    assert re.search(r"attempt 1  SUCCEEDED .* 0: SUCCEEDED \(exited 0\)", text)
    assert re.search(r"attempt 0 rank 1 at \d\d:\d\d:\d\d\.\d{3} \(\+[\d.]+ s\): exited 1", text)
    assert "root cause" not in text  # the job succeeded in the end
    [svg] = svgs(html)
    assert outcomes(svg) == {"succeeded": 2, "failed": 1, "stopped": 1}
    assert marker_kinds(svg) == ["restart"]
    assert not (Path(plan.run_dir) / "report.html").exists()


def test_report_of_a_failed_run_names_the_root_cause(erun: Erun, capsys: pytest.CaptureFixture[str]) -> None:
    plan = erun.plan("exit_code.py", "0,3", "0,0.3")
    erun.run(plan)
    capsys.readouterr()
    text = report(plan.run_dir, capsys)
    assert "state:      FAILED (exit 1)" in text
    assert "root cause: rank 1, attempt 0: exited 3" in text
    assert "rank 1 attempt 0 exiting 3" in text  # its stderr, inline
    page = Path(plan.run_dir) / "report.html"
    [svg] = svgs(page)
    assert outcomes(svg) == {"succeeded": 1, "failed": 1}
    assert marker_kinds(svg) == ["give_up"]
    assert "Root cause" in page.read_text()


def test_report_marks_a_watchdog_verdict(erun: Erun, capsys: pytest.CaptureFixture[str]) -> None:
    plan = erun.plan("heartbeat_hang.py", erun.markers, max_restarts=1,
                     health=HealthPlan(heartbeat_timeout_s=0.5, interval_s=0.1))
    erun.run(plan)
    capsys.readouterr()
    text = report(plan.run_dir, capsys)
    assert "attempt 0 rank 1 at" in text and ": heartbeat_timeout: no heartbeat for" in text
    [svg] = svgs(Path(plan.run_dir) / "report.html")
    assert marker_kinds(svg) == ["watchdog", "restart"]
    assert outcomes(svg) == {"failed": 1, "stopped": 1, "succeeded": 2}


def test_report_of_an_interrupted_run(erun: Erun, capsys: pytest.CaptureFixture[str]) -> None:
    plan = erun.plan("hang.py", erun.markers)
    agent = erun.start(plan)
    wait_for_markers(erun.markers, 2)
    agent.popen.send_signal(signal.SIGTERM)
    assert agent.finish()[0] == 128 + signal.SIGTERM
    text = report(plan.run_dir, capsys)
    assert "state:      INTERRUPTED (exit 143, SIGTERM)" in text
    [svg] = svgs(Path(plan.run_dir) / "report.html")
    assert outcomes(svg) == {"stopped": 2}
    assert marker_kinds(svg) == ["signal"]


# -- a run still going -----------------------------------------------------------------------


def test_status_and_report_of_a_running_job_then_of_the_stopped_one(
        erun: Erun, capsys: pytest.CaptureFixture[str]) -> None:
    plan = erun.plan("hang.py", erun.markers)
    agent = erun.start(plan)
    try:
        wait_for_markers(erun.markers, 2)
        pids = wait_for(lambda: _healthy_pids(Path(plan.run_dir), 2), what="2 HEALTHY ranks in the events")
        text = status(plan.run_dir, capsys)
        assert "state:      RUNNING, attempt 0 (0 restarts), group HEALTHY" in text
        for rank, pid in enumerate(pids):
            assert re.search(rf"^\s+{rank}  HEALTHY\s+{pid}  yes ", text, re.M), text
        assert "warning" not in text
        assert "attempt 0 rank 1: HEALTHY (pid" in text  # the last events
        text = report(plan.run_dir, capsys)
        assert "still running" in text
        [svg] = svgs(Path(plan.run_dir) / "report.html")
        assert outcomes(svg) == {"running": 2}
    finally:
        agent.popen.send_signal(signal.SIGTERM)
        agent.finish()
    assert not any(alive(pid) for pid in pids)
    text = status(plan.run_dir, capsys)
    assert "state:      INTERRUPTED (exit 143), attempt 0 (0 restarts), group STOPPED" in text
    assert re.search(r"^\s+0  STOPPED\s+\d+  -  .*killed by SIGTERM$", text, re.M), text
    assert "job ended: INTERRUPTED (exit 143)" in text


def _healthy_pids(run_dir: Path, count: int) -> list[int] | None:
    events = [e for e in read_events(run_dir) if e["event"] == "worker_state" and e["state"] == "HEALTHY"]
    return [e["pid"] for e in sorted(events, key=lambda e: e["rank"])] if len(events) >= count else None


def test_a_record_without_its_summary_is_read_from_the_events(erun: Erun) -> None:
    # What a reader sees while the agent runs (or after it was SIGKILLed): no final summary,
    # and a half-written last line.
    plan = erun.plan("fail_once.py", erun.markers, max_restarts=1)
    erun.run(plan)
    run_dir = Path(plan.run_dir)
    (run_dir / "summary.json").unlink()
    events = run_dir / "events.jsonl"
    lines = events.read_text().splitlines()
    events.write_text("\n".join(lines[:-1]) + '\n{"time": 1.0, "event": "job_e')  # no job_end
    record = runlog.load_run_dir(run_dir)
    assert record.state is JobState.RUNNING and record.damaged_lines == 1
    assert [(a.attempt, a.state) for a in record.attempts] == [(0, "FAILED"), (1, "SUCCEEDED")]
    assert [(f.attempt, f.rank, f.reason, f.exit_code) for f in record.failures] == [(0, 1, "exit", 1)]
    started = [e for e in read_events(run_dir) if e["event"] == "worker_state" and e["attempt"] == 1
               and e["state"] == "HEALTHY"]
    pids = [e["pid"] for e in sorted(started, key=lambda e: e["rank"])]
    assert [s.pid for s in record.attempts[1].ranks] == pids


def test_a_running_summary_is_completed_from_the_events(erun: Erun) -> None:
    plan = erun.plan("fail_once.py", erun.markers, max_restarts=1)
    erun.run(plan)
    run_dir = Path(plan.run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(state="RUNNING", per_attempt=summary["per_attempt"][:1])  # as after attempt 0
    (run_dir / "summary.json").write_text(json.dumps(summary))
    events = [line for line in (run_dir / "events.jsonl").read_text().splitlines() if "job_end" not in line]
    (run_dir / "events.jsonl").write_text("\n".join(events) + "\n")
    record = runlog.load_run_dir(run_dir)
    assert record.state is JobState.RUNNING
    assert [a.state for a in record.attempts] == ["FAILED", "SUCCEEDED"]
    assert record.failures[0].stderr_tail[-1] == "failing on purpose"  # from the summary


# -- a sweep ---------------------------------------------------------------------------------


def test_report_of_a_sweep_directory(erun: Erun, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = erun.tmp_path / "multirun"
    points = [
        (erun.plan("exit_code.py", 0), ["params.code=0"]),
        (erun.plan("exit_code.py", "0,3", max_restarts=1), ["params.code=3", "job@_global_=train.yaml"]),
    ]
    for number, (plan, overrides) in enumerate(points):
        erun.run(dataclasses.replace(plan, run_dir=str(sweep / str(number))))
        hydra_dir = sweep / str(number) / ".hydra"
        hydra_dir.mkdir()
        (hydra_dir / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    capsys.readouterr()
    text = report(sweep, capsys)
    assert re.search(r"^\s+0  SUCCEEDED\s+1 attempt, .*params\.code=0$", text, re.M), text
    assert re.search(r"^\s+1  FAILED\s+2 attempts, .*params\.code=3 \+job=train\.yaml  \[root cause: rank 1, "
                     r"exited 3\]$", text, re.M), text
    sweep_svg, *point_svgs = svgs(sweep / "report.html")
    assert outcomes(sweep_svg) == {"succeeded": 1, "failed": 2}
    assert [b.get("data-point") for b in bars(sweep_svg)] == ["0", "1", "1"]
    assert [sum(outcomes(s).values()) for s in point_svgs] == [2, 4]
    with pytest.raises(ConfigError, match="is a multirun sweep directory"):
        runlog.load_run_dir(sweep)


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["report", "status"])
def test_bad_run_dir_is_one_line_and_exit_2(
        erun: Erun, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    (erun.tmp_path / "a_file").write_text("x")
    cases = {"missing": "does not exist", "a_file": "is not a directory", "markers": "is not a run directory"}
    for name, problem in cases.items():
        assert erun_main([command, str(erun.tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("erun: error: ") and problem in err, err



@pytest.mark.parametrize("command", ["report", "status"])
def test_no_run_dir_and_no_run_yet_is_one_line_and_exit_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ERUN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    assert erun_main([command]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("erun: error: no run to show"), err


def test_report_and_status_import_neither_torch_nor_hydra(erun: Erun) -> None:
    plan = erun.plan("exit_code.py", 0)
    erun.run(plan)
    code = ("import sys; from runner.cli import main; "
            f"assert main(['report', {plan.run_dir!r}]) == 0 and main(['status', {plan.run_dir!r}]) == 0; "
            "heavy = [m for m in ('torch', 'hydra', 'omegaconf') if m in sys.modules]; "
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    bad = subprocess.run([sys.executable, "-m", "runner", "report", str(erun.tmp_path / "missing")], cwd=REPO,
                         env=subprocess_env(), capture_output=True, text=True, timeout=30)
    assert (bad.returncode, bad.stderr.count("\n"), bad.stdout) == (2, 1, "")


def test_worker_text_in_the_page_is_escaped(erun: Erun) -> None:
    plan: JobPlan = erun.plan("exit_code.py", 0)
    erun.run(plan)
    with (Path(plan.run_dir) / "events.jsonl").open("a") as log:
        log.write(json.dumps({"time": 2e9, "event": "note", "message": "<script>x</script> & \x07",
                              "decision": "stop"}) + "\n")
    from runner.report.page import run_page
    page = run_page(runlog.load_run_dir(plan.run_dir))
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt; &amp;" in page
    for svg in re.findall(r"<svg .*?</svg>", page, re.S):
        ET.fromstring(svg)


def test_status_says_when_the_agent_died_without_recording_the_end(
        erun: Erun, capsys: pytest.CaptureFixture[str]) -> None:
    plan = erun.plan("hang.py", erun.markers)
    agent = erun.start(plan)
    wait_for_markers(erun.markers, 2)
    pids = wait_for(lambda: _healthy_pids(Path(plan.run_dir), 2), what="2 HEALTHY ranks in the events")
    agent.popen.kill()  # the orphan guard takes its workers down with it
    agent.finish()
    wait_for(lambda: not any(alive(pid) for pid in pids), what="the workers of the killed agent to go")
    text = status(plan.run_dir, capsys)
    assert "state:      RUNNING, attempt 0" in text
    assert f"its agent (pid {agent.pid}) is gone: it was killed" in text
    assert re.search(r"^\s+1  HEALTHY\s+\d+  NO ", text, re.M), text
    text = report(plan.run_dir, capsys)
    assert f"RUNNING, but its agent (pid {agent.pid}) is gone" in text and "still running" not in text
