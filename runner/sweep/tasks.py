"""Any Hydra app's sweep on erun's launcher: each point's task function in a fresh process of
its own (`runner.sweep.child`), packed onto the node's slots (one slot a point: a CPU core, or a
GPU as the point's CUDA_VISIBLE_DEVICES) and supervised by `runner.sweep.run` as erun's own
points are: pidfds, prefixed output, Ctrl-C stops everything, nothing outlives the sweep.

As Hydra's joblib and submitit launchers do, the task function, the point's config and Hydra's
global state go to the child by value (cloudpickle); the child runs Hydra's `run_job` and sends
its JobReturn back: COMPLETED with the task's return value, or FAILED with its exception (the
traceback is also in sweep.json). A point whose process died without one (killed, a crash in C)
returns FAILED with an error naming how it ended.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from runner.devices import HostInfo
from runner.runtime import processes
from runner.sweep.points import (
    PointResult,
    PointState,
    SweepPoint,
    batch_labels,
    exit_status,
    shared_dir_error,
)
from runner.sweep.run import SweepRun
from runner.sweep.slots import SlotPool, slot_pool
from runner.sweep.summary import SweepSummary

log = logging.getLogger(__name__)

# A task gets this long to stop after SIGINT/SIGTERM (to its process group) before SIGKILL.
TASK_GRACE_S = 5.0


@dataclass(frozen=True)
class TaskWork:
    """`PointWork` for a Hydra task function: `python -m runner.sweep.child PAYLOAD RESULT`."""

    run_dir: Path
    payload: bytes
    folder: Path  # a private temporary folder for the payload and the result

    nproc = 1
    grace_s = TASK_GRACE_S
    user_code = True  # the task function: always a fresh interpreter, never a standby
    is_ready = True  # its payload is written when it starts

    def ready(self) -> None:
        pass

    def environ(self) -> dict[str, str]:
        return {}

    def open_log(self) -> None:
        return None  # the task's output goes to erun's console, prefixed; Hydra logs to the job dir

    @property
    def result_file(self) -> Path:
        return self.folder / "result.pkl"

    def command(self, slots: tuple[str, ...], gpus: bool) -> list[str]:
        source = self.folder / "payload.pkl"
        source.write_bytes(self.payload)
        return [sys.executable, "-m", "runner.sweep.child", str(source), str(self.result_file)]

    def signal(self, pid: int, signum: int) -> None:
        """To its process group: what the task started stops (or dies) with it."""
        processes.signal_group(pid, signum)

    def ended(self, exit_code: int) -> PointState:
        if exit_code < 0 or exit_code > 128:
            return PointState.INTERRUPTED
        return PointState.SUCCEEDED if exit_code == 0 and self.sent() else PointState.FAILED

    def sent(self) -> dict[str, Any] | None:
        """What the child sent back ({"job_return", "traceback"}), or None."""
        try:
            return pickle.loads(self.result_file.read_bytes())  # type: ignore[no-any-return]
        except (OSError, EOFError, pickle.UnpicklingError):
            return None


@dataclass(frozen=True)
class TaskSettings:
    """What a task sweep needs of the launcher's keys."""

    slots: int | None
    pack: str
    fail_fast: bool


class TaskSweep:
    """One launch of a Hydra app's points (a sweeper may launch several batches)."""

    def __init__(self, settings: TaskSettings, config: DictConfig, hydra_context: HydraContext,
                 task_function: TaskFunction, history: list[PointResult] | None = None) -> None:
        self.history = [] if history is None else history  # earlier batches' points (a sweeper's)
        self.settings, self.config = settings, config
        self.hydra_context, self.task_function = hydra_context, task_function
        self.pool: SlotPool = slot_pool(HostInfo.detect(os.environ), settings.slots, settings.pack)
        self.sweep_dir = Path(os.path.abspath(str(config.hydra.sweep.dir)))

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"erun is launching {len(job_overrides)} jobs on {self.pool.describe()}, "
                 f"sweep output dir: {self.sweep_dir}")
        names = batch_labels(self.history, job_overrides)
        singletons = Singleton.get_state()
        with tempfile.TemporaryDirectory(prefix="erun-tasks-") as tmp:
            points, configs = [], []
            for n, overrides in enumerate(job_overrides):
                log.info(f"\t#{initial_job_idx + n} : {' '.join(filter_overrides(overrides))}")
                config = self.point_config(initial_job_idx + n, overrides)
                folder = Path(tmp, str(n))
                folder.mkdir()
                work = TaskWork(point_dir(config), self.payload(config, singletons), folder)
                points.append(SweepPoint(initial_job_idx + n, tuple(overrides), names[n], work=work))
                configs.append(config)
            shared = shared_dir_error([*(r.point for r in self.history), *points], Path.cwd())
            if shared is not None:
                raise shared
            run = SweepRun(points, self.pool, os.environ, Path.cwd(), self.settings.fail_fast)
            results, signum = run.run()
            returns = [job_return(r, c) for r, c in zip(results, configs, strict=True)]
        self.summarise(results, signum)
        if signum is not None:
            raise SystemExit(exit_status(results, signum))  # the sweeper launches no more batches
        return returns

    def point_config(self, index: int, overrides: Sequence[str]) -> DictConfig:
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = config.hydra.job.num = index
        return config

    def payload(self, config: DictConfig, singletons: Any) -> bytes:
        blob = cloudpickle.dumps({"task_function": self.task_function, "hydra_context": self.hydra_context,
                                  "config": config, "singletons": singletons})
        return pickle.dumps({"sys_path": list(sys.path), "blob": blob})

    def summarise(self, results: list[PointResult], signum: int | None) -> None:
        self.history.extend(results)
        summary = SweepSummary(self.sweep_dir, self.pool.describe(), list(self.history),
                               exit_status(self.history, signum),
                               signal.Signals(signum).name if signum else None)
        cwd = Path.cwd()
        summary.write(cwd)
        print(f"{summary.headline()}\n{summary.table(cwd)}", file=sys.stderr, flush=True)


def point_dir(config: DictConfig) -> Path:
    """Where Hydra's run_job will put the point (computed as it does)."""
    from hydra.core.hydra_config import HydraConfig

    saved = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(config)
    try:
        subdir = str(OmegaConf.select(config, "hydra.sweep.subdir"))
        return Path(os.path.abspath(os.path.join(str(OmegaConf.select(config, "hydra.sweep.dir")), subdir)))
    finally:
        HydraConfig.instance().cfg = saved  # type: ignore[assignment]


def job_return(result: PointResult, config: DictConfig) -> JobReturn:
    """The child's JobReturn (its result and traceback also go into `result`), or a FAILED one
    saying why there is none."""
    work = result.point.work
    assert isinstance(work, TaskWork)
    sent = work.sent()
    if sent is not None:
        ret: JobReturn = sent["job_return"]
        result.error = sent["traceback"]
        if ret.status is JobStatus.COMPLETED:
            result.result = ret._return_value
        else:
            result.note = f"{type(ret._return_value).__name__}: {ret._return_value}"
        return ret
    why = how_it_ended(result)
    result.note = why
    hydra_cfg = OmegaConf.create({"hydra": OmegaConf.to_container(config.hydra, resolve=False)})
    return JobReturn(overrides=list(result.point.overrides), hydra_cfg=hydra_cfg, status=JobStatus.FAILED,
                     _return_value=RuntimeError(f"point {result.point.index} {result.point.label}: {why}"),
                     working_dir=str(work.run_dir))


def how_it_ended(result: PointResult) -> str:
    if result.state is PointState.NOT_STARTED or result.exit_code is None:
        return "not started: the sweep was stopped first"
    code = result.exit_code
    if code < 0:
        return f"its process was killed by {signal.Signals(-code).name}, before sending a result"
    return f"its process exited {code} without sending a result (see its output above)"
