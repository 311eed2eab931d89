"""`erun torchrun ...`: torchrun's flags run by erun's agent, and `--print-config` round trips."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, WORKERS, subprocess_env
from erun_cli import erun
from torchrun_env import BY_DESIGN, PER_LAUNCH, load_envs, torchrun_argv

from runner.errors import ConfigError
from runner.torchrun import parser, render, to_job

pytestmark = pytest.mark.usefixtures("no_survivors", "private_tmpdir")

FLAGS = ["--nproc-per-node", "2", "--max-restarts", "1", "--role", "trainer"]


def job_for(*argv: str) -> dict[str, Any]:
    return to_job(parser().parse_args(list(argv)))


@pytest.mark.parametrize(("flags", "visible"), [
    ([], None),
    # torch 2.13: LOCAL_RANK=0 for all, CUDA_VISIBLE_DEVICES = the rank's entry of the agent's (stripped)
    (["--virtual-local-rank"], "3, 5"),
], ids=["plain", "virtual-local-rank"])
def test_same_worker_environment_as_real_torchrun(flags: list[str], visible: str | None, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    if visible is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    theirs, ours = tmp_path / "torchrun", tmp_path / "erun"
    theirs.mkdir()
    ours.mkdir()
    script = str(WORKERS / "dump_env.py")
    env = subprocess_env()
    done = subprocess.run([*torchrun_argv(), *FLAGS, *flags, script, str(theirs)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = erun(["torchrun", *FLAGS, *flags, script, str(ours)], tmp_path)
    assert result.returncode == 0, result.stderr
    if flags:
        assert [e["LOCAL_RANK"] for e in load_envs(theirs, 2)] == ["0", "0"]
        assert [e["CUDA_VISIBLE_DEVICES"] for e in load_envs(theirs, 2)] == ["3", "5"]
    for rank, (t, o) in enumerate(zip(load_envs(theirs, 2), load_envs(ours, 2), strict=True)):
        erun_own = {k for k in o if k.startswith("ERUN_")} - set(t)
        assert set(o) - erun_own == set(t), f"rank {rank}"
        same = set(t) - PER_LAUNCH - BY_DESIGN
        assert {k: o[k] for k in same} == {k: t[k] for k in same}, f"rank {rank}"
        assert (o["ROLE_NAME"], o["TORCHELASTIC_MAX_RESTARTS"]) == ("trainer", "1")


def plan_of(args: list[str], cwd: Path) -> dict[str, Any]:
    result = erun([*args, "--dry-run=json"] if args[0] != "torchrun" else
                  ["torchrun", "--dry-run=json", *args[1:]], cwd)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    for varying in ("run_dir", "run_id", "config_file"):
        plan.pop(varying)
    return plan


@pytest.mark.parametrize("extra", [
    [],
    ["--local-ranks-filter", "1", "-r", "3", "-t", "1"],
    ["--nnodes", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:29400", "--rdzv-id", "j1",
     "--rdzv-conf", "join_timeout=30,last_call_timeout=2"],
])
def test_print_config_round_trips_to_the_same_plan(tmp_path: Path, extra: list[str]) -> None:
    (tmp_path / "train.py").write_text("print('hi')\n")
    argv = [*FLAGS, *extra, "train.py", "--lr", "1e-3", "true", "${x}", "it's"]
    printed = erun(["torchrun", "--print-config", *argv], tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("# erun job file, from: erun torchrun --nproc-per-node 2")
    (tmp_path / "printed.yaml").write_text(printed.stdout)
    direct = plan_of(["torchrun", *argv], tmp_path)
    assert direct == plan_of(["+job=printed.yaml"], tmp_path)
    assert direct["entrypoint"]["args"] == ["--lr", "1e-3", "true", "${x}", "it's"]  # literally
    assert (direct["nproc"], direct["role"], direct["restart"]["max_restarts"]) == (2, "trainer", 1)


def test_a_torchrun_command_runs_to_success(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("import os; print('rank', os.environ['RANK'])\n")
    result = erun(["torchrun", "--nproc_per_node=2", "--monitor-interval", "5", "train.py"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == ["rank 0", "rank 1"]  # raw, as torchrun prints them
    assert "erun: note: --monitor-interval ignored (erun notices a worker's exit at once)" in result.stderr


@pytest.mark.parametrize(("flags", "template", "lines"), [
    (["--tee", "3"], None, ["[default0]:rank 0", "[default1]:rank 1"]),  # torchrun's, no space
    (["-t", "1"], "[${rank}/${role_name}] ${unknown}", ["[0/default] ${unknown}rank 0",
                                                          "[1/default] ${unknown}rank 1"]),
    (["--redirects", "3", "--tee", "3"], "{${local_rank}}", ["{0}rank 0", "{1}rank 1"]),
])
def test_teed_lines_carry_torchrun_s_prefix(tmp_path: Path, flags: list[str], template: str | None,
                                            lines: list[str]) -> None:
    (tmp_path / "train.py").write_text("import os; print('rank', os.environ['RANK'])\n")
    env = {} if template is None else {"TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE": template}
    result = erun(["torchrun", "--nproc-per-node=2", *flags, "train.py"], tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == lines


def test_flag_mapping() -> None:
    assert job_for("--standalone", "--nproc-per-node", "gpu", "-m", "pkg.train", "--x") == {
        "name": "pkg", "module": "pkg.train", "args": ["--x"], "nproc": "gpu", "logs": {"prefix": ""}}
    assert job_for("--no-python", "--nproc-per-node", "3", "/bin/true")["exec"] == "/bin/true"
    static = job_for("--nnodes", "2", "--node-rank", "1", "--master-addr", "node0", "t.py")
    assert static["rdzv"] == {"backend": "static", "endpoint": "node0:29500", "id": "none"}
    assert (static["nnodes"], static["node_rank"]) == (2, 1)
    elastic = job_for("--nnodes", "1:4", "--rdzv-backend", "c10d", "--rdzv-endpoint", "h:1234", "t.py")
    assert (elastic["nnodes"], elastic["rdzv"]["endpoint"]) == ("1:4", "h:1234")
    assert job_for("--redirects", "3", "t.py")["logs"] == {"stdout": "file", "stderr": "file", "prefix": ""}
    assert job_for("-r", "2", "--tee", "1", "t.py")["logs"] == {  # per stream, as torchrun
        "stderr": "file", "prefix": "[{role}{local_rank}]:", "prefix_space": False}
    assert job_for("--redirects", "3", "--tee", "3", "t.py")["logs"] == {  # teed: on the console, as torchrun
        "prefix": "[{role}{local_rank}]:", "prefix_space": False}
    assert job_for("--log-dir", "logs", "t.py")["hydra"]["run"]["dir"].startswith("logs/none_${now:")
    assert job_for("--log-dir", "logs", "t.py")["logs"]["layout"] == "torchrun"
    assert "'1e-3'" in render(job_for("t.py", "1e-3"))


@pytest.mark.parametrize("argv,text", [
    (["--bogus", "t.py"], "unrecognized arguments: --bogus"),
    ([], "required: training_script"),
    (["--tee", "9", "t.py"], "`--tee` is `9`"),
    (["--rdzv-conf", "nokey", "--nnodes", "2", "t.py"], "`--rdzv-conf` has `nokey`"),
    (["--local-ranks-filter", "a,b", "t.py"], "`--local-ranks-filter` is `a,b`"),
    (["-m", "--no-python", "t"], "`--module` and --no-python are both set"),
])
def test_bad_flags_are_one_line(tmp_path: Path, argv: list[str], text: str) -> None:
    with pytest.raises(ConfigError) as info:
        job_for(*argv)
    assert text in info.value.one_line()
    result = erun(["torchrun", *argv], tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
