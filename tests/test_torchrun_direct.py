"""`erun torchrun` without Hydra (runner.config.direct): every flag family of
tests/test_torchrun_flags.py compiles to the same plan, record files and errors as through Hydra
(`erun +job=FILE hydra.run.dir=DIR`), in-process; one real run through each path shows the
workers the same environment and leaves the same record files."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import subprocess_env
from erun_cli import erun

from runner import torchrun
from runner.app import Session
from runner.config import argv as argv_mod
from runner.config import direct, staging
from runner.config.hydra_run import run_hydra
from runner.errors import ConfigError
from runner.sweep.points import PreparedPoint
from runner.torchrun_job import HYDRA_PATH_VAR

C10D = ["--nnodes=1:2", "--rdzv-backend=c10d", "--rdzv-endpoint=localhost:29999"]
# Each flag family of tests/test_torchrun_flags.py, several to a command line (Hydra's path
# costs about half a second of CPU per case).
CASES: list[list[str]] = [
    ["--nproc-per-node=3", "--max-restarts=3", "--shutdown-timeout=7", "--role=trainer", "--redirects=3",
     "--tee=0", "t.py", "--lr", "1e-3", "true", "${x}", "a=b,c", "null"],
    ["--nproc_per_node", "cpu", "-r", "1", "-t", "2", "--local-ranks-filter=0,1", "-m", "pkg.mod", "--flag"],
    ["--nproc-per-node=auto", "--numa-binding=node", "--virtual-local-rank", "--monitor-interval=1",
     "--start-method=spawn", "--event-log-handler=console", "--logs-specs=default", "--master-port=29511",
     "--signals-to-handle=SIGTERM,SIGUSR1", "--duplicate-stdout-filters=a", "--duplicate_stderr_filters=b",
     "--no-python", "echo", "hi"],
    [*C10D, "--rdzv-conf='join_timeout=5,last_call_timeout=1,timeout=5'", "--local-addr=10.1.2.3",
     "--log-dir", "logs", "--run-path", "t.py"],
    ["--nnodes=4", "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:2999", "--rdzv-id=job7",
     '--rdzv_conf="timeout=5"', "t.py"],
    ["--nnodes=2", "--node-rank=1", "--master-addr=10.0.0.1", "--master-port=29511", "t.py"],
    ["--nnodes=2", "--rdzv-backend=etcd-v2", "--rdzv-endpoint=localhost:2379", "t.py"],
    ["--standalone", "--nproc-per-node=2", "--master-addr=10.0.0.2", "t.py"],
    ["train(v2).py", "x"], ["true"], ["${x}.py"], ["it's \"q\".py"],
]
# PET_ variables and the environment torchrun reads besides its flags.
ENVS: list[dict[str, str]] = [
    {"PET_NPROC_PER_NODE": "4", "PET_NO_PYTHON": "1", "PET_MAX_RESTARTS": "2", "PET_TEE": "3",
     "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": "4",
     "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE": "${role_name}-${rank}|${x} {y}"},
]
BAD = [["--role", "", "t.py"], ["--nnodes", "2", "--rdzv-endpoint", "bad host:x", "t.py"],
       [*C10D, "--rdzv-conf", "join_timeout=-3", "t.py"], ["missing.py"]]


def job_file(argv: list[str], folder: Path) -> Path:
    """The job file `erun torchrun ARGV` writes (runner.torchrun_job.run_job)."""
    opts = torchrun.parser().parse_args(argv)
    job = torchrun.to_job(opts)
    folder.mkdir(exist_ok=True)
    path = folder / f"{torchrun.job_file_stem(job['name'])}.yaml"
    path.write_text(torchrun.render(job))
    return path


def via_hydra(path: Path, record: Path, cwd: Path) -> PreparedPoint:
    """What Hydra's path prepares for `erun +job=PATH hydra.run.dir=RECORD` (nothing is run)."""
    with staging.staging_dir() as folder:
        invocation = argv_mod.shape([f"+job={path}", f"hydra.run.dir={record}"], cwd, folder)
        session = Session(invocation)
        got: list[PreparedPoint] = []

        def task(cfg: Any) -> None:
            got.append(session.prepare_point(cfg))

        run_hydra(folder, invocation, task)
    assert len(got) == 1
    return got[0]


def leaves(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        return {k: v for key, value in data.items() for k, v in leaves(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): data}


def assert_same(prepared: tuple[Any, ...] | None, slow: PreparedPoint) -> None:
    assert prepared is not None
    fast = PreparedPoint(*prepared)
    assert dataclasses.replace(fast.plan, run_id="") == dataclasses.replace(slow.plan, run_id="")
    assert fast.overrides == slow.overrides
    assert set(fast.files) == set(slow.files)
    for name, text in slow.files.items():
        if name.endswith("hydra.yaml"):  # the run's part of Hydra's config, each value as Hydra's
            theirs = leaves(yaml.safe_load(text))
            ours = leaves(yaml.safe_load(fast.files[name]))
            assert {k: theirs.get(k, "<absent>") for k in ours} == ours
            assert yaml.safe_load(text)["hydra"]["hydra_logging"] == direct.HYDRA_LOGGING
            assert yaml.safe_load(text)["hydra"]["job_logging"] == direct.JOB_LOGGING
        else:
            assert fast.files[name] == text, name


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("t.py", "train(v2).py", "true", "${x}.py", "it's \"q\".py"):
        (tmp_path / name).write_text("")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("")
    return tmp_path


def test_every_flag_family_compiles_to_hydras_plan_and_record(workdir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    runs = [(argv, {}) for argv in CASES] + [(["true"], env) for env in ENVS]
    for i, (argv, env) in enumerate(runs):
        with monkeypatch.context() as m:
            for key, value in env.items():
                m.setenv(key, value)
            path = job_file(argv, workdir / f"stage{i}")
            record = workdir / f"record{i}"
            assert_same(direct.prepare(path, str(record), workdir), via_hydra(path, record, workdir))


def test_a_bad_flag_is_the_same_error_on_both_paths(workdir: Path) -> None:
    for i, argv in enumerate(BAD):
        path = job_file(argv, workdir / f"stage{i}")
        with pytest.raises(ConfigError) as fast:
            direct.prepare(path, str(workdir / "r"), workdir)
        with pytest.raises(ConfigError) as slow:
            via_hydra(path, workdir / "r", workdir)
        assert str(fast.value) == str(slow.value), argv


def test_a_job_file_with_more_hydra_than_a_run_dir_goes_to_hydra(workdir: Path) -> None:
    (workdir / "j.yaml").write_text("entrypoint: t.py\nhydra:\n  job:\n    chdir: true\n")
    (workdir / "k.yaml").write_text("defaults:\n  - _self_\nentrypoint: t.py\n")
    (workdir / "l.yaml").write_text("entrypoint: t.py\nnode_rank: abc\n")  # OmegaConf refuses the type
    for name in ("j", "k", "l"):
        assert direct.prepare(workdir / f"{name}.yaml", str(workdir / "r"), workdir) is None


def record_of(stderr: str) -> Path:
    return Path(re.findall(r"run dir (\S+)", stderr)[-1])


@pytest.mark.usefixtures("no_survivors", "private_tmpdir")
def test_a_run_shows_workers_and_record_what_hydras_path_does(tmp_path: Path) -> None:
    worker = Path(__file__).parent / "workers" / "dump_env.py"
    seen: dict[str, dict[str, str]] = {}
    files: dict[str, set[str]] = {}
    for path_name, env in (("direct", {}), ("hydra", {HYDRA_PATH_VAR: "1"})):
        out = tmp_path / path_name
        out.mkdir()
        result = erun(["torchrun", "--nproc-per-node=2", str(worker), str(out)], tmp_path, env=env)
        assert result.returncode == 0, result.stderr
        record = record_of(result.stderr)
        try:
            files[path_name] = {str(p.relative_to(record)) for p in record.rglob("*")}
            run_id = json.loads((record / "plan.json").read_text())["run_id"]
        finally:
            shutil.rmtree(record)
        environ = json.loads((out / "env_1.json").read_text())
        seen[path_name] = {k: v.replace(str(record), "RECORD").replace(run_id, "RUN_ID")
                           for k, v in environ.items() if k != HYDRA_PATH_VAR}
    assert files["direct"] == files["hydra"] and ".hydra/hydra.yaml" in files["direct"]
    differ = {k for k in seen["direct"].keys() | seen["hydra"].keys()
              if seen["direct"].get(k) != seen["hydra"].get(k)}
    assert differ <= {"MASTER_PORT", "ERUN_JOB_TOKEN"}, differ
    assert os.environ.get(HYDRA_PATH_VAR) is None


def test_the_direct_path_imports_no_hydra() -> None:
    """What `erun torchrun` imports on its way to the agent: Hydra's import alone is ~0.25 s of CPU."""
    code = ("import sys, runner.torchrun, runner.torchrun_job, runner.config.direct, runner.app, "
            "runner.config.compile, runner.sweep.prepared, runner.runtime.agent\n"
            "print(sorted(m for m in sys.modules if 'hydra' in m))")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env=subprocess_env())
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "['runner.config.hydra_run']"  # erun's module; Hydra's are imported lazily
