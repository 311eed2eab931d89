"""Bad input on the real command line: each gets exit status 2, one line on stderr that names
the key (and the file it came from, where known), no traceback, and no worker started."""

from __future__ import annotations

from pathlib import Path

import pytest
from erun_cli import erun

pytestmark = pytest.mark.usefixtures("no_survivors")

# The worker leaves a marker: if it exists, erun started something it should not have.
WORKER = "import pathlib; pathlib.Path('STARTED').touch()\n"
JOB = "entrypoint: train.py\nnproc: 2\nparams:\n  lr: 0.1\n"
FILES = {
    "nporc.yaml": "entrypoint: train.py\nnporc: 2\n",
    "badtype.yaml": "entrypoint: train.py\nrestart:\n  max_restarts: lots\n",
    "broken.yaml": "entrypoint: train.py\nnproc: [2\n",
    "listjob.yaml": "- entrypoint: train.py\n",
}

# (command line after `+job=train.yaml` unless it names its own job, expected key, expected text)
CASES = [
    (["nprc=2"], "nprc", "did you mean `nproc`?"),
    (["restart.max_restart=3"], "restart.max_restart", "did you mean `restart.max_restarts`?"),
    (["restart=nevr"], "restart", "did you mean `never`?"),
    (["rdzv=c10"], "rdzv", "did you mean `c10d`?"),
    (["+restart=never"], "restart", "no +"),
    (["restart.max_restarts=abc"], "restart.max_restarts", "not a whole number"),
    (["restart.max_restarts=-1"], "restart.max_restarts", "is -1"),
    (["restart.stop_grace_s=-5"], "restart.stop_grace_s", "is -5"),
    (["nproc=0"], "nproc", "is 0"),
    (["nproc=many"], "nproc", "cpu, gpu or auto"),
    (["nproc=gpu"], "nproc", "no CUDA device is visible"),
    (["nproc=["], "nproc", "cannot be parsed"),
    (["nnodes=3:2"], "nnodes", "1 <= MIN <= MAX"),
    (["nnodes=two"], "nnodes", "N or MIN:MAX"),
    (["nnodes=2"], "rdzv.endpoint", "c10d, the multi-node default"),
    (["rdzv.backend=c10"], "rdzv.backend", "did you mean `c10d`?"),
    (["rdzv=c10d", "nnodes=2", "rdzv.endpoint=node0:99999"], "rdzv.endpoint", "1 to 65535"),
    (["rdzv=c10d", "rdzv.endpoint=''"], "rdzv.endpoint", "is empty"),
    (["rdzv=c10d", "rdzv.settings.join_timeout=-1"], "rdzv.settings.join_timeout", "0 or more"),
    (["rdzv=static", "nnodes=2"], "node_rank", "node_rank=0 .. 1"),
    (["rdzv=static", "nnodes=1:2", "node_rank=0"], "nnodes", "not elastic"),
    (["node_rank=1"], "node_rank", "only static"),
    (["entrypoint=missing.py"], "entrypoint", "does not exist"),
    (["module=json"], "module", "are both set"),
    (["entrypoint=null", "module=no_such_module_xyz"], "module", "not importable"),
    (["entrypoint=null", "exec=no-such-program-xyz"], "exec", "not on PATH"),
    (["entrypoint=null", "call=not_a_callable"], "call", "package.module:function"),
    (["env.RANK=1"], "env.RANK", "set by erun"),
    (["env.MASTER_ADDR=h"], "env.MASTER_ADDR", "use master_addr="),
    (["cwd=nowhere"], "cwd", "not a directory"),
    (["logs.prefix={bogus}"], "logs.prefix", "{bogus}"),
    (["logs.ranks=[5]"], "logs.ranks", "outside 0..1"),
    (["logs.console=maybe"], "logs.console", "wrong type"),
    (["logs.panel=blink"], "logs.panel", "auto, on or off"),
    (["restart=backof"], "restart", "did you mean `backoff`?"),
    (["restart.backoff.kind=linear"], "restart.backoff.kind", "none, fixed, exponential"),
    (["restart=backoff", "restart.rules.1.signals=[SIGNOPE]"], "restart.rules.1.signals", "SIGNOPE"),
    (["health.heartbeat_timeout=5"], "health.heartbeat_timeout", "`health.heartbeat_timeout_s`?"),
    (["health.memory_limit_mb=-1"], "health.memory_limit_mb", "0 (off) or more"),
    (["params_as=flag"], "params_as", "did you mean `flags`?"),
    (["params.lr=???"], "params.lr", "has no value"),
    (["params.x=${nope}"], "params.x", "cannot be resolved"),
    (["isolate_gpus=true"], "isolate_gpus", "one CUDA device per worker"),
    (["+job=trian"], "job", "did you mean `train`?"),
    (["+job=nporc.yaml"], "nporc", "did you mean `nproc`?"),
    (["+job=badtype.yaml"], "restart.max_restarts", "not a whole number"),
    (["hydra.run.dir=${nope}"], "hydra.run.dir", "not found"),
]
# Errors without a key: the text names what is wrong.
KEYLESS = [
    (["--cgf", "job"], "unknown flag --cgf; did you mean `--cfg`?"),
    (["--dry-run=yaml"], "unknown flag --dry-run=yaml"),
    (["+job=broken.yaml"], "broken.yaml: is not valid YAML"),
    (["+job=listjob.yaml"], "listjob.yaml: holds a list"),
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(WORKER)
    (tmp_path / "train.yaml").write_text(JOB)
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def command(args: list[str]) -> list[str]:
    return args if any(a.startswith("+job=") for a in args) else ["+job=train.yaml", *args]


def assert_rejected(project: Path, args: list[str]) -> str:
    """erun refused `args`: exit 2, one erun line on stderr, nothing started or left behind."""
    before = sorted(p.name for p in project.iterdir())
    result = erun(command(args), project, env={"ERUN_FAKE_GPU_COUNT": "0"})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("erun: error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (project / "STARTED").exists()
    assert sorted(p.name for p in project.iterdir()) == before  # no run dir left behind
    return lines[0]


@pytest.mark.parametrize("args,key,text", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_line_naming_the_key(project: Path, args: list[str], key: str, text: str) -> None:
    line = assert_rejected(project, args)
    assert f"`{key}`" in line and text in line


@pytest.mark.parametrize("args,text", KEYLESS, ids=[" ".join(c[0]) for c in KEYLESS])
def test_bad_flags_and_files_are_one_line(project: Path, args: list[str], text: str) -> None:
    assert text in assert_rejected(project, args)


def test_errors_say_where_the_key_was_set(project: Path) -> None:
    assert "erun: error: command line: `nproc`" in assert_rejected(project, ["nproc=0"])
    assert "erun: error: nporc.yaml: `nporc`" in assert_rejected(project, ["+job=nporc.yaml"])
    (project / "zero.yaml").write_text("entrypoint: train.py\nnproc: 0\n")
    assert "erun: error: zero.yaml: `nproc` is 0" in assert_rejected(project, ["+job=zero.yaml"])


def test_no_job_at_all_says_what_to_set(project: Path) -> None:
    result = erun(["nproc=2"], project)
    assert result.returncode == 2
    assert "`entrypoint` is not set" in result.stderr and "+job=train.yaml" in result.stderr
