"""What the agent prints and keeps while a job runs and when it ends: the final report, notes,
output streams, log tails and error files (no processes)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from conftest import failed_result, failure

from runner.record.writer import EventLog
from runner.runtime import final_report as report
from runner.runtime import logs
from runner.runtime.console import Console
from runner.runtime.notes import Notes
from runner.runtime.workers import read_error_file
from runner.state import AttemptResult, JobState, RunResult, WorkerResult, WorkerState


def test_interrupted_summary_names_the_signal() -> None:
    result = RunResult(JobState.INTERRUPTED, 143, [AttemptResult(0, 1, 0.0)], signal=signal.SIGTERM)
    data = result.to_dict()
    assert (data["state"], data["exit_code"], data["signal"], data["root_cause"]) == (
        "INTERRUPTED", 143, "SIGTERM", None)
    assert report.render(result, 2.0) == (
        "erun: interrupted by SIGTERM after 2.0 s; no worker was running; logs in ")
    attempt = AttemptResult(3, 1, 0.0, killed_after_grace=[1])
    attempt.workers = [WorkerResult(r, r, 10 + r, 0.0, 1.0, WorkerState.STOPPED, None) for r in (0, 1)]
    result = RunResult(JobState.INTERRUPTED, 130, [attempt], signal=signal.SIGINT, run_dir="/runs/a")
    assert report.render(result, 2.0) == (
        "erun: interrupted by SIGINT after 2.0 s; stopped rank(s) 0, 1 of attempt 3 "
        "(SIGKILL after the grace: 1); logs in /runs/a")


def test_success_report_is_one_line() -> None:
    attempts = [AttemptResult(0, 1, 0.0), AttemptResult(1, 2, 1.0, restart_count=1)]
    result = RunResult(JobState.SUCCEEDED, 0, attempts,
                       run_dir="/runs/r")
    text = report.render(result, 3.25)
    assert text == "erun: job succeeded in 3.2 s (2 attempts, 1 restart); run dir /runs/r"


def test_failure_report_is_self_contained() -> None:
    text = report.render(failed_result(), 12.0)
    assert "job FAILED after 12.0 s, 2 attempt(s), 1 restart(s)" in text
    assert "root cause: rank 1 (local rank 1), attempt 1: killed by SIGSEGV" in text
    assert "    segfault ahead" in text
    assert "/runs/r/attempt_1/rank_1/stderr.log" in text
    assert "/runs/r/attempt_1/rank_1/stdout.log" in text
    assert "attempt 0 rank 0: exited 2" in text and "attempt 1 rank 0: exited 1" in text
    assert "message:" not in text  # the message only repeats the exit status


def test_failure_report_with_traceback_and_empty_stderr() -> None:
    cause = failure(0, 1.0, 1, message="ValueError: bad", traceback="Traceback...\nValueError: bad\n",
                    error_file="/runs/r/attempt_0/rank_0/error.json")
    text = report.render(RunResult(JobState.FAILED, 1, [AttemptResult(0, 1, 0.0, failures=[cause])],
                                   root_cause=cause), 1.0)
    assert "message:   ValueError: bad" in text
    assert "traceback (from the error file):\n    Traceback...\n    ValueError: bad" in text
    assert "its stderr is empty" in text
    assert "error file: /runs/r/attempt_0/rank_0/error.json" in text


# -- error files, logs, the run directory ----------------------------------------------------


def test_read_error_file_in_torch_record_format(tmp_path: Path) -> None:
    path = tmp_path / "error.json"
    path.write_text(json.dumps({"message": {"message": "ValueError: boom", "extraInfo": {
        "py_callstack": "Traceback (most recent call last):\nValueError: boom\n", "timestamp": "1"}}}))
    traceback = "Traceback (most recent call last):\nValueError: boom\n"
    assert read_error_file(path) == ("ValueError: boom", traceback)
    path.write_text(json.dumps({"message": "plain text"}))
    assert read_error_file(path) == ("plain text", "")
    path.write_text("{not json")
    assert read_error_file(path) == ("", "")
    assert read_error_file(tmp_path / "missing.json") == ("", "")


def test_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "stderr.log"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(50)) + b"bad \xff byte")
    lines = logs.tail(path)
    assert len(lines) == 20
    assert lines[0] == "line 31" and lines[-1] == "bad \ufffd byte"
    assert logs.tail(path, lines=2) == ["line 49", "bad \ufffd byte"]
    assert logs.tail(tmp_path / "missing.log") == []
    (tmp_path / "empty.log").write_bytes(b"")
    assert logs.tail(tmp_path / "empty.log") == []


def test_make_prefix() -> None:
    assert logs.make_prefix("[{rank}]:", 3, 1, "r", 0) == b"[3]: "
    assert logs.make_prefix("{role}/{local_rank}@{attempt} ", 3, 1, "trainer", 2) == b"trainer/1@2 "
    assert logs.make_prefix("", 3, 1, "r", 0) == b""


def test_output_stream_files_every_byte_and_prefixes_whole_lines(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    with open(tmp_path / "console", "w+") as console:
        stream = logs.OutputStream(read_fd, tmp_path / "stdout.log", Console(out=console), b"[1]: ")
        os.write(write_fd, b"one\ntw")
        assert stream.pump()
        os.write(write_fd, b"o\nthree")
        os.close(write_fd)
        assert not stream.pump()  # EOF: closed, the partial line flushed
        assert not stream.open
        console.seek(0)
        assert console.read() == "[1]: one\n[1]: two\n[1]: three\n"
    os.close(read_fd)
    assert (tmp_path / "stdout.log").read_bytes() == b"one\ntwo\nthree"
    assert stream.last_line == b"three"


def test_filtered_copy_takes_matching_console_lines_of_every_stream(tmp_path: Path) -> None:
    """logs.duplicate_filters: the lines with any needle, behind each stream's prefix, split lines
    matched piece by piece, the unterminated last line included; the file is truncated when opened."""
    (tmp_path / "filtered_stdout.log").write_text("an earlier attempt's\n")
    copy = logs.FilteredCopy(tmp_path / "filtered_stdout.log", ("loss", "a,b", "acc"))
    pipes = [os.pipe() for _ in range(2)]
    with open(os.devnull, "w") as null:
        streams = [logs.OutputStream(r, tmp_path / f"{i}.log", Console(out=null), f"[{i}]:".encode(),
                                     copy=copy) for i, (r, _) in enumerate(pipes)]
        for r, _ in pipes:
            os.set_blocking(r, False)
        os.write(pipes[0][1], b"loss 1\nstep 2\na,b\n")
        os.write(pipes[1][1], b"a b\n" + b"x" * logs.LINE_MAX + b"acc\nno acc")
        for stream, (_, w) in zip(streams, pipes, strict=True):
            os.close(w)
            assert not stream.pump()
        copy.close()
    for r, _ in pipes:
        os.close(r)
    lines = (tmp_path / "filtered_stdout.log").read_text().splitlines()
    assert lines == ["[0]:loss 1", "[0]:a,b", "[1]:(cont) acc", "[1]:no acc"]



def test_event_log_notes_reach_the_console_and_the_file(tmp_path: Path) -> None:
    with open(tmp_path / "console", "w+") as console:
        events = EventLog(tmp_path / "events.jsonl")
        events.write("group_state", attempt=0, state="HEALTHY")
        Notes(events, Console(err=console)).note("hello", rank=1)
        events.close()
        console.seek(0)
        assert console.read() == "erun: hello\n"
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(e["event"], e.get("state"), e.get("message")) for e in lines] == [
        ("group_state", "HEALTHY", None), ("note", None, "hello")]
    assert all(isinstance(e["time"], float) for e in lines)

