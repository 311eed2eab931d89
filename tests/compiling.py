"""Helpers for tests that compile job configs without Hydra's command line (no processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from runner.config.compile import compile_job
from runner.config.schema import JobConf
from runner.config.sources import CompileContext
from runner.devices import HostInfo
from runner.plan import JobPlan

CPU_HOST = HostInfo(cpus=4, gpus=(), gpu_source="test: no GPU")
GPU_HOST = HostInfo(cpus=4, gpus=("0", "1", "2"), gpu_source="test")


def ctx(tmp_path: Path, host: HostInfo = CPU_HOST, **fields: Any) -> CompileContext:
    return CompileContext(run_dir=str(tmp_path / "run"), run_id="r1", cwd=str(tmp_path), host=host, **fields)


def compile_(tmp_path: Path, host: HostInfo = CPU_HOST, context: CompileContext | None = None,
             **keys: Any) -> JobPlan:
    """Compile JobConf with `keys` merged in (as Hydra would), a script train.py in tmp_path."""
    (tmp_path / "train.py").touch()
    cfg = OmegaConf.merge(OmegaConf.structured(JobConf), {"entrypoint": "train.py", **keys})
    return compile_job(cfg, context or ctx(tmp_path, host))
