"""restart: from a rank's failure until every rank of the next attempt has re-initialised gloo.

The failing rank stamps `fail` just before it exits 1 (or SIGKILLs itself), STEADY_S after the
group initialised (as in training, where a failure hits a group that has run for a while; by
then erun's warm spares, `restart.prewarm`, which the `erun` launcher turns on, have imported
torch); every rank of attempt 1
stamps `init` after `init_process_group`. Under a launcher without spares (WARM names those
with) nothing depends on how long the group ran, so its rank fails EARLY_S after init instead
of waiting STEADY_S for nothing (a second or more per run). The `early` case fails right
after init, before the spares are ready: a cold restart. A restart recovers when all of them do
within the timeout (the job is then stopped: what follows is not measured). The `stubborn`
case adds a rank that ignores SIGTERM: the launcher has to wait out its stop grace (erun:
restart.stop_grace_s; torchrun: a fixed 30 s) and SIGKILL it. For erun, events.jsonl splits
out the agent's part: failure until the agent noticed it, and until it had respawned all ranks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.common import Row, last_stamp, log, read_stamps, started, wait_for_stamps, workdir, worker_script
from bench.config import BenchConfig
from bench.launchers import Job, Launcher, usable

NAME = "restart"
TITLE = "restart: rank failure until all ranks of the next attempt re-initialised gloo (ok = recovered)"
PARTS = ("failure to FAILED event (detected)", "failure to last HEALTHY of attempt 1 (respawned)")
CRASH_GRACE_S = 10.0  # erun's default stop_grace_s; nobody ignores SIGTERM in the crash cases
STEADY_S = 4.0  # erun's default restart.prewarm.after_s (2 s) + the spares' import of torch
EARLY_S = 0.2
WARM = frozenset({"erun", "erun-hydra"})  # the launchers whose restarts use warm spares


@dataclass(frozen=True)
class Failure:
    """Which rank fails and how; stubborn_rank ignores SIGTERM."""

    nproc: int
    mode: str  # "exit" | "sigkill"
    stubborn_rank: int | None = None
    steady_s: float = STEADY_S

    @property
    def case(self) -> str:
        what = "exit 1" if self.mode == "exit" else "SIGKILL"
        extra = ", rank 0 ignores SIGTERM" if self.stubborn_rank is not None else ""
        if self.steady_s < STEADY_S:
            extra += f", {self.steady_s:g} s after init (cold)"
        return f"{what} nproc={self.nproc}{extra}"

    @property
    def rank(self) -> int:
        return self.nproc - 1

    def steady_under(self, launcher: str) -> float:
        """How long the group runs before the failure: STEADY_S is for the spares to get ready,
        so a launcher without them fails at EARLY_S (its restart is the same either way)."""
        return self.steady_s if launcher in WARM else min(self.steady_s, EARLY_S)

    def args(self, out: str, launcher: str) -> tuple[str, ...]:
        args = (out, "--fail-rank", str(self.rank), "--fail-mode", self.mode,
                "--steady-s", f"{self.steady_under(launcher):g}")
        stubborn = ("--stubborn-rank", str(self.stubborn_rank)) if self.stubborn_rank is not None else ()
        return args + stubborn


@dataclass(frozen=True)
class Measured:
    value: float | None
    parts: tuple[float, float] | None = None


def agent_parts(run_dir: Path, failed_at: float) -> tuple[float, float] | None:
    try:
        events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    except (OSError, ValueError):
        return None
    states = [e for e in events if e.get("event") == "worker_state"]
    failed = [e["time"] for e in states if e.get("attempt") == 0 and e.get("state") == "FAILED"]
    spawned = [e["time"] for e in states if e.get("attempt") == 1 and e.get("state") == "HEALTHY"]
    if not failed or not spawned:
        return None
    return min(failed) - failed_at, max(spawned) - failed_at


def measure(launcher: Launcher, failure: Failure, timeout_s: float, grace_s: float) -> Measured:
    with workdir(f"restart-{launcher.name}") as work:
        out = work / "stamps"
        out.mkdir()
        job = Job(worker_script("dist.py"), failure.args(str(out), launcher.name), failure.nproc,
                  max_restarts=1, stop_grace_s=grace_s)
        command = launcher.command(job, work)
        with started(command.argv, work / "output.log", command.env) as running:
            wait_for_stamps(out, "init", 1, failure.nproc, running.start + timeout_s)
            result = running.wait(0.0)  # recovered or timed out: stop it now
        failed_at = read_stamps(out, "fail", 0).get(failure.rank)
        recovered_at = last_stamp(out, "init", 1, failure.nproc)
        if failed_at is None or recovered_at is None:
            log(f"restart {failure.case} under {launcher.name} did not recover within {timeout_s:g} s "
                f"(rc {result.returncode}):\n{result.output_tail[-800:]}")
            return Measured(None)
        parts = agent_parts(command.run_dir, failed_at) if command.run_dir else None
        return Measured(recovered_at - failed_at, parts)


def run_case(failure: Failure, launchers: list[Launcher], reps: dict[str, int], timeout_s: float,
             grace_s: float) -> list[Row]:
    rows = {ln.name: Row(NAME, failure.case, ln.name, note=ln.available() or "") for ln in launchers}
    parts = {ln.name: [Row(f"{NAME} (erun agent part)", f"{failure.case}: {what}", ln.name) for what in PARTS]
             for ln in launchers if ln.name.startswith("erun")}
    for rep in range(max(reps.values(), default=0)):
        for launcher in launchers:  # interleaved, so noise hits every launcher alike
            if launcher.available() is not None or rep >= reps[launcher.name]:
                continue
            measured = measure(launcher, failure, timeout_s, grace_s)
            rows[launcher.name].add(measured.value)
            if measured.parts is not None and launcher.name in parts:
                for row, value in zip(parts[launcher.name], measured.parts, strict=True):
                    row.add(value)
    return list(rows.values()) + [r for rs in parts.values() for r in rs if r.runs]


def crash_cases(cfg: BenchConfig) -> list[Row]:
    launchers = usable(cfg.restart_launchers)
    rows: list[Row] = []
    for index, (nproc, mode, reps) in enumerate(cfg.restart_cases):
        shared = min(reps, cfg.restart_shared_store_reps) if index < cfg.restart_shared_store_cases else 0
        failure = Failure(nproc, mode)
        log(f"restart {failure.case}")
        case_rows = run_case(failure, launchers, {ln.name: shared if ln.name == "torchrun" else reps
                                                  for ln in launchers}, cfg.restart_timeout_s, CRASH_GRACE_S)
        for row in case_rows:
            if row.launcher == "torchrun" and not row.note:
                row.note = "default shared store" + ("" if row.runs else ": not run in this mode")
        rows += case_rows
    return rows


def cold_case(cfg: BenchConfig, crash_rows: list[Row]) -> list[Row]:
    """A failure right after init: erun's spares are not ready yet, the restart is cold.
    torchrun-fresh has no spares: its runs of the crash case `exit 1` already failed at EARLY_S,
    the same command as here, so they are shown again rather than run again."""
    if cfg.restart_cold_reps == 0:
        return []
    failure = Failure(2, "exit", steady_s=EARLY_S)
    log(f"restart {failure.case}")
    same = Failure(2, "exit").case
    shared = [r for r in crash_rows if r.case == same and r.launcher == "torchrun-fresh" and r.runs]
    names = ("erun",) if shared else ("erun", "torchrun-fresh")
    launchers = usable(names)
    rows = run_case(failure, launchers, {ln.name: cfg.restart_cold_reps for ln in launchers},
                    cfg.restart_timeout_s, CRASH_GRACE_S)
    for row in shared:
        rows.append(Row(NAME, failure.case, row.launcher, values=list(row.values), runs=row.runs,
                        note=f"the runs of `{same}` (the same command)"))
    return rows


def stubborn_case(cfg: BenchConfig) -> list[Row]:
    if cfg.stubborn_reps == 0:
        return []
    launchers = usable(("erun", "torchrun-fresh"))
    reps = {"erun": cfg.stubborn_reps, "torchrun-fresh": cfg.stubborn_torchrun_reps}
    failure = Failure(2, "exit", stubborn_rank=0)
    log(f"restart {failure.case} (erun stop_grace_s={cfg.stubborn_grace_s:g})")
    rows = run_case(failure, launchers, reps, max(cfg.restart_timeout_s, 60.0), cfg.stubborn_grace_s)
    for row in rows:
        if row.launcher == "erun":
            row.note = f"stop_grace_s={cfg.stubborn_grace_s:g}"
        elif row.launcher == "torchrun-fresh":
            row.note = "fixed 30 s grace" if row.runs else "skipped: fixed 30 s grace (run without --quick)"
    return rows


def run(cfg: BenchConfig) -> list[Row]:
    crash = crash_cases(cfg)
    return crash + cold_case(cfg, crash) + stubborn_case(cfg)
