"""Hydra's staging folder (erun-conf-*) never outlives erun: SIGTERM at start-up removes it, and
after a SIGKILL the next erun does; real erun processes with a temporary folder of their own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, subprocess_env, wait_for
from erun_cli import erun

from runner.config.staging import remove_stale, staging_dir


def staged(tmpdir: Path) -> list[Path]:
    return sorted(tmpdir.glob("erun-conf-*"))


COMMANDS = {"job": ["+job=j.yaml", "--dry-run"],
            "torchrun": ["torchrun", "--nproc-per-node=1", "--no-python", "true"]}


def start_erun(job_dir: Path, tmpdir: Path, command: str = "job") -> subprocess.Popen[str]:
    (job_dir / "j.yaml").write_text("exec: /bin/true\n")
    return subprocess.Popen([sys.executable, "-m", "runner", *COMMANDS[command]], cwd=job_dir,
                            env=subprocess_env({"TMPDIR": str(tmpdir), "PYTHONPATH": str(REPO)}),
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_at_start_up_leaves_no_staging_folder(
        tmp_path: Path, signum: int, command: str) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = start_erun(tmp_path, tmpdir, command)
    wait_for(lambda: staged(tmpdir) or proc.poll() is not None, what="the staging folder")
    proc.send_signal(signum)
    proc.communicate(timeout=60)
    assert proc.returncode in (0, 128 + signum)  # 0: it was done before the signal came
    assert staged(tmpdir) == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_staging_folder_of_a_killed_erun_is_removed_by_the_next_one(tmp_path: Path, command: str) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = start_erun(tmp_path, tmpdir, command)
    wait_for(lambda: any((p / ".erun.lock").exists() for p in staged(tmpdir)), what="the staging folder")
    proc.kill()
    proc.communicate(timeout=60)
    assert staged(tmpdir)  # SIGKILL: nothing could run
    done = erun(["+job=j.yaml", "--dry-run"], tmp_path, env={"TMPDIR": str(tmpdir)})
    assert done.returncode == 0, done.stderr
    assert staged(tmpdir) == []


def test_only_abandoned_staging_folders_are_removed(tmp_path: Path) -> None:
    foreign = tmp_path / "erun-conf-not-ours"  # no lock: not known to be erun's
    foreign.mkdir()
    with staging_dir(tmp_path) as live:
        remove_stale(tmp_path)  # another erun starting now
        assert live.is_dir() and foreign.is_dir()
    assert not live.exists() and foreign.is_dir()
    assert os.listdir(tmp_path) == [foreign.name]
