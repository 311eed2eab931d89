"""`erun` end to end with Hydra: job files, dry runs, Hydra's flags, params, multirun, fake GPUs,
and the shipped examples. Real processes; every test ends with the no-survivor check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, read_summary, subprocess_env
from erun_cli import erun, write_recorder_job

pytestmark = pytest.mark.usefixtures("no_survivors")


def seen(run_dir: Path, rank: int = 0) -> dict[str, Any]:
    return json.loads((run_dir / f"seen_{rank}.json").read_text())


def dry_plan(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = erun([*args, "--dry-run=json"], cwd, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- job files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["+job=train.yaml", "+job=train", "job=train.yaml"])
def test_a_job_file_in_the_working_directory(tmp_path: Path, spelling: str) -> None:
    write_recorder_job(tmp_path)
    plan = dry_plan([spelling, "nproc=3"], tmp_path)
    assert plan["nproc"] == 3 and plan["name"] == "train"
    assert plan["entrypoint"]["target"] == str(tmp_path / "train.py")


def test_a_job_file_in_conf_job_and_anywhere_else(tmp_path: Path) -> None:
    write_recorder_job(tmp_path / "conf" / "job", "local")
    assert dry_plan(["+job=local"], tmp_path)["name"] == "local"
    write_recorder_job(tmp_path / "far" / "away", "remote")
    plan = dry_plan(["+job=far/away/remote.yaml"], tmp_path)
    assert plan["entrypoint"]["target"] == str(tmp_path / "far" / "away" / "remote.py")  # next to the file


def test_a_local_job_wins_over_a_shipped_one_of_the_same_name(tmp_path: Path) -> None:
    write_recorder_job(tmp_path, "ddp")
    assert dry_plan(["+job=ddp"], tmp_path)["entrypoint"]["target"] == str(tmp_path / "ddp.py")


def test_shipped_jobs_run_from_any_directory(tmp_path: Path) -> None:
    plan = dry_plan(["+job=hparams"], tmp_path)
    assert plan["entrypoint"]["target"] == str(REPO / "examples" / "hparams.py")
    assert "--lr=0.01" in plan["entrypoint"]["args"]


# -- dry run and Hydra's flags -----------------------------------------------------------------


def test_dry_run_prints_the_plan_starts_nothing_and_leaves_nothing(tmp_path: Path) -> None:
    write_recorder_job(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = erun(["+job=train.yaml", "env.FOO=bar", "--dry-run"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dry run of job `train`" in result.stdout
    assert "rank 1:" in result.stdout and "LOCAL_RANK=1 RANK=1 WORLD_SIZE=2" in result.stdout
    assert "FOO=bar" in result.stdout and "--lr=0.1" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def main_without_torch(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`runner.cli.main(args)` in a fresh interpreter; exit 10 if it imported torch."""
    code = (f"import sys; from runner.cli import main; rc = main({args!r}); "
            "sys.exit(rc or 10 * ('torch' in sys.modules))")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=subprocess_env(),
                          capture_output=True, text=True, timeout=60)


def test_dry_run_is_fast_and_does_not_import_torch(tmp_path: Path) -> None:
    write_recorder_job(tmp_path)
    result = main_without_torch(["+job=train.yaml", "--dry-run"], tmp_path)
    assert result.returncode == 0, result.stderr


def test_cfg_job_prints_the_composed_config(tmp_path: Path) -> None:
    write_recorder_job(tmp_path)
    result = erun(["+job=train.yaml", "nproc=4", "restart=on_failure", "--cfg", "job"], tmp_path)
    assert result.returncode == 0, result.stderr
    cfg = yaml.safe_load(result.stdout)
    assert cfg["nproc"] == 4 and cfg["restart"]["max_restarts"] == 3 and cfg["params"] == {"lr": 0.1}
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("flag,text", [("--help", "Presets"), ("--info", "Config search path")])
def test_hydra_help_and_info(tmp_path: Path, flag: str, text: str) -> None:
    write_recorder_job(tmp_path)
    result = erun(["+job=train.yaml", flag], tmp_path)
    assert result.returncode == 0, result.stderr
    assert text in result.stdout
    if flag == "--help":
        assert "erun +job=JOB" in result.stdout and "on_failure" in result.stdout and "c10d" in result.stdout


# -- real runs ---------------------------------------------------------------------------------


def test_a_run_directory_holds_config_plan_and_record(tmp_path: Path) -> None:
    write_recorder_job(tmp_path)
    result = erun(["+job=train.yaml", "hydra.run.dir=out", "env.FOO=bar"], tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    for name in ("job.yaml", "plan.json", "events.jsonl", "summary.json", ".hydra/config.yaml",
                 ".hydra/overrides.yaml", "attempt_0/rank_1/stdout.log"):
        assert (out / name).exists(), name
    hydra_cfg = yaml.safe_load((out / ".hydra" / "hydra.yaml").read_text())["hydra"]
    assert hydra_cfg["runtime"]["choices"]["job@_global_"] == "train"  # recorded without the suffix
    rank1 = seen(out, 1)
    assert rank1["ERUN_CONFIG"] == str(out / "job.yaml") and rank1["ERUN_RUN_DIR"] == str(out)
    assert yaml.safe_load(rank1["config"])["env"] == {"FOO": "bar"}  # the resolved job config
    assert rank1["FOO"] == "bar" and rank1["WORLD_SIZE"] == "2"
    assert read_summary(out)["state"].lower() == "succeeded"


def test_a_job_files_hydra_run_dir_wins_over_the_default_and_loses_to_the_command_line(
        tmp_path: Path) -> None:
    write_recorder_job(tmp_path, extra="hydra:\n  run:\n    dir: from_job/${hydra.job.name}\n")
    result = erun(["+job=train.yaml"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert read_summary(tmp_path / "from_job" / "train")["state"] == "SUCCEEDED"
    result = erun(["+job=train.yaml", "hydra.run.dir=from_cli"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "from_cli" / "summary.json").exists()
    assert not (tmp_path / "outputs").exists()


def test_params_reach_the_script(tmp_path: Path) -> None:
    write_recorder_job(tmp_path)
    args = ["+job=train.yaml", "hydra.run.dir=out", "params.lr=1e-3", "params.opt.name=adam"]
    result = erun(args, tmp_path)
    assert result.returncode == 0, result.stderr
    rank0 = seen(tmp_path / "out")
    assert rank0["argv"] == ["--lr=0.001", "--opt.name=adam"]
    assert json.loads(rank0["ERUN_PARAMS"]) == {"lr": 0.001, "opt": {"name": "adam"}}


def test_multirun_gives_each_point_its_own_directory(tmp_path: Path) -> None:
    write_recorder_job(tmp_path)
    result = erun(["-m", "+job=train.yaml", "params.lr=0.1,0.2", "hydra.sweep.dir=sweep"], tmp_path)
    assert result.returncode == 0, result.stderr
    lrs = [json.loads(seen(tmp_path / "sweep" / str(i))["ERUN_PARAMS"])["lr"] for i in (0, 1)]
    assert lrs == [0.1, 0.2]
    assert read_summary(tmp_path / "sweep" / "1")["state"].lower() == "succeeded"


def test_multirun_fails_when_any_point_fails(tmp_path: Path) -> None:
    (tmp_path / "exit.py").write_text("import sys\nsys.exit(int(sys.argv[1].split('=')[1]))\n")
    (tmp_path / "exit.yaml").write_text("entrypoint: exit.py\nparams:\n  code: 0\n")
    result = erun(["-m", "+job=exit", "params.code=0,3", "hydra.sweep.dir=sweep"], tmp_path)
    assert result.returncode == 1, result.stderr
    assert read_summary(tmp_path / "sweep" / "0")["state"].lower() == "succeeded"
    assert read_summary(tmp_path / "sweep" / "1")["state"].lower() == "failed"


def test_nproc_gpu_with_faked_devices(tmp_path: Path) -> None:
    write_recorder_job(tmp_path)
    fake = {"ERUN_FAKE_GPU_COUNT": "3"}
    assert dry_plan(["+job=train", "nproc=gpu"], tmp_path, fake)["devices"] == []
    plan = dry_plan(["+job=train", "nproc=gpu", "isolate_gpus=true"], tmp_path, fake)
    assert plan["nproc"] == 3 and plan["devices"] == ["0", "1", "2"]
    visible = dry_plan(["+job=train", "nproc=gpu", "isolate_gpus=true"], tmp_path,
                       {"CUDA_VISIBLE_DEVICES": "5,7"})
    assert visible["devices"] == ["5", "7"]
    result = erun(["+job=train", "nproc=gpu", "isolate_gpus=true", "hydra.run.dir=out"], tmp_path, fake)
    assert result.returncode == 0, result.stderr
    assert [seen(tmp_path / "out", r)["CUDA_VISIBLE_DEVICES"] for r in range(3)] == ["0", "1", "2"]


def test_a_failing_job_exits_1(tmp_path: Path) -> None:
    (tmp_path / "fail.py").write_text("raise SystemExit(4)\n")
    result = erun(["entrypoint=fail.py", "hydra.run.dir=out"], tmp_path)
    assert result.returncode == 1
    assert read_summary(tmp_path / "out")["state"].lower() == "failed"


def test_a_preset_on_the_command_line_wins_over_the_job_files_keys_of_its_group(tmp_path: Path) -> None:
    write_recorder_job(tmp_path, extra="restart:\n  max_restarts: 2\n")
    (tmp_path / "fail.py").write_text("raise SystemExit(4)\n")
    result = erun(["+job=train", "restart=never", "entrypoint=fail.py", "hydra.run.dir=out"], tmp_path)
    assert result.returncode == 1
    note = ("erun: note: restart=never on the command line wins over train.yaml's restart.max_restarts "
            "(set restart.KEY=... on the command line to change one)")
    assert result.stderr.count(note) == 1, result.stderr
    assert read_summary(tmp_path / "out")["attempts"] == 1
    assert "giving up (no restarts allowed" in result.stderr
    assert "max_restarts: 2" in (tmp_path / "train.yaml").read_text()  # the user's file is untouched
    # without a preset on the command line the job file's keys stand
    kept = erun(["+job=train", "--dry-run"], tmp_path).stdout
    assert "restart:    up to 2 times after a failure" in kept, kept


# -- the shipped examples ----------------------------------------------------------------------


def test_the_flaky_example_recovers_and_fails_without_restarts(tmp_path: Path) -> None:
    result = erun(["+job=flaky", "hydra.run.dir=ok"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert read_summary(tmp_path / "ok")["attempts"] == 2  # one restart
    assert erun(["+job=flaky", "restart=never", "hydra.run.dir=no"], tmp_path).returncode == 1


def test_the_backoff_preset_waits_and_says_why(tmp_path: Path) -> None:
    args = ["+job=flaky", "restart=backoff", "restart.backoff.jitter=0", "hydra.run.dir=out"]
    result = erun(args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rank 1 exited 3; restarting in 1.0 s (restart 1 of 10)" in result.stderr
    first, second = read_summary(tmp_path / "out")["per_attempt"]
    assert second["start"] - first["end"] >= 1.0


def test_the_call_example(tmp_path: Path) -> None:
    result = erun(["+job=call", "params.greeting=hey", "hydra.run.dir=out"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rank 1 of 2: hey" in (tmp_path / "out" / "attempt_0" / "rank_1" / "stdout.log").read_text()


def test_the_hparams_example(tmp_path: Path) -> None:
    result = erun(["+job=hparams", "params.lr=1e-3", "hydra.run.dir=out"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "lr=0.001" in (tmp_path / "out" / "attempt_0" / "rank_0" / "stdout.log").read_text()


# README's quick start, verbatim (tests/test_docs.py checks that README's block is this text).
EXAMPLE = "bash scripts/example.sh"


def clone_files() -> set[str]:
    """What git sees in the clone, ignored folders included, bytecode and .venv aside."""
    done = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=True)
    return {x for x in done.stdout.splitlines() if "__pycache__" not in x and ".venv" not in x}


@pytest.mark.slow
def test_the_ddp_example_from_the_clone_resumes_after_a_crash_and_writes_nothing_there(
        private_tmpdir: Path, no_survivors: str) -> None:
    """README's `bash scripts/example.sh`, typed in the clone (a crash added: one DDP run covers
    both): it runs outside the clone, in a temporary directory it prints first."""
    before = clone_files()
    result = subprocess.run([*EXAMPLE.split(), "params.fail_at_step=170"], cwd=REPO, env=subprocess_env(),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert clone_files() == before
    where = next(x for x in result.stderr.splitlines() if x.startswith("example: running in "))
    assert Path(where.split()[3]).parent == private_tmpdir
    out = Path(next(x for x in result.stderr.splitlines() if x.startswith("erun: run dir ")).split()[-1])
    assert out.is_relative_to(private_tmpdir)
    assert "simulated crash at step 170" in (out / "attempt_0" / "rank_1" / "stderr.log").read_text()
    resumed = (out / "attempt_1" / "rank_0" / "stdout.log").read_text()
    assert "starting at step 150 of 300" in resumed and "done: 150 steps" in resumed
    assert (out / "checkpoints" / "last.pt").exists()


@pytest.mark.parametrize("run_dir", [".", "out/fixed"])
def test_a_rerun_into_a_used_run_directory_continues_its_record(tmp_path: Path, run_dir: str) -> None:
    """`erun +job=train hydra.run.dir=DIR` twice: one record of two segments, nothing overwritten."""
    write_recorder_job(tmp_path)
    assert erun(["+job=train", f"hydra.run.dir={run_dir}"], tmp_path).returncode == 0
    out = tmp_path / run_dir
    first_logs = {p: p.read_bytes() for p in out.glob("attempt_0/rank_*/*.log")}
    again = erun(["+job=train", f"hydra.run.dir={run_dir}", "nproc=1"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert "continuing the run in this directory: segment 2, from attempt 1 (restart count 1)" in again.stderr
    assert {p: p.read_bytes() for p in first_logs} == first_logs and len(first_logs) == 4
    assert sorted(p.name for p in out.glob("attempt_1/rank_*")) == ["rank_0"]
    summary = read_summary(out)
    assert (summary["state"], summary["attempts"], summary["restarts"]) == ("SUCCEEDED", 2, 1)
    assert [(s["segment"], s["state"], s["attempts"]) for s in summary["segments"]] == [
        (1, "SUCCEEDED", [0]), (2, "SUCCEEDED", [1])]
    report = erun(["report", run_dir], tmp_path)
    assert report.returncode == 0, report.stderr
    assert "attempt 0  SUCCEEDED" in report.stdout and "attempt 1  SUCCEEDED" in report.stdout
    assert "segment 1  started" in report.stdout and "SUCCEEDED (exit 0), attempt 1" in report.stdout
    assert "<h2>Segments</h2>" in (out / "report.html").read_text()
    status = erun(["status", run_dir], tmp_path)
    assert status.returncode == 0 and status.stdout.count("segment:") == 2, status.stdout


def test_a_real_run_does_not_import_torch_in_erun(tmp_path: Path) -> None:
    write_recorder_job(tmp_path)
    result = main_without_torch(["+job=train", "hydra.run.dir=out"], tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_sweep_over_job_files(tmp_path: Path) -> None:
    write_recorder_job(tmp_path, "one")
    write_recorder_job(tmp_path, "two")
    result = erun(["-m", "+job=one.yaml,two", "hydra.sweep.dir=sweep"], tmp_path)
    assert result.returncode == 0, result.stderr
    names = [json.loads((tmp_path / "sweep" / str(i) / "plan.json").read_text())["name"] for i in (0, 1)]
    assert names == ["one", "two"]
