"""An erun job as a sweep point: its agent (`python -m runner run-plan plan.json`) in a process
of its own, on the point's slots; its record says how it ended.

A local sweep checks every point before any starts (`AgentWork.plan`: composed, its
folder chosen, compiled), and prepares each (Hydra's job: its folder, .hydra record and
callbacks' context; erun's record files) only when it is next in line while others run, or
when its slots are free: the first point does not wait for every other point's preparation,
and a later one starts without it. Its agent may be a standby interpreter started
ahead (`runner.sweep.standby`): the agent runs no user code.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from runner.paths import RunPaths, file_mode
from runner.plan import JobPlan
from runner.record.read import read_json
from runner.record.writer import write_file
from runner.sweep.points import PointState, PreparedPoint


@dataclass
class AgentWork:
    """`PointWork` for an erun job: `plan` is its compiled plan (its slots, folder and grace),
    `prepare` makes its `PreparedPoint` when it starts.

    States: checked (`prepared` None) ──`ready`: other points run, it is next in line──>
    prepared (its folder made) ──`command`: its slots are free──> started (its record written);
    `command` prepares a point not prepared yet. A point the sweep never starts has no record;
    one prepared ahead has an empty folder, which the sweep removes."""

    plan: JobPlan
    env_set: dict[str, str]  # Hydra's hydra.job.env_set for the point
    prepare: Callable[[], PreparedPoint]
    prepared: PreparedPoint | None = None
    user_code = False  # the agent runs none (its workers are fresh interpreters): it may be a standby

    @property
    def nproc(self) -> int:
        return self.plan.nproc

    @property
    def run_dir(self) -> Path:
        return Path(self.plan.run_dir)

    @property
    def grace_s(self) -> float:
        return self.plan.restart.stop_grace_s

    def environ(self) -> dict[str, str]:
        # plan.json has the secrets redacted; `erun run-plan` takes them from its environment.
        # Hydra's hydra.job.env_set reaches the agent, so its workers, as Hydra's task would see it.
        return {**self.env_set, **self.plan.secret_env()}

    def open_log(self) -> BinaryIO:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        mode = file_mode(self.plan.logs.private)
        return os.fdopen(os.open(RunPaths(self.run_dir).console_log, flags, mode), "ab")

    @property
    def is_ready(self) -> bool:
        return self.prepared is not None

    def ready(self) -> None:
        if self.prepared is None:  # checked -> prepared
            self.prepared = self.prepare()

    def command(self, slots: tuple[str, ...], gpus: bool) -> list[str]:
        self.ready()
        assert self.prepared is not None
        # No live panel: it draws on erun's terminal, which the points share.
        plan = self.prepared.plan
        plan = dataclasses.replace(plan, logs=dataclasses.replace(plan.logs, panel="off"))
        if gpus and plan.devices:
            plan = dataclasses.replace(plan, devices=slots[:plan.nproc])  # isolate_gpus: its own
        paths = RunPaths(self.run_dir)
        self.prepared.write_files()
        write_file(paths.plan, plan.to_json(), file_mode(plan.logs.private))
        return [sys.executable, "-m", "runner", "run-plan", str(paths.plan)]

    def signal(self, pid: int, signum: int) -> None:
        signal_agent(pid, signum)

    def ended(self, exit_code: int) -> PointState:
        return point_state(read_json(RunPaths(self.run_dir).summary).get("state"), exit_code)


def signal_agent(pid: int, signum: int) -> None:
    """To the agent only: it stops its workers with its own grace."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def point_state(recorded: object, exit_code: int) -> PointState:
    """The agent's recorded state; its exit status when it recorded none (it was killed)."""
    if recorded in ("SUCCEEDED", "FAILED", "INTERRUPTED"):
        return PointState(recorded)
    if exit_code == 0:
        return PointState.SUCCEEDED
    return PointState.INTERRUPTED if exit_code < 0 or exit_code > 128 else PointState.FAILED
