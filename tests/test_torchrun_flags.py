"""`erun torchrun`: every torchrun 2.13 flag and PET_ variable, names YAML or Hydra would misread,
and bad values named by their flag. Real `erun` processes (and their workers) throughout."""

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
from erun_cli import erun

from runner import torchrun
from runner.torchrun import job_file_stem, parser

pytestmark = pytest.mark.usefixtures("no_survivors", "private_tmpdir")

# As torch's launcher test's bin/test_script.sh: each rank touches a file named after its rank.
TOUCH = '#!/bin/bash\ntouch "$1/$RANK"\n'


def touch_script(tmp_path: Path) -> tuple[Path, Path]:
    script, out = tmp_path / "touch.sh", tmp_path / "touched"
    script.write_text(TOUCH)
    script.chmod(0o755)
    out.mkdir()
    return script, out


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_every_flag_of_torchrun_help_is_accepted() -> None:
    shown = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--help"], capture_output=True,
                           text=True, timeout=120, env=subprocess_env())
    assert shown.returncode == 0, shown.stderr
    theirs = {flag for line in shown.stdout.splitlines() if (m := re.match(r"  (-\S.*?)(?:\s{2,}|$)", line))
              for flag in re.findall(r"(?:^|, )(--?[\w-]+)", m.group(1))}
    ours = set(parser({})._option_string_actions)
    assert len(theirs) > 50 and theirs <= ours, sorted(theirs - ours)


def test_pet_variables_as_torchs_launcher_test_sets_them(tmp_path: Path) -> None:
    script, out = touch_script(tmp_path)
    pet = {"PET_NPROC_PER_NODE": "4", "PET_NO_PYTHON": "1", "PET_MONITOR_INTERVAL": "1",
           "PET_START_METHOD": "spawn", "PET_MODULE": "0"}
    result = erun(["torchrun", str(script), str(out)], tmp_path, env=pet)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["0", "1", "2", "3"]
    assert one_line_error(erun(["torchrun", str(script), str(out)], tmp_path, env={**pet, "PET_MODULE": "1"}))


def test_a_flag_on_the_command_line_wins_over_its_pet_variable(tmp_path: Path) -> None:
    script, out = touch_script(tmp_path)
    env = {"PET_NPROC_PER_NODE": "4", "PET_NO_PYTHON": "1"}
    result = erun(["torchrun", "--nproc_per_node=2", str(script), str(out)], tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["0", "1"]


NAMES = ["train(v2).py", "true", "null", "1", "a=b,c.py", "[x].py", "it's \"q\".py", "${x}.py", "{a: 1}"]


@pytest.mark.parametrize("name", NAMES)
def test_scripts_named_like_yaml_or_hydra_syntax_run(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("import sys; print('ran', sys.argv[1:])\n")
    result = erun(["torchrun", name, "true", "1e-3"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ran ['true', '1e-3']" in result.stdout.splitlines()  # raw, as torchrun prints it
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", job_file_stem(Path(name).stem))


def test_no_python_true_runs_the_program_true(tmp_path: Path) -> None:
    result = erun(["torchrun", "--nproc-per-node", "2", "--no-python", "true"], tmp_path)
    assert result.returncode == 0, result.stderr


def dry_plan(tmp_path: Path, *argv: str) -> dict[str, Any]:
    (tmp_path / "t.py").write_text("")
    result = erun(["torchrun", "--dry-run=json", *argv], tmp_path)
    assert result.returncode == 0, result.stderr
    plan: dict[str, Any] = json.loads(result.stdout)
    return plan


C10D = ["--nnodes=1:2", "--rdzv-backend=c10d", "--rdzv-endpoint=localhost:29999"]


def test_rdzv_conf_in_quotes_as_torchs_own_test_passes_it(tmp_path: Path) -> None:
    plan = dry_plan(tmp_path, *C10D, "--rdzv-conf='join_timeout=5,last_call_timeout=1,timeout=5'", "t.py")
    assert plan["rdzv"]["settings"] == {"join_timeout": 5, "last_call_timeout": 1, "timeout": 5}
    plan = dry_plan(tmp_path, *C10D, '--rdzv_conf="timeout=5"', "t.py")
    assert plan["rdzv"]["settings"] == {"timeout": 5}


def test_flags_with_an_erun_meaning(tmp_path: Path) -> None:
    plan = dry_plan(tmp_path, *C10D, "--local-addr=10.1.2.3", "--shutdown-timeout=7", "t.py")
    assert plan["rdzv"]["settings"] == {"local_addr": "10.1.2.3"} and plan["restart"]["stop_grace_s"] == 7
    env = {"TORCH_ELASTIC_SHUTDOWN_TIMEOUT": "4"}  # torchrun's fallback for --shutdown-timeout
    result = erun(["torchrun", "--dry-run=json", "t.py"], tmp_path, env=env)
    assert json.loads(result.stdout)["restart"]["stop_grace_s"] == 4
    # --virtual-local-rank as torch 2.13 maps it, GPUs or not (tests/test_torchrun_dropin.py runs both)
    argv = ["torchrun", "--dry-run=json", "--nproc-per-node=2", "--virtual-local-rank", "t.py"]
    plan = json.loads(erun(argv, tmp_path, env={"CUDA_VISIBLE_DEVICES": "7,2,4"}).stdout)
    assert plan["devices"] == ["7", "2"] and plan["virtual_local_rank"] is True
    short = one_line_error(erun(argv, tmp_path, env={"CUDA_VISIBLE_DEVICES": "0"}))  # 1 entry, 2 workers
    assert "`--virtual-local-rank` needs one CUDA_VISIBLE_DEVICES entry per worker" in short


def test_flags_erun_cannot_honour_run_with_one_note_each(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("print('ok')\n")
    flags = ["--signals-to-handle=SIGTERM,SIGUSR1,SIGQUIT", "--duplicate-stdout-filters=loss,acc",
             "--duplicate_stderr_filters", "err", "--numa-binding=node", "--virtual-local-rank",
             "--local-addr=127.0.0.1", "--event-log-handler=console", "--master-port=29511"]
    result = erun(["torchrun", *flags, "t.py"], tmp_path, env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("erun: note: ")]
    for text in ("--signals-to-handle: erun does not handle SIGQUIT",
                 "--local-addr ignored", "--event-log-handler ignored",
                 "--master-port ignored"):
        assert sum(text in n for n in notes) == 1, (text, notes)
    assert len(notes) == 4  # the --duplicate-*-filters are honoured (tests/test_torchrun_conformance.py)
    # the agent, which binds, says once why it cannot here (tests/runtime/test_numa.py binds)
    assert result.stderr.count("erun: numa_binding=node not applied, workers run unbound: 0 GPU(s)") == 1


@pytest.mark.parametrize("argv,flag", [
    (["--nproc-per-node", "unknown", "t.py"], "`--nproc-per-node` is `unknown`"),
    (["--nnodes", "x", "t.py"], "`--nnodes` is `x`"),
    (["--role", "", "t.py"], "`--role` is empty"),
    (["--nnodes", "2", "--rdzv-endpoint", "bad host:x", "t.py"], "`--rdzv-endpoint`"),
    ([*C10D, "--rdzv-conf", "join_timeout=-3", "t.py"], "`--rdzv-conf` join_timeout"),
    (["--max-restarts", "-1", "t.py"], "`--max-restarts` is -1"),
    (["--shutdown-timeout", "soon", "t.py"], "--shutdown-timeout"),
    (["--start-method", "thread", "t.py"], "--start-method"),
    (["--signals-to-handle", "SIGNOPE", "t.py"], "`--signals-to-handle` has `SIGNOPE`"),
    (["--rdzv-backend", "zk", "--nnodes", "2", "t.py"], "`--rdzv-backend` is `zk`"),
])
def test_an_invalid_value_names_its_flag_never_a_temporary_file(tmp_path: Path, argv: list[str],
                                                                flag: str) -> None:
    (tmp_path / "t.py").write_text("")
    stderr = one_line_error(erun(["torchrun", *argv], tmp_path))
    assert flag in stderr and "erun-torchrun-" not in stderr and ".yaml" not in stderr, stderr


def test_a_missing_script_is_named_without_the_temporary_job_folder(tmp_path: Path) -> None:
    stderr = one_line_error(erun(["torchrun", "missing.py"], tmp_path))
    assert "missing.py does not exist" in stderr and "erun-torchrun-" not in stderr, stderr


def test_an_unknown_logs_specs_is_refused_as_torchrun_refuses_it(tmp_path: Path) -> None:
    stderr = one_line_error(erun(["torchrun", "--logs-specs", "nope", "t.py"], tmp_path))
    assert "`--logs-specs` is `nope`: no entry point torchrun.logs_specs[nope]" in stderr
    theirs = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--logs-specs", "nope", "t.py"],
                            cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert theirs.returncode != 0 and "torchrun.logs_specs[nope]" in theirs.stderr


def test_bad_pet_values_name_the_variable(tmp_path: Path) -> None:
    assert "`PET_NO_PYTHON` is `yes`" in one_line_error(erun(["torchrun", "t.py"], tmp_path,
                                                             env={"PET_NO_PYTHON": "yes"}))
    bad_int = erun(["torchrun", "t.py"], tmp_path, env={"PET_MAX_RESTARTS": "z"})
    assert "--max-restarts" in one_line_error(bad_int)




def test_without_log_dir_nothing_is_written_where_it_runs(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("print('ok')\n")
    result = erun(["torchrun", "--nproc-per-node=2", "t.py"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.py"]
    record = Path(re.findall(r"run dir (\S+)", result.stderr)[-1])
    try:
        assert record.name.startswith("erun-torchrun-run-") and (record / "attempt_0" / "rank_1").is_dir()
    finally:
        shutil.rmtree(record)
    refused = erun(["torchrun", "--role", "", "t.py"], tmp_path)  # refused: no empty folder left either
    assert refused.returncode == 2 and "erun-torchrun-run-" not in refused.stderr


@pytest.mark.parametrize("text,needles", [
    ("apple,orange", ["apple", "orange"]), ("a,,b,c", ["a,b", "c"]), ("", [""]), ("x,", ["x", ""]),
    (",,,,", [",,"]), ("a,,,b", ["a,", "b"]),
])
def test_duplicate_filters_split_as_torchrun_splits_them(text: str, needles: list[str]) -> None:
    from torch.distributed.run import get_args_parser

    assert torchrun.comma_list(text) == needles
    theirs = get_args_parser().parse_args(["--duplicate-stdout-filters", text, "t.py"])
    assert theirs.duplicate_stdout_filters == needles


def test_duplicate_filters_map_to_the_job_key_for_teed_streams(tmp_path: Path) -> None:
    """torch: a filtered file for each stream given filters, with lines from the teed ranks only
    (a stream not teed gets an empty file: []); filters stay text as typed in the job file."""
    argv = ["--tee", "1", "--duplicate-stdout-filters", "1e-3,true,${x}", "--duplicate_stderr_filters", "e",
            "t.py"]
    job = torchrun.to_job(torchrun.parser({}).parse_args(argv))
    assert job["logs"]["duplicate_filters"] == {"stdout": ["1e-3", "true", "${x}"], "stderr": []}
    plain = torchrun.to_job(torchrun.parser({}).parse_args(["t.py"]))
    assert "duplicate_filters" not in plain.get("logs", {})
    (tmp_path / "t.py").write_text("")
    plan = json.loads(erun(["torchrun", "--dry-run=json", *argv], tmp_path).stdout)
    logs = plan["logs"]
    assert (logs["duplicate_stdout"], logs["duplicate_stderr"]) == (["1e-3", "true", "${x}"], [])
    env = {"PET_DUPLICATE_STDOUT_FILTERS": "a,,b", "PET_TEE": "3"}
    job = torchrun.to_job(torchrun.parser(env).parse_args(["t.py"]))
    assert job["logs"]["duplicate_filters"] == {"stdout": ["a,b"]}
