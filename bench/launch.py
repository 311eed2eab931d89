"""launch: from the start of the command until every rank runs / has initialised gloo.

Trivial workers (no torch) stamp wall-clock time as their first act; torch workers stamp it
after `init_process_group("gloo")`. The value is the latest stamp minus the time just before
the command started. For erun, the run record (events.jsonl) also splits out the agent's own
part: command start to the agent's first event (interpreter, imports, Hydra), and its spawn
loop (group INIT to the last rank's HEALTHY).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.common import Row, last_stamp, log, run_command, workdir, worker_script
from bench.config import BenchConfig
from bench.launchers import Job, Launcher, usable

NAME = "launch"
TITLE = "launch: command start until every rank runs (trivial) / has initialised gloo (torch)"


@dataclass(frozen=True)
class Workload:
    kind: str  # "trivial" | "torch"
    script: str
    stamp: str

    def case(self, nproc: int) -> str:
        return f"{self.kind} nproc={nproc}" if self.kind == "trivial" else f"torch init nproc={nproc}"


TRIVIAL = Workload("trivial", "trivial.py", "start")
TORCH = Workload("torch", "dist.py", "init")


@dataclass(frozen=True)
class AgentPart:
    """erun's own share of a launch, from its events.jsonl (wall-clock times)."""

    to_first_event: float
    spawn_loop: float
    to_last_spawn: float


def agent_part(run_dir: Path, start: float) -> AgentPart | None:
    try:
        events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    except (OSError, ValueError):
        return None
    init = [e["time"] for e in events if e.get("event") == "group_state" and e.get("state") == "INIT"]
    spawned = [e["time"] for e in events if e.get("event") == "worker_state"
               and e.get("state") == "HEALTHY" and e.get("attempt") == 0]
    if not events or not init or not spawned:
        return None
    return AgentPart(events[0]["time"] - start, max(spawned) - init[0], max(spawned) - start)


def measure(launcher: Launcher, load: Workload, nproc: int,
            cfg: BenchConfig) -> tuple[float | None, AgentPart | None]:
    with workdir(f"launch-{launcher.name}") as work:
        out = work / "stamps"
        out.mkdir()
        command = launcher.command(Job(worker_script(load.script), (str(out),), nproc), work)
        result = run_command(command.argv, work / "output.log", cfg.launch_timeout_s, command.env)
        value = last_stamp(out, load.stamp, 0, nproc)
        if not result.ok or value is None:
            log(f"launch {load.case(nproc)} under {launcher.name} failed (rc {result.returncode}, "
                f"timed out {result.timed_out}):\n{result.output_tail}")
            return None, None
        part = agent_part(command.run_dir, result.start) if command.run_dir else None
        return value - result.start, part


PARTS = ("command start to first event", "spawn loop (INIT to last HEALTHY)", "command start to last spawn")


def part_rows(launcher: Launcher, case: str) -> list[Row]:
    return [Row("launch (erun agent part)", f"{case}: {what}", launcher.name) for what in PARTS]


def run_case(load: Workload, nproc: int, reps: int, cfg: BenchConfig) -> list[Row]:
    launchers = usable(cfg.launch_launchers)
    rows = {ln.name: Row(NAME, load.case(nproc), ln.name, note=ln.available() or "") for ln in launchers}
    parts = {ln.name: part_rows(ln, load.case(nproc)) for ln in launchers if ln.name.startswith("erun")}
    for _ in range(reps):
        for launcher in launchers:  # interleaved, so noise hits every launcher alike
            if launcher.available() is not None:
                continue
            value, part = measure(launcher, load, nproc, cfg)
            rows[launcher.name].add(value)
            if part is not None and launcher.name in parts:
                for row, v in zip(parts[launcher.name], (part.to_first_event, part.spawn_loop,
                                                          part.to_last_spawn), strict=True):
                    row.add(v)
    return list(rows.values()) + [r for rs in parts.values() for r in rs if r.runs]


def run(cfg: BenchConfig) -> list[Row]:
    rows: list[Row] = []
    plan = ((TRIVIAL, cfg.launch_trivial_nprocs, cfg.launch_reps),
            (TORCH, cfg.launch_torch_nprocs, cfg.launch_torch_reps))
    for load, nprocs, reps in plan:
        for nproc in nprocs:
            log(f"launch {load.case(nproc)}")
            rows += run_case(load, nproc, reps, cfg)
    return rows
