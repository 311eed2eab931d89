"""The console: a live status panel on a terminal, plain prefixed lines anywhere else.

A real pseudo terminal and a real pipe, with an agent subprocess each."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, Erun, read_summary, subprocess_env

from runner.plan import LogsPlan
from runner.runtime.console import Console, wants_panel

pytestmark = pytest.mark.usefixtures("no_survivors")


def run_in_pty(plan_file: Path, timeout: float = 60.0) -> tuple[int, bytes]:
    """Run `python -m runner run-plan` with its stdout and stderr on a new pseudo terminal."""
    leader, follower = pty.openpty()
    env = subprocess_env({"TERM": "xterm", "COLUMNS": "120"})
    proc = subprocess.Popen([sys.executable, "-m", "runner", "run-plan", str(plan_file)], cwd=REPO, env=env,
                            stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    return proc.wait(timeout=10), out


def test_terminal_gets_a_live_panel_with_output_above_it(erun: Erun) -> None:
    plan = erun.plan("talk.py", 6, 0.3)
    plan_file = erun.tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    code, out = run_in_pty(plan_file)
    text = out.decode(errors="replace")
    assert code == 0
    assert "── erun ── attempt 0" in text
    assert "rank" in text and "last output" in text and "HEALTHY" in text
    assert "\x1b[4F\x1b[J" in text  # the panel (header, columns, 2 ranks) is erased before output
    assert "[1]: line 5 of rank 1" in text
    # The panel is gone at the end: the last thing on screen is the summary line.
    erase = "\x1b[4F\x1b[J"
    last = text.rstrip().splitlines()[-1]
    assert last.startswith(erase) and last.removeprefix(erase).startswith("erun: job succeeded")
    assert read_summary(Path(plan.run_dir))["state"] == "SUCCEEDED"


def test_pipe_gets_plain_lines_and_no_control_codes(erun: Erun) -> None:
    agent = erun.start(erun.plan("talk.py", 3, 0.3))
    code, out, err = agent.finish()
    assert code == 0
    assert "\x1b" not in out + err
    assert "[0]: line 2 of rank 0" in out


def test_panel_can_be_forced_off_on_a_terminal(erun: Erun) -> None:
    plan = erun.plan("talk.py", 2, 0.3, logs=LogsPlan(panel="off"))
    plan_file = erun.tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    code, out = run_in_pty(plan_file)
    assert code == 0
    assert b"\x1b" not in out and b"[0]: line 1 of rank 0" in out


def test_panel_choice() -> None:
    with open(os.devnull, "w") as devnull:
        assert not wants_panel("auto", devnull)
        assert wants_panel("on", devnull)
        assert not wants_panel("off", devnull)


def test_console_survives_a_closed_stream(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    with os.fdopen(write_fd, "w") as closed, open(tmp_path / "err", "w+") as err:
        console = Console(out=closed, err=err)
        console.write("stdout", b"lost\n")  # EPIPE: dropped, not raised
        console.write("stdout", b"lost again\n")
        console.note("still here")
        err.seek(0)
        assert err.read() == "erun: still here\n"
