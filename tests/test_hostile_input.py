"""Hostile and careless input through the real command line: non-finite and huge numbers, more
workers than the machine holds, YAML alias bombs, job files that are not UTF-8, call targets
that are no function. Each is one line on stderr, exit 2, nothing started. And erun raises its
own open-file soft limit to the hard one (workers keep theirs), so 200 workers run under
`ulimit -Sn 256`."""

from __future__ import annotations

import math
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import subprocess_env
from erun_cli import erun
from test_cli_errors import JOB, WORKER, assert_rejected

from runner.errors import ConfigError
from runner.plan import RestartPlan

pytestmark = pytest.mark.usefixtures("no_survivors")

# 334 bytes that expand to 9**8 (43 million) strings.
BOMB = "entrypoint: train.py\nparams:\n  a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  {n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefg", "bcdefgh", strict=True))
MODULE = 'SEP = "/"\nLR = 0.1\n\ndef main(lr=0.1):\n    print(lr)\n'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(WORKER)
    (tmp_path / "train.yaml").write_text(JOB)
    (tmp_path / "mymod.py").write_text(MODULE)
    (tmp_path / "bomb.yaml").write_text(BOMB)
    (tmp_path / "loop.yaml").write_text("entrypoint: train.py\nparams:\n  a: &a [1, *a]\n")
    (tmp_path / "latin1.yaml").write_bytes("entrypoint: train.py\nname: caf\u00e9\n".encode("latin-1"))
    return tmp_path


CASES = [
    (["restart.stop_grace_s=inf"], "`restart.stop_grace_s` is inf, not a finite number"),
    (["restart.stop_grace_s=nan"], "`restart.stop_grace_s` is nan, not a finite number"),
    (["restart.crash_loop_window_s=-inf"], "`restart.crash_loop_window_s` is -inf"),
    (["health.heartbeat_timeout_s=nan"], "`health.heartbeat_timeout_s` is nan"),
    (["restart.max_restarts=100000000000000000000000"],
     "`restart.max_restarts` is 100000000000000000000000, too large"),
    (["nproc=1000000000"], "`nproc` is 1000000000, more than this machine can run"),
    (["nproc=1000000000", "--dry-run"], "`nproc` is 1000000000, more than this machine can run"),
    (["entrypoint=null", "call=os:sep"], "`call` is os:sep, a str, not a function"),
    (["entrypoint=null", "call=os:nope"], "`call` is os:nope, but nope does not exist there"),
    (["entrypoint=null", "call=mymod:mian"], "mymod.py defines no mian; did you mean `main`?"),
    (["entrypoint=null", "call=mymod:LR"], "LR is a float in mymod.py, not a function"),
    (["+job=bomb.yaml"], "bomb.yaml: expands to more than 100000 values through its aliases"),
    (["+job=bomb.yaml", "--dry-run"], "bomb.yaml: expands to more than 100000 values"),
    (["+job=loop.yaml"], "loop.yaml: has an alias inside the node it refers to"),
    (["+job=latin1.yaml"], "latin1.yaml: is not UTF-8 text (byte 0xe9 on line 2)"),
]


@pytest.mark.parametrize("args,text", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_hostile_input_is_one_line_and_starts_nothing(project: Path, args: list[str], text: str) -> None:
    assert text in assert_rejected(project, args)


@pytest.mark.parametrize("args", [["params.x=inf"], ["entrypoint=null", "call=mymod:main"],
                                  ["entrypoint=null", "call=os:getcwd"],
                                  ["entrypoint=null", "call=os.path:join"]])
def test_what_is_fine_stays_fine(project: Path, args: list[str]) -> None:
    result = erun(["+job=train.yaml", *args, "--dry-run"], project)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_a_hand_written_plan_with_non_finite_seconds_is_refused(value: float) -> None:
    with pytest.raises(ConfigError, match="not a finite number"):
        RestartPlan(stop_grace_s=value)


def test_two_hundred_workers_run_under_ulimit_n_256_and_keep_their_limit(tmp_path: Path) -> None:
    job = tmp_path / "many.yaml"
    job.write_text("exec: /bin/sh\nnproc: 200\nlogs:\n  console: false\n"
                   "args: ['-c', 'ulimit -n > \"$ERUN_RUN_DIR/nofile_$RANK\"']\n")
    # The soft limit, as a login shell or systemd sets it (the hard limit stays higher).
    command = f"ulimit -Sn 256 && exec {sys.executable} -m runner +job=many.yaml"
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=subprocess_env(),
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    limits = [p.read_text().strip() for p in tmp_path.glob("outputs/*/*/nofile_*")]
    assert len(limits) == 200 and set(limits) == {"256"}


def _hard_nofile_256() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_200_workers_run_under_a_hard_limit_of_256_writing_their_own_logs(tmp_path: Path) -> None:
    """No room for pipes (five descriptors a worker): each rank appends to its own log files, the
    agent holds only its pidfd, says so once, and the record is complete (torchrun runs 200 too)."""
    argv = [sys.executable, "-m", "runner", "torchrun", "--nproc-per-node=200", "--log-dir", "logs",
            "--no-python", "sh", "-c", 'echo "out $RANK"; echo "err $RANK" >&2']
    result = subprocess.run(argv, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True,
                            timeout=240, preexec_fn=_hard_nofile_256)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.count("erun: the open-file limit (256) holds no pipes for 200 workers") == 1
    assert "out " not in result.stdout
    ranks = sorted(tmp_path.glob("logs/*/attempt_0/*"), key=lambda p: int(p.name))
    assert len(ranks) == 200
    assert all((r / "stdout.log").read_text() == f"out {r.name}\n" and
               (r / "stderr.log").read_text() == f"err {r.name}\n" for r in ranks)


def test_more_workers_than_the_hard_open_file_limit_allows_are_refused_up_front(project: Path) -> None:
    command = f"ulimit -n 256 && exec {sys.executable} -m runner +job=train.yaml nproc=300"
    result = subprocess.run(["bash", "-c", command], cwd=project, env=subprocess_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("erun: error: command line: `nproc` is 300, more than this machine")
    assert "the open-file limit is 256" in result.stderr and not (project / "STARTED").exists()
