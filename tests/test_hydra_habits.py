"""Hydra's habits kept by erun, checked with real runs: hydra.job.env_set reaches the workers,
hydra.job.chdir=true runs them in the run dir, hydra.output_subdir=null writes no .hydra/, a job
file's hydra.job.name names the run, and hydra.callbacks fire when the job really starts and
ends with its real status and result, for a plain run and for a sweep under erun's launcher.
Overrides are recorded as typed (`+job=habit.yaml`, `params.x=1`), never as erun composes them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import WORKERS
from erun_cli import erun

from runner.overrides import Spelling

pytestmark = pytest.mark.usefixtures("no_survivors")

CALLBACK = "+hydra.callbacks.rec._target_=hydra_callbacks.Recorder"


def write_job(folder: Path, extra: str = "") -> None:
    (folder / "habit.yaml").write_text(f"entrypoint: {WORKERS / 'habits_point.py'}\nnproc: 1\n"
                                       f"params:\n  x: 1\n{extra}")


def callback_env(folder: Path) -> dict[str, str]:
    return {"CALLBACK_LOG": str(folder / "callbacks.jsonl"), "PYTHONPATH": str(WORKERS)}


def events(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "callbacks.jsonl").read_text().splitlines()]


def seen(run_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((run_dir / "seen.json").read_text())
    return result


def test_env_set_chdir_and_callbacks_of_a_plain_run(tmp_path: Path) -> None:
    write_job(tmp_path)
    done = erun(["+job=habit.yaml", "params.x=2", "+hydra.job.env_set.FOO=bar", "hydra.job.chdir=true",
                 CALLBACK, "hydra.run.dir=run"], tmp_path, env=callback_env(tmp_path))
    assert done.returncode == 0, done.stderr
    run_dir = (tmp_path / "run").resolve()
    assert seen(run_dir) == {"cwd": str(run_dir), "FOO": "bar"}  # as Hydra's task would run
    start, end = events(tmp_path)
    assert start["event"] == "job_start" and start["cwd"] == str(run_dir) and start["FOO"] == "bar"
    assert (end["event"], end["status"], end["value"]) == ("job_end", "COMPLETED", 20)  # the job's result
    assert end["summary_state"] == "SUCCEEDED"


def test_a_failed_plain_run_ends_its_callbacks_failed(tmp_path: Path) -> None:
    write_job(tmp_path)
    done = erun(["+job=habit.yaml", "params.x=3", CALLBACK, "hydra.run.dir=run"], tmp_path,
                env=callback_env(tmp_path))
    assert done.returncode == 1, done.stderr
    assert seen(tmp_path / "run") == {"cwd": str(tmp_path.resolve()), "FOO": None}  # chdir: false by default
    assert [(e["event"], e.get("status"), e.get("value")) for e in events(tmp_path)] == [
        ("job_start", None, None), ("job_end", "FAILED", "JobFailed")]
    assert "Traceback" not in done.stderr


def test_output_subdir_null_and_a_job_files_hydra_job_name(tmp_path: Path) -> None:
    write_job(tmp_path, "hydra:\n  job:\n    name: fromfile\n")
    done = erun(["+job=habit.yaml", "hydra.output_subdir=null"], tmp_path)
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "outputs").glob("*/*")
    assert run_dir.name.endswith("_fromfile")  # the job file's hydra.job.name names the run dir
    assert not (run_dir / ".hydra").exists() and (run_dir / "summary.json").is_file()
    assert json.loads((run_dir / "plan.json").read_text())["name"] == "fromfile"


def test_a_sweeps_callbacks_fire_as_each_point_starts_and_ends(tmp_path: Path) -> None:
    write_job(tmp_path)
    done = erun(["-m", "+job=habit.yaml", "params.x=2,3", "+hydra.job.env_set.FOO=baz",
                 "hydra.job.chdir=true", CALLBACK, "hydra.sweep.dir=sweep", "hydra.launcher.slots=2"],
                tmp_path, env=callback_env(tmp_path))
    assert done.returncode == 1, done.stderr
    sweep = (tmp_path / "sweep").resolve()
    for n in (0, 1):
        assert seen(sweep / str(n)) == {"cwd": str(sweep / str(n)), "FOO": "baz"}
    got = events(tmp_path)
    assert got[0]["event"] == "multirun_start"
    ends = {e["run_dir"]: e for e in got if e["event"] == "job_end"}
    starts = [e for e in got if e["event"] == "job_start"]
    assert sorted(e["run_dir"] for e in starts) == [str(sweep / "0"), str(sweep / "1")]
    assert all(e["cwd"] == e["run_dir"] and e["FOO"] == "baz" for e in starts)
    assert (ends[str(sweep / "0")]["status"], ends[str(sweep / "0")]["value"]) == ("COMPLETED", 20)
    assert (ends[str(sweep / "1")]["status"], ends[str(sweep / "1")]["value"]) == ("FAILED", "PointFailed")
    # on_job_end came when the point's agent had ended: its summary was final
    assert [ends[str(sweep / n)]["summary_state"] for n in "01"] == ["SUCCEEDED", "FAILED"]


# -- overrides recorded as typed ---------------------------------------------------------------


def test_spelling_composes_what_the_user_typed() -> None:
    spelling = Spelling({"habit.yaml": "habit", "a.yaml": "a", "b": "b"}, ("params", "env"))
    assert spelling.internal("+job=habit.yaml") == "job@_global_=habit"
    assert spelling.internal("job=a.yaml,b") == "job@_global_=a,b"
    assert spelling.internal("params.x=1") == "++params.x=1"
    assert spelling.internal("env.FOO=1") == "++env.FOO=1"
    for unchanged in ("+params.x=1", "~params.x", "nproc=2", "paramsx.y=1", "hydra.job.chdir=true"):
        assert spelling.internal(unchanged) == unchanged


def test_overrides_are_recorded_as_typed(tmp_path: Path) -> None:
    write_job(tmp_path)
    done = erun(["-m", "+job=habit.yaml", "params.x=1,2", "params.y=5", "hydra.sweep.dir=sweep",
                 "hydra.sweep.subdir=${hydra.job.override_dirname}", "hydra.launcher.slots=2", CALLBACK],
                tmp_path, env=callback_env(tmp_path))
    assert done.returncode == 0, done.stderr
    sweep = tmp_path / "sweep"
    multirun = yaml.safe_load((sweep / "multirun.yaml").read_text())
    assert multirun["hydra"]["overrides"]["task"] == ["+job=habit.yaml", "params.x=1,2", "params.y=5"]
    for x in (1, 2):
        typed = ["+job=habit.yaml", f"params.x={x}", "params.y=5"]
        point = sweep / ",".join(typed)  # override_dirname, as Hydra names it from the typed overrides
        assert yaml.safe_load((point / ".hydra" / "overrides.yaml").read_text()) == typed
        (end,) = [e for e in events(tmp_path)
                  if e["event"] == "job_end" and e["run_dir"] == str(point.resolve())]
        assert end["overrides"] == typed  # the point's JobReturn
    assert "job@_global_" not in done.stderr and "++params" not in done.stderr
    got = [e["event"] for e in events(tmp_path)]  # a sweep that succeeded ends with on_multirun_end
    assert got[0] == "multirun_start" and got[-1] == "multirun_end"
    assert sorted(got[1:-1]) == ["job_end", "job_end", "job_start", "job_start"]


# -- Hydra's own launchers: the exit status says a point failed --------------------------------


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_hydras_launchers_exit_non_zero_when_a_point_failed(tmp_path: Path, launcher: str) -> None:
    write_job(tmp_path)
    done = erun(["-m", "+job=habit.yaml", "params.x=2,3", "hydra.sweep.dir=sweep",
                 f"hydra/launcher={launcher}", CALLBACK], tmp_path, env=callback_env(tmp_path))
    assert done.returncode == 1, done.stderr
    assert json.loads((tmp_path / "sweep" / "0" / "summary.json").read_text())["state"] == "SUCCEEDED"
    assert json.loads((tmp_path / "sweep" / "1" / "summary.json").read_text())["state"] == "FAILED"
    ends = sorted((e["overrides"], e["status"], e["value"])
                  for e in events(tmp_path) if e["event"] == "job_end")
    assert ends == [(["+job=habit.yaml", "params.x=2"], "COMPLETED", 20),
                    (["+job=habit.yaml", "params.x=3"], "FAILED", "JobFailed")]


# -- Hydra's flags: -cd, -cn, tab completion ---------------------------------------------------


def test_a_config_dir_is_searched_for_the_job(tmp_path: Path) -> None:
    (tmp_path / "mine" / "job").mkdir(parents=True)
    (tmp_path / "mine" / "job" / "remote.yaml").write_text(
        f"entrypoint: {WORKERS / 'habits_point.py'}\nnproc: 1\nparams:\n  x: 4\n")
    done = erun(["-cd", "mine", "+job=remote", "hydra.run.dir=run"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["result"] == 40
    missing = erun(["+job=remote", "--dry-run"], tmp_path)  # without -cd: not found, one line
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr


@pytest.mark.parametrize("flag", ["-cn", "--config-name=other", "-cp"])
def test_replacing_eruns_primary_config_is_a_one_line_error(tmp_path: Path, flag: str) -> None:
    write_job(tmp_path)
    done = erun([*flag.split("="), *(["x"] if "=" not in flag else []), "+job=habit.yaml"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("erun: error: command line: ") and done.stderr.count("\n") == 1
    assert "primary config" in done.stderr and "+job=FILE" in done.stderr
    assert not (tmp_path / "outputs").exists()


def complete(line: str, cwd: Path) -> list[str]:
    done = erun(["-sc", "query=bash"], cwd, env={"COMP_LINE": line, "COMP_POINT": str(len(line))})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_tab_completion_offers_jobs_keys_presets_and_conf_groups(tmp_path: Path) -> None:
    write_job(tmp_path)
    (tmp_path / "notes.yaml").write_text("title: not a job\n")
    (tmp_path / "conf" / "restart").mkdir(parents=True)
    (tmp_path / "conf" / "restart" / "mine.yaml").write_text("max_restarts: 7\n")
    (tmp_path / "more" / "job").mkdir(parents=True)
    (tmp_path / "more" / "job" / "remote.yaml").write_text("entrypoint: x.py\n")
    jobs = complete("erun +job=", tmp_path)
    assert {"+job=habit", "+job=ddp"} <= set(jobs) and "+job=notes" not in jobs  # ., erun's shipped jobs
    assert "+job=remote" in complete("erun -cd more +job=", tmp_path)
    assert complete("erun +job=habit.yaml npr", tmp_path) == ["nproc="]
    assert complete("erun +job=habit.yaml params.", tmp_path) == ["params.x="]  # the job file's own keys
    assert {"restart=never", "restart=mine"} <= set(complete("erun +job=habit.yaml restart=", tmp_path))
    assert not (tmp_path / "outputs").exists()  # a query starts nothing and writes nothing


def test_a_new_key_under_hydras_node_without_plus_says_to_add_it(tmp_path: Path) -> None:
    write_job(tmp_path)
    done = erun(["+job=habit.yaml", "hydra.job.env_set.FOO=bar"], tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "add it with +hydra.job.env_set.FOO=..." in done.stderr and "params" not in done.stderr
