"""runner.launch with real processes: a `__main__` function on 2 gloo ranks, failures with
their traceback, bad input refused before any worker starts, Ctrl-C, no survivors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    RUN_TIMEOUT_S,
    WORKERS,
    ctrl_c,
    read_summary,
    start_as_from_a_terminal,
    subprocess_env,
    wait_for,
)

import runner
from runner.errors import ConfigError

SCRIPT = WORKERS / "launch_script.py"


def run_script(mode: str, cwd: Path) -> tuple[dict[str, Any], str, str]:
    proc = subprocess.run([sys.executable, str(SCRIPT), mode], cwd=cwd, env=subprocess_env(),
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in reversed(proc.stdout.splitlines()) if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):]), proc.stdout, proc.stderr


def test_main_function_on_two_gloo_ranks_returns_every_rank(tmp_path: Path, no_survivors: str) -> None:
    result, out, err = run_script("gloo", tmp_path)
    assert result["state"] == "SUCCEEDED"
    assert result["return_values"] == {"0": {"rank": 0, "world_size": 2, "sum": 7.0},
                                       "1": {"rank": 1, "world_size": 2, "sum": 7.0}}
    # Printed as it came, one prefix per rank, no escape codes (no live panel).
    assert "[0]: rank 0 of 2: sum 3.0" in out and "[1]: rank 1 of 2: sum 3.0" in out
    assert "\x1b" not in out + err
    assert read_summary(Path(result["run_dir"]))["state"] == "SUCCEEDED"


def test_compat_elastic_launch_returns_rank_values(tmp_path: Path, no_survivors: str) -> None:
    result, _, _ = run_script("compat", tmp_path)
    assert result["return_values"] == {"0": {"rank": 0, "world_size": 2, "sum": 9.0},
                                       "1": {"rank": 1, "world_size": 2, "sum": 9.0}}


def fail_on_rank_1() -> int:
    if os.environ["RANK"] == "1":
        # Only once rank 0's value is delivered (written atomically): else rank 0 may still be
        # unpacking its call when the failure stops it, and the result rightly has no value.
        from runner.api.shipping import LaunchFolder

        delivered = LaunchFolder(Path(sys.argv[2])).return_file(0, 0)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not delivered.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        raise ValueError("rank 1 is unhappy")
    return 0


def test_failing_rank_raises_the_report_with_its_exception_and_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_survivors: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(runner.JobFailedError) as caught:
        runner.launch(fail_on_rank_1, nproc=2)
    error = caught.value
    assert error.rank == 1
    assert isinstance(error.exception, ValueError) and str(error.exception) == "rank 1 is unhappy"
    assert "fail_on_rank_1" in error.traceback and "ValueError: rank 1 is unhappy" in error.traceback
    assert "erun: job FAILED" in str(error) and "root cause: rank 1" in str(error)
    assert error.result.state == "FAILED" and error.result.return_values == {0: 0}


def return_a_lock() -> object:
    return threading.Lock()


def test_a_return_value_that_cannot_be_pickled_names_rank_and_type(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_survivors: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(runner.JobFailedError) as caught:
        runner.launch(return_a_lock, nproc=1)
    assert isinstance(caught.value.exception, TypeError)
    assert "rank 0 returned a _thread.lock, which cannot be pickled" in str(caught.value.exception)


def touch_marker(path: str) -> None:
    Path(path).write_text("started")


LOCK = threading.Lock()


@pytest.mark.parametrize(("call", "key"), [
    (lambda marker: runner.launch(lambda: (LOCK, touch_marker(marker)), nproc=2), "fn"),
    (lambda marker: runner.launch(touch_marker, marker, nproc=2, restart={"max_restartz": 1}),
     "restart.max_restartz"),
    (lambda marker: runner.launch(touch_marker, marker, nproc=2, bogus_key=1), "bogus_key"),
    (lambda marker: runner.launch(touch_marker, marker, nproc=0), "nproc"),
    (lambda marker: runner.launch(touch_marker, marker, nproc=2, entrypoint="x.py"), "entrypoint"),
], ids=["lambda-closing-over-a-lock", "unknown-nested-key", "unknown-key", "nproc-0", "reserved-key"])
def test_bad_input_is_a_config_error_before_any_worker_starts(
        call: Any, key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_survivors: str) -> None:
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "started"
    with pytest.raises(ConfigError) as caught:
        call(str(marker))
    assert caught.value.key == key and caught.value.fix
    assert caught.value.one_line().startswith("erun: error: runner.launch(): ")
    assert not marker.exists()
    assert not list(tmp_path.glob("outputs/*/*/attempt_*"))


def test_the_same_mistake_gives_the_same_error_as_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          no_survivors: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as from_python:
        runner.launch(touch_marker, "m", nproc=2, health={"stall_timeout_s": -1})
    (tmp_path / "job.yaml").write_text("module: json.tool\nnproc: 2\n")
    cli = subprocess.run([sys.executable, "-m", "runner", "+job=job.yaml", "health.stall_timeout_s=-1"],
                         cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True,
                         timeout=RUN_TIMEOUT_S)
    assert cli.returncode == 2
    problem = f"`{from_python.value.key}` {from_python.value.problem}; {from_python.value.fix}"
    assert problem in cli.stderr


# The agent's note once the caller's pump has passed the Ctrl-C on (runner.runtime.agent).
FORWARDED = "erun: received SIGINT; stopping 2 workers"


def test_ctrl_c_stops_every_worker(tmp_path: Path, no_survivors: str) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    argv = [sys.executable, str(SCRIPT), "hang", str(markers)]
    ended = ctrl_c(argv, tmp_path, lambda: len(list(markers.glob("ready_*"))) == 2, "both ranks ready")
    assert ended.returncode == 0, ended.stderr
    assert FORWARDED in ended.stderr
    assert read_summary(tmp_path / "hang_run")["state"] == "INTERRUPTED"


def test_ctrl_c_handled_in_another_thread_stops_every_worker(tmp_path: Path, no_survivors: str) -> None:
    """Python's handler runs in another thread, so the main thread's select is not interrupted
    (no EINTR), as when a Ctrl-C lands just before the pump enters select (the rare hang of
    the test above): the pump must wake all the same and pass it on."""
    markers = tmp_path / "markers"
    markers.mkdir()
    proc = start_as_from_a_terminal([sys.executable, str(SCRIPT), "hang_thread", str(markers)], tmp_path,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(list(markers.glob("ready_*"))) == 2, what="both ranks ready")
        out, err = proc.communicate("interrupt\n", timeout=30)  # the workers sleep 60 s
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err
    assert FORWARDED in err
    assert json.loads(out.splitlines()[-1][len("RESULT "):])["interrupted"] is True
    assert read_summary(tmp_path / "hang_run")["state"] == "INTERRUPTED"


def fail_once_on_rank_1() -> tuple[int, str]:
    restart = os.environ["TORCHELASTIC_RESTART_COUNT"]
    if os.environ["RANK"] == "1" and restart == "0":
        raise RuntimeError("first attempt only")
    return int(os.environ["RANK"]), restart


def test_after_a_restart_the_last_attempts_values_come_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_survivors: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.launch(fail_once_on_rank_1, nproc=2, restart={"max_restarts": 1}, run_dir="again")
    assert result.succeeded and result.run_dir == tmp_path / "again"
    assert result.return_values == {0: (0, "1"), 1: (1, "1")}
    assert [f["rank"] for f in result.failures] == [1]


def die_by_sigkill() -> None:
    os.kill(os.getpid(), 9)


def test_a_rank_killed_by_a_signal_has_no_exception(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     no_survivors: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(runner.JobFailedError) as caught:
        runner.launch(die_by_sigkill, nproc=1)
    assert caught.value.exception is None and caught.value.rank == 0
    assert "SIGKILL" in str(caught.value)
