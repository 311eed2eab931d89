"""Secrets in `env:` reach the workers exactly but are redacted everywhere erun writes or prints
them (job.yaml, plan.json, .hydra/, --dry-run, erun report, report.html); the run directory is
the user's only. Real erun processes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from erun_cli import erun

from runner.plan import REDACTED

pytestmark = pytest.mark.usefixtures("no_survivors")

FILE_SECRET = "sk-file-0123456789"
LINE_SECRET = "hf-line-9876543210"
WORKER = 'printf "%s %s" "$WANDB_API_KEY" "$HF_TOKEN" > "$SEEN"\n'


def job(folder: Path, extra: str = "") -> Path:
    (folder / "w.sh").write_text(WORKER)
    (folder / "j.yaml").write_text(f"exec: /bin/sh\nargs: [w.sh]\nenv:\n  WANDB_API_KEY: {FILE_SECRET}\n"
                                   f"  PLAIN: visible\n{extra}")
    return folder


def files_with(folder: Path, needle: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_secrets_reach_the_workers_and_nothing_erun_writes_or_prints(tmp_path: Path) -> None:
    seen, run_dir = tmp_path / "seen", tmp_path / "run"
    args = ["+job=j.yaml", f"env.HF_TOKEN={LINE_SECRET}", f"hydra.run.dir={run_dir}"]
    done = erun(args, job(tmp_path), env={"SEEN": str(seen)})
    assert done.returncode == 0, done.stderr
    assert seen.read_text() == f"{FILE_SECRET} {LINE_SECRET}"  # the workers' environment is exact
    report = erun(["report", str(run_dir)], tmp_path)
    dry = erun([*args[:2], "--dry-run"], tmp_path)
    dry_json = erun([*args[:2], "--dry-run=json"], tmp_path)
    for secret in (FILE_SECRET, LINE_SECRET):
        assert files_with(run_dir, secret) == []
        for output in (done, report, dry, dry_json):
            assert secret not in output.stdout + output.stderr
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["env"] == {"WANDB_API_KEY": REDACTED, "HF_TOKEN": REDACTED, "PLAIN": "visible"}
    assert "PLAIN=visible" in dry.stdout and REDACTED in dry.stdout
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    for name in ("plan.json", "job.yaml", "events.jsonl", "summary.json", "report.html", ".hydra/hydra.yaml"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600, name


def test_run_plan_of_a_redacted_plan_says_so_or_takes_the_secrets_from_its_environment(
        tmp_path: Path) -> None:
    seen, run_dir = tmp_path / "seen", tmp_path / "run"
    first = erun(["+job=j.yaml", f"hydra.run.dir={run_dir}"], job(tmp_path), env={"SEEN": str(seen)})
    assert first.returncode == 0, first.stderr
    seen.unlink()
    plan = str(run_dir / "plan.json")
    again = erun(["run-plan", plan, "--run-dir", str(tmp_path / "again")], tmp_path, env={"SEEN": str(seen)})
    assert again.returncode == 2 and not seen.exists()
    assert again.stderr.count("\n") == 1
    assert "env.WANDB_API_KEY" in again.stderr and "redacted" in again.stderr
    env = {"SEEN": str(seen), "WANDB_API_KEY": "from-the-shell"}
    third = erun(["run-plan", plan, "--run-dir", str(tmp_path / "third")], tmp_path, env=env)
    assert third.returncode == 0, third.stderr
    assert seen.read_text().startswith("from-the-shell")


def test_redact_and_logs_private_are_the_users_to_choose(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["+job=j.yaml", "redact=[]", "logs.private=false", f"hydra.run.dir={run_dir}"]
    done = erun(args, job(tmp_path), env={"SEEN": str(tmp_path / "seen")})
    assert done.returncode == 0, done.stderr
    assert json.loads((run_dir / "plan.json").read_text())["env"]["WANDB_API_KEY"] == FILE_SECRET
    assert stat.S_IMODE(run_dir.stat().st_mode) != 0o700


def test_a_sweep_writes_no_secret_and_keeps_its_points_private(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["+job=j.yaml", "-m", "role=a,b", f"env.HF_TOKEN={LINE_SECRET}", f"hydra.sweep.dir={sweep}"]
    done = erun(args, job(tmp_path), env={"SEEN": str(tmp_path / "seen")})
    assert done.returncode == 0, done.stderr
    report = erun(["report", str(sweep)], tmp_path)
    for secret in (FILE_SECRET, LINE_SECRET):
        assert files_with(sweep, secret) == []
        assert secret not in done.stdout + done.stderr + report.stdout + report.stderr
    for point in ("0", "1"):
        assert stat.S_IMODE((sweep / point).stat().st_mode) == 0o700
        assert stat.S_IMODE((sweep / point / "console.log").stat().st_mode) == 0o600
