"""The record survives the disk: a full log filesystem, a run directory deleted while the job
runs, and a run directory that cannot be written at start (real tmpfs mounts, as root)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, Erun, subprocess_env

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")


def mount_tmpfs(folder: Path, options: str) -> None:
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB filesystem of its own, unmounted at the end."""
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "size=2m")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def run_plan(plan_file: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner", "run-plan", str(plan_file)], cwd=REPO,
                          env=subprocess_env(), capture_output=True, text=True, timeout=timeout)


def start_on(erun: Erun, disk: Path, worker: str, *args: object) -> subprocess.CompletedProcess[str]:
    plan = dataclasses.replace(erun.plan(worker, *args, nproc=1), run_dir=str(disk / "run"))
    plan_file = erun.tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    return run_plan(plan_file)


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_a_full_log_disk_never_stops_the_workers_and_the_summary_follows_when_space_returns(
        erun: Erun, small_disk: Path) -> None:
    done = start_on(erun, small_disk, "fill_disk.py", small_disk / "filler", "free", 300_000)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot write the run record" in done.stderr  # said when it starts
    assert "were not written" in done.stderr  # and counted at the end
    summary = json.loads((small_disk / "run" / "summary.json").read_text())
    assert summary["state"] == "SUCCEEDED" and summary["dropped_bytes"] > 0
    assert not leftovers(small_disk)


def test_a_disk_that_stays_full_is_said_in_one_line_and_leaves_no_temporary_file(
        erun: Erun, small_disk: Path) -> None:
    done = start_on(erun, small_disk, "fill_disk.py", small_disk / "filler", "keep", 100_000)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "could not write" in done.stderr and "summary.json" in done.stderr
    assert not leftovers(small_disk)


def test_a_run_directory_deleted_while_the_job_runs_keeps_the_workers_exit_status(erun: Erun) -> None:
    plan = erun.plan("remove_run_dir.py", nproc=1)
    proc = erun.start(plan)
    code, _, err = proc.finish()
    assert code == 0, err
    assert "Traceback" not in err
    assert "is gone" in err


@pytest.mark.parametrize("options", ["ro,size=1m", "size=64k"])
def test_a_run_directory_that_cannot_be_written_at_start_is_one_line_and_exit_2(
        erun: Erun, tmp_path: Path, options: str) -> None:
    disk = tmp_path / "disk"
    mount_tmpfs(disk, options)
    try:
        if "ro" not in options:  # full before the job
            (disk / "filler").write_bytes(b"\0" * (64 * 1024))
        done = start_on(erun, disk, "touch_rank.py", "--touch-file-dir", erun.markers)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "run_dir" in lines[0] and "Traceback" not in done.stderr
    assert not list(erun.markers.iterdir())  # no worker started


def test_a_read_only_run_directory_under_hydra_is_one_line_and_exit_2(tmp_path: Path) -> None:
    from erun_cli import erun as erun_cli

    disk = tmp_path / "disk"
    mount_tmpfs(disk, "ro,size=1m")
    try:
        (tmp_path / "j.yaml").write_text("exec: /bin/true\n")
        done = erun_cli(["+job=j.yaml", f"hydra.run.dir={disk}/run"], tmp_path)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "hydra.run.dir" in done.stderr
