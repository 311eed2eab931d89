"""Helpers for tests that run `erun` (as `python -m runner`) in a scratch directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import subprocess_env

# A worker that records what it was given: argv, the erun variables, its rank's device.
RECORDER = '''\
import json, os, sys
seen = {"argv": sys.argv[1:], "cwd": os.getcwd()}
for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "ERUN_PARAMS", "ERUN_CONFIG", "ERUN_RUN_DIR",
             "CUDA_VISIBLE_DEVICES", "TORCHELASTIC_RESTART_COUNT", "FOO"):
    seen[name] = os.environ.get(name)
if seen["ERUN_CONFIG"]:
    seen["config"] = open(seen["ERUN_CONFIG"]).read()
out = os.path.join(os.environ["ERUN_RUN_DIR"], f"seen_{os.environ['RANK']}.json")
with open(out, "w") as f:
    json.dump(seen, f)
'''


def erun(args: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`erun ARGS` in `cwd`, with the repository importable; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], cwd=cwd, env=subprocess_env(env),
        capture_output=True, text=True, timeout=timeout,
    )


def write_recorder_job(folder: Path, name: str = "train", extra: str = "") -> Path:
    """folder/NAME.py (the recorder) and folder/NAME.yaml running it with nproc 2."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(RECORDER)
    job = folder / f"{name}.yaml"
    job.write_text(f"entrypoint: {name}.py\nnproc: 2\nparams:\n  lr: 0.1\n{extra}")
    return job
