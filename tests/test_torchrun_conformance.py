"""The cases of torch's own launcher tests (test/distributed/launcher/test_run.py), written
anew, run under torchrun 2.13 and under `erun torchrun` with the same arguments: the same exit
status class and the same files from the same ranks. Real launchers, real workers."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import WORKERS, subprocess_env

pytestmark = pytest.mark.usefixtures("no_survivors", "private_tmpdir")

PY, SH = str(WORKERS / "touch_rank.py"), str(WORKERS / "touch_rank.sh")
LAUNCHERS = {"torchrun": [sys.executable, "-m", "torch.distributed.run"],
             "erun": [sys.executable, "-m", "runner", "torchrun"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])


def run_id() -> str:
    return str(uuid.uuid4().int)


# Each case: (launcher arguments, given the touch dir; extra environment; expected ranks or None: fails)
Case = tuple[Callable[[str], list[str]], dict[str, str], int | None]
COMMON = ["--monitor-interval=1", "--start-method=spawn"]
CASES: dict[str, Case] = {
    "python script": (lambda d: ["--nnodes=1", "--nproc-per-node=4", f"--rdzv-id={run_id()}", *COMMON, PY,
                                 f"--touch-file-dir={d}"], {}, 4),
    "caffe2 flags": (lambda d: ["--nnodes=1", "--nproc-per-node=4", *COMMON, "--master-addr=localhost",
                                f"--master-port={free_port()}", "--node-rank=0", PY, f"--touch-file-dir={d}"],
                     {}, 4),
    "no python": (lambda d: ["--nnodes=1", "--nproc-per-node=4", f"--rdzv-id={run_id()}", *COMMON,
                             "--no-python", SH, d], {}, 4),
    "no python and module": (lambda d: ["--nnodes=1", "--nproc-per-node=4", *COMMON, "--no-python",
                                        "--module", SH, d], {}, None),
    "default nproc": (lambda d: ["--nnodes=1", f"--rdzv-id={run_id()}", *COMMON, "--no-python", SH, d],
                      {}, 1),
    "PET variables": (lambda d: [SH, d], {"PET_NNODES": "1", "PET_NPROC_PER_NODE": "4", "PET_NO_PYTHON": "1",
                                          "PET_MONITOR_INTERVAL": "1", "PET_START_METHOD": "spawn",
                                          "PET_MODULE": "0"}, 4),
    "PET module and no python": (lambda d: [SH, d], {"PET_NPROC_PER_NODE": "2", "PET_NO_PYTHON": "1",
                                                     "PET_MODULE": "1"}, None),
    "unknown nproc": (lambda d: ["--nnodes=1", "--nproc-per-node=unknown", *COMMON, "--no-python", SH, d], {},
                      None),
    "elastic, quoted rdzv-conf": (lambda d: [
        "--nnodes=1:2", "--nproc-per-node=2", "--rdzv-backend=c10d",
        f"--rdzv-endpoint=localhost:{free_port()}",
        "--rdzv-conf='join_timeout=5,last_call_timeout=1,timeout=5'", f"--rdzv-id={run_id()}", *COMMON, PY,
        f"--touch-file-dir={d}"], {}, 2),
    "worker fails": (lambda d: ["--nnodes=1", "--nproc-per-node=2", "--max-restarts=0", *COMMON, PY, "--fail",
                                f"--touch-file-dir={d}"], {}, None),
    "standalone": (lambda d: ["--nnodes=1", "--nproc-per-node=4", "--standalone", *COMMON, PY,
                              f"--touch-file-dir={d}"], {}, 4),
    "run path": (lambda d: ["--run-path", "--nnodes=1", "--nproc-per-node=2", *COMMON, PY,
                            f"--touch-file-dir={d}"], {}, 2),
}


def launch(launcher: str, case: Case, folder: Path) -> tuple[int, dict[str, str], str]:
    """Run one case; the exit status, DIR's files (rank -> content) and stderr."""
    argv, env, _ = case
    touched = folder / launcher
    touched.mkdir()
    environ = {k: v for k, v in subprocess_env({"CONFORMANCE_SENTINEL": "parent", **env}).items()
               if not k.startswith("PET_") or k in env}  # only the case's own PET_ variables
    done = subprocess.run([*LAUNCHERS[launcher], *argv(str(touched))], cwd=folder, capture_output=True,
                          text=True, timeout=180, env=environ)
    return done.returncode, {p.name: p.read_text().strip() for p in touched.iterdir()}, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_a_torch_launcher_case_gives_the_same_outcome_under_both(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    theirs, ours = (launch(launcher, case, tmp_path) for launcher in ("torchrun", "erun"))
    ranks = case[2]
    if ranks is None:  # refused (torchrun: a Python traceback, exit 1; erun: one line, exit 2) or failed
        assert theirs[0] != 0 and ours[0] != 0 and not ours[1], (theirs[2][-500:], ours[2])
        if name == "worker fails":  # a failed job: the same status, 1
            assert theirs[0] == ours[0] == 1
        else:  # a refused command line: one line naming the problem
            assert ours[0] == 2 and ours[2].count("\n") == 1 and "Traceback" not in ours[2], ours[2]
        return
    assert (theirs[0], ours[0]) == (0, 0), (theirs[2][-2000:], ours[2][-2000:])
    assert ours[1] == theirs[1] == {str(r): f"{r} {ranks}" for r in range(ranks)}


# -- the console: which stream shows which worker lines, behind which prefix --------------------

WORKER_LINE = re.compile(r"^(.*)(out|err) (\d)$")


def worker_lines(text: str) -> list[str]:
    """The worker lines of one console stream (the launchers' own notes and logs left out)."""
    return sorted(line for line in text.splitlines() if WORKER_LINE.match(line))


@pytest.mark.parametrize("flags", [
    ["--tee", "1"], ["--tee", "2"], ["--redirects", "1"], ["-r", "2", "--tee", "1"],
    ["--log-dir", "{logs}", "-r", "3", "--tee", "2"],
], ids=lambda f: " ".join(f).replace("{logs}", "D"))
def test_the_console_shows_each_stream_as_torchrun_does(tmp_path: Path, flags: list[str]) -> None:
    """torch 2.13: a teed stream is tailed to the same stream behind `[default0]:`, a redirected
    one only to its file, any other reaches the console as written."""
    consoles = {}
    for launcher in LAUNCHERS:
        argv = [a.replace("{logs}", str(tmp_path / f"logs-{launcher}")) for a in flags]
        script = str(WORKERS / "both_streams.py")
        done = subprocess.run([*LAUNCHERS[launcher], "--nproc-per-node=2", *argv, script], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, env=subprocess_env())
        assert done.returncode == 0, done.stderr[-2000:]
        consoles[launcher] = (worker_lines(done.stdout), worker_lines(done.stderr))
    assert consoles["erun"] == consoles["torchrun"]
    assert any(consoles["torchrun"])  # each case shows some lines: two empty consoles would prove nothing


def test_duplicate_filters_write_torchruns_filtered_files(tmp_path: Path) -> None:
    """torch 2.13: with --log-dir, attempt_N/filtered_stdout.log (and _stderr) hold the lines of
    the teed ranks that contain any filter (`,,` a comma), behind the console prefix; a stream
    given filters but not teed gets an empty file; --local-ranks-filter leaves a rank out."""
    flags = ["--nproc-per-node=3", "--tee", "1", "--local-ranks-filter=0,2", "--duplicate-stdout-filters",
             "out 0,,x,out 2,out 1", "--duplicate-stderr-filters", "err"]
    filtered = {}
    for launcher in LAUNCHERS:
        log_dir = tmp_path / f"logs-{launcher}"
        argv = [*LAUNCHERS[launcher], *flags, "--log-dir", str(log_dir), str(WORKERS / "both_streams.py")]
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              env=subprocess_env())
        assert done.returncode == 0, done.stderr[-2000:]
        (attempt,) = log_dir.glob("*/attempt_0")
        filtered[launcher] = {p.name: sorted(p.read_text().splitlines()) for p in attempt.glob("filtered_*")}
    assert filtered["erun"] == filtered["torchrun"]
    # not vacuous: rank 2's line matched `out 2`, `out 0,x` matched nothing, rank 1 is filtered out
    assert filtered["torchrun"] == {"filtered_stdout.log": ["[default2]:out 2"], "filtered_stderr.log": []}
