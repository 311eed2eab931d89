"""A real torchrun of this interpreter, and the worker environments it and erun give (for the
contract tests that compare them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO, WORKERS, subprocess_env

# Values that must differ between two launches, or where erun differs by design.
PER_LAUNCH = {"MASTER_PORT", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_ERROR_FILE"}
BY_DESIGN = {
    "TORCHELASTIC_USE_AGENT_STORE",  # erun: "False", the workers' rank 0 hosts a fresh store
    "OMP_NUM_THREADS",  # erun: cores / nproc, torchrun: 1
}


def torchrun_argv() -> list[str]:
    """torchrun of this interpreter (a `torchrun` on PATH may be another Python's, or a shim
    that adds variables of its own)."""
    return [sys.executable, "-m", "torch.distributed.run"]


def dump_with_torchrun(out: Path, nproc: int) -> None:
    env = subprocess_env()
    env.pop("OMP_NUM_THREADS", None)
    argv = [*torchrun_argv(), "--nproc-per-node", str(nproc), str(WORKERS / "dump_env.py"), str(out)]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def load_envs(out: Path, nproc: int) -> list[dict[str, str]]:
    return [json.loads((out / f"env_{rank}.json").read_text()) for rank in range(nproc)]
