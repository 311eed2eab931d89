"""`runner.config.hydra_run`, the one-compose path of a plain run, against `@hydra.main` itself.

Each case runs the same command line twice in fresh interpreters, once as `erun` does (the fast
path where it applies) and once with the fast path off (Hydra's `@hydra.main`, as erun did
before), with the agent replaced by a stub that records what would be written and started.
The two must agree: the .hydra/ record (config.yaml, hydra.yaml, overrides.yaml), job.yaml,
the plan, the console output and the exit status. No worker process starts.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import subprocess_env
from erun_cli import write_recorder_job

# Runs runner.cli.main with the agent stubbed; prints one JSON line last on stdout.
PROBE = '''\
import json, sys, types
import runner.app as app, runner.config.hydra_run as hydra_run
if sys.argv[1] == "hydra":
    hydra_run.takes = lambda args: False
used = []
run_once = hydra_run.run_once
def spy(*args, **kwargs):
    used.append(run_once(*args, **kwargs))
    return used[-1]
hydra_run.run_once = spy
started = {}
def start(prepared, environ):
    if "ERUN_PROBE_RAISE" in environ:
        raise RuntimeError("a bug in erun")
    started.update(files=dict(prepared.files), plan=json.loads(prepared.plan.to_json()))
    return types.SimpleNamespace(exit_code=0, run_dir=prepared.plan.run_dir, result=None)  # a RunResult's
app.start = start
from runner.cli import main
rc = main(sys.argv[2:])
print(json.dumps({"rc": rc, "fast": any(used), "started": started}))
sys.exit(rc)
'''
TIME = re.compile(r"\d{2}[-:]\d{2}[-:]\d{2}(,\d+)?")


def probe(mode: str, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """erun ARGS with the agent stubbed; mode "erun" (as shipped) or "hydra" (@hydra.main only)."""
    result = subprocess.run([sys.executable, "-c", PROBE, mode, *args], cwd=cwd, env=subprocess_env(env),
                            capture_output=True, text=True, timeout=60)
    *printed, last = result.stdout.splitlines() or [""]
    outcome: dict[str, Any] = json.loads(last) if last.startswith("{") else {"rc": None}
    outcome.update(stdout=printed, stderr=result.stderr, exit=result.returncode)
    return outcome


def both(args: list[str], cwd: Path, fast: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fast path's outcome and @hydra.main's, for the same command line; whether the fast
    path was taken is checked against `fast`. Each run starts from the same directory tree."""
    mine = probe("erun", args, cwd)
    _remove_outputs(cwd)
    theirs = probe("hydra", args, cwd)
    assert mine["fast"] is fast, mine["stderr"]
    assert theirs["fast"] is False
    return mine, theirs


def _remove_outputs(cwd: Path) -> None:
    """Everything but the job files (and ./conf): what the first run made."""
    for path in cwd.iterdir():
        if path.is_dir() and path.name != "conf":
            shutil.rmtree(path)


def same(mine: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert mine["exit"] == theirs["exit"] and mine["rc"] == theirs["rc"], (mine["stderr"], theirs["stderr"])
    for key in ("stdout", "stderr", "started"):
        assert _comparable(mine, key) == _comparable(theirs, key), key


def _comparable(outcome: dict[str, Any], key: str) -> str:
    """A run's id is fresh every time; the time of day may tick between the two runs."""
    text = json.dumps(outcome[key], sort_keys=True)
    run_id = outcome["started"].get("plan", {}).get("run_id")
    if run_id:
        text = text.replace(run_id, "RUN_ID")
    return _normal(text)


def _normal(text: str) -> str:
    """Run ids, erun's per-invocation config folder and the time of day differ from run to run."""
    text = re.sub(r"(run_id\W+)[0-9a-f]{12}", r"\1RUN_ID", text)
    text = re.sub(r"erun-conf-\w+", "erun-conf-STAGING", text)
    return TIME.sub("HH-MM-SS", text)


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    write_recorder_job(tmp_path)
    return tmp_path


def test_a_plain_run_writes_the_record_hydra_main_writes(job_dir: Path) -> None:
    mine, theirs = both(["+job=train.yaml", "nproc=3", "hydra.run.dir=out", "params.lr=0.5"], job_dir)
    same(mine, theirs)
    files = mine["started"]["files"]
    assert set(files) == {str(job_dir / "out" / n) for n in
                          (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "job.yaml")}
    hydra_yaml = files[str(job_dir / "out" / ".hydra" / "hydra.yaml")]
    assert "- hydra.mode=RUN" in hydra_yaml and "mode: RUN" in hydra_yaml
    assert "name: train" in hydra_yaml


def test_a_mode_the_config_chose_gets_no_second_mode_override(job_dir: Path) -> None:
    mine, theirs = both(["+job=train.yaml", "hydra.run.dir=out", "hydra.mode=RUN"], job_dir)
    same(mine, theirs)
    hydra_yaml = mine["started"]["files"][str(job_dir / "out" / ".hydra" / "hydra.yaml")]
    assert hydra_yaml.count("hydra.mode=RUN") == 1


def test_the_default_run_dir_is_named_by_date_time_and_job(job_dir: Path) -> None:
    mine, theirs = both(["+job=train.yaml"], job_dir)
    same(mine, theirs)
    run_dir = Path(mine["started"]["plan"]["run_dir"]).relative_to(job_dir / "outputs")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}/\d{2}-\d{2}-\d{2}_train", str(run_dir))


def test_presets_open_keys_env_set_and_a_hydra_node_in_the_job_file(tmp_path: Path) -> None:
    write_recorder_job(tmp_path, extra="hydra:\n  job:\n    env_set:\n      FROM_JOB: '1'\n")
    args = ["+job=train", "restart=on_failure", "rdzv=c10d", "params.warmup=3", "env.FOO=bar",
            "logs.ranks=[0]", "+hydra.job.env_set.ERUN_PROBE=1",
            "hydra.run.dir=runs/${hydra.job.name}-${now:%H}"]
    mine, theirs = both(args, tmp_path)
    same(mine, theirs)
    assert mine["started"]["plan"]["run_dir"].startswith(str(tmp_path / "runs" / "train-"))


def test_a_dry_run_prints_the_same_plan(job_dir: Path) -> None:
    mine, theirs = both(["+job=train.yaml", "nproc=2", "hydra.run.dir=out", "--dry-run=json"], job_dir)
    same(mine, theirs)
    assert json.loads("".join(mine["stdout"]))["nproc"] == 2 and not (job_dir / "out").exists()


def test_hydra_writes_its_own_record_when_the_user_chooses_output_subdir(job_dir: Path) -> None:
    records = []
    for mode in ("erun", "hydra"):
        outcome = probe(mode, ["+job=train.yaml", "hydra.run.dir=out", "hydra.output_subdir=rec"], job_dir)
        assert outcome["rc"] == 0 and outcome["fast"] is (mode == "erun"), outcome["stderr"]
        records.append({p.name: _normal(p.read_text()) for p in (job_dir / "out" / "rec").iterdir()})
        shutil.rmtree(job_dir / "out")
    assert records[0] == records[1] and set(records[0]) == {"config.yaml", "hydra.yaml", "overrides.yaml"}


@pytest.mark.parametrize("args", [
    ["hydra.job.chdir=true"],                       # run_job changes directory: Hydra's path
    ["hydra.verbose=true"],                         # debug logging of the compose: Hydra's path
    ["+hydra.callbacks.probe._target_=hydra.experimental.callback.Callback"],
], ids=["chdir", "verbose", "callbacks"])
def test_what_the_fast_path_does_not_repeat_goes_to_hydra(job_dir: Path, args: list[str]) -> None:
    mine, theirs = both(["+job=train.yaml", "hydra.run.dir=out", *args], job_dir, fast=False)
    same(mine, theirs)
    assert mine["rc"] == 0


def test_a_config_that_is_a_multirun_stays_one(job_dir: Path) -> None:
    args = ["+job=train.yaml", "hydra.mode=MULTIRUN", "nproc=1,2", "hydra.sweep.dir=sweep", "--dry-run=json"]
    mine, theirs = both(args, job_dir, fast=False)
    same(mine, theirs)
    assert [line.strip() for line in mine["stdout"] if '"nproc"' in line] == ['"nproc": 1,', '"nproc": 2,']


@pytest.mark.parametrize("args,fast", [
    (["nprc=8"], False),                            # an unknown key: the compose fails
    (["restart.max_restarts=many"], False),         # a wrong type: the compose fails
    (["restart=nope"], False),                      # a missing preset
    (["nproc=1,2"], False),                         # a sweep without -m
    (["hydra.run.dir=${oops:x}"], False),           # a run dir that cannot resolve: raised in run_once
    (["nproc=two"], True),                          # composes; erun's compiler refuses it
], ids=["key", "type", "preset", "sweep", "run-dir", "compile"])
def test_errors_are_the_same_one_line(job_dir: Path, args: list[str], fast: bool) -> None:
    mine, theirs = both(["+job=train.yaml", *args], job_dir, fast=fast)
    same(mine, theirs)
    assert mine["exit"] == 2 and len(mine["stderr"].strip().splitlines()) == 1, mine["stderr"]


def test_an_unexpected_error_in_the_job_gets_hydras_line_and_traceback(job_dir: Path) -> None:
    outcomes = [probe(mode, ["+job=train.yaml", "hydra.run.dir=out"], job_dir, {"ERUN_PROBE_RAISE": "1"})
                for mode in ("erun", "hydra")]
    for outcome in outcomes:
        lines = outcome["stderr"].strip().splitlines()
        assert outcome["exit"] == 1 and lines[-1] == "RuntimeError: a bug in erun", outcome["stderr"]
        assert lines[0] == "Error executing job with overrides: ['+job=train.yaml']"  # as typed
