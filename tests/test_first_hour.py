"""What a new user meets first, as real `erun` processes: --help and --version, the run directory
named after the job and printed when it starts, a job file as the first word, torchrun-style
flags, a preset on the command line against the job file's keys, and a usage error that is not
restarted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from erun_cli import erun, write_recorder_job

from runner import __version__
from runner.cli import SUBCOMMAND_HELP, SUBCOMMANDS

pytestmark = pytest.mark.usefixtures("no_survivors")


def test_help_lists_every_subcommand_besides_hydras_help(tmp_path: Path) -> None:
    assert set(SUBCOMMAND_HELP) == set(SUBCOMMANDS)
    result = erun(["--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "== Presets" in result.stdout and "== Subcommands" in result.stdout
    for name in SUBCOMMANDS:
        assert re.search(rf"^  erun {name} .*\S$", result.stdout, re.M), name


def test_version_names_erun_and_hydra(tmp_path: Path) -> None:
    result = erun(["--version"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"erun {__version__}" and re.fullmatch(r"Hydra \d+\.\d+\.\d+\S*", lines[1]), lines


def test_the_run_directory_is_named_after_the_job_and_printed_first(tmp_path: Path) -> None:
    write_recorder_job(tmp_path)
    result = erun(["+job=train.yaml", "name=crashy"], tmp_path)
    assert result.returncode == 0, result.stderr
    [run_dir] = (tmp_path / "outputs").glob("*/*")
    assert run_dir.name.endswith("_crashy"), run_dir
    first = result.stderr.splitlines()[0]
    assert first == f"erun: run dir {run_dir}", result.stderr


def test_the_job_files_own_name_names_the_run_directory(tmp_path: Path) -> None:
    write_recorder_job(tmp_path, extra="name: my run\n")
    assert erun(["+job=train.yaml"], tmp_path).returncode == 0
    [run_dir] = (tmp_path / "outputs").glob("*/*")
    assert run_dir.name.endswith("_my_run"), run_dir


# -- what a user types first -------------------------------------------------------------------


def test_a_job_file_as_the_first_word_runs_as_job(tmp_path: Path) -> None:
    write_recorder_job(tmp_path)
    result = erun(["train.yaml", "nproc=1"], tmp_path)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "+job=train.yaml" in line]
    assert notes == ["erun: note: running train.yaml as +job=train.yaml (a job file is given as +job=FILE)"]
    assert len(list((tmp_path / "outputs").glob("*/*/seen_0.json"))) == 1


@pytest.mark.parametrize("args,text", [
    (["trian.yaml"], "trian.yaml is not a job file erun can find (looked in ., ./conf/job and erun's "
                     "shipped jobs); did you mean +job=train.yaml?"),
    (["+job=train.yaml", "--lr=0.01"], "unknown flag --lr=0.01; the job's own values go under params: "
                                       "params.lr=0.01 (your script gets --lr=...)"),
    (["+job=train.yaml", "--lr", "0.01"], "params.lr=0.01"),
    (["+job=train.yaml", "--nproc=4"], "erun's job keys take no dashes: nproc=4"),
    (["+job=train.yaml", "--dry-rn"], "did you mean `--dry-run`?"),
])
def test_first_tries_get_a_one_line_fix(tmp_path: Path, args: list[str], text: str) -> None:
    write_recorder_job(tmp_path)
    result = erun(args, tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("erun: error: command line: ") and text in result.stderr, result.stderr


# -- a usage error is not restarted ------------------------------------------------------------

ARGPARSE_SCRIPT = "import argparse\np = argparse.ArgumentParser()\np.add_argument('--lr')\np.parse_args()\n"


def test_a_usage_error_is_not_restarted_and_the_console_says_how_to(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(ARGPARSE_SCRIPT)
    (tmp_path / "train.yaml").write_text("entrypoint: train.py\nnproc: 2\nrestart:\n  max_restarts: 3\n"
                                         "params:\n  lr: 0.1\n")
    result = erun(["+job=train.yaml", "params.lrr=0.01", "hydra.run.dir=typo"], tmp_path)
    assert result.returncode == 1, result.stderr
    assert "unrecognized arguments: --lrr=0.01" in result.stderr
    said = re.search(r"exited 2; giving up \(a usage error: exit status 2 [\d.]+ s into the first "
                     r"attempt, which a restart would only repeat; to restart it anyway, set "
                     r"restart.rules='\[\{exit_codes:\[2\],action:restart\}\]'\)", result.stderr)
    assert said, result.stderr
    assert "1 attempt(s), 0 restart(s)" in result.stderr
    ruled = erun(["+job=train.yaml", "params.lrr=0.01", "restart.max_restarts=1", "hydra.run.dir=ruled",
                  "restart.rules=[{exit_codes:[2],action:restart}]"], tmp_path)
    assert ruled.returncode == 1 and "2 attempt(s), 1 restart(s)" in ruled.stderr, ruled.stderr
