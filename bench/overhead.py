"""agent overhead: the agent's own CPU time (user+sys, children excluded) and peak RSS.

A run of 4 workers that only sleep; the agent process is sampled with psutil (for torchrun,
torchrun's own process, which is its agent). CPU is read once more after the agent exits,
before it is reaped (a zombie keeps its times), so the whole life is counted. `idle` is the
CPU spent from the moment every worker runs until the agent exits: pure supervision.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.common import Row, log, read_stamps, started, workdir, worker_script
from bench.config import BenchConfig
from bench.launchers import Job, Launcher, usable

NAME = "overhead"
TITLE = "agent overhead: the agent's own CPU (user+sys, children excluded) and peak RSS, 4 sleeping workers"
NPROC = 4
SAMPLE_S = 0.05


@dataclass
class Usage:
    cpu_total: float = 0.0
    cpu_at_ready: float | None = None
    peak_rss: int = 0

    @property
    def cpu_idle(self) -> float | None:
        return None if self.cpu_at_ready is None else self.cpu_total - self.cpu_at_ready


def own_cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def peak_rss(pid: int) -> int:
    """VmHWM: the kernel's own high-water mark of the resident set, in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def exited(pid: int) -> bool:
    """True once pid has exited; it is not reaped (WNOWAIT), so its times stay readable."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None


def sample(pid: int, out: Path, deadline: float) -> Usage:
    proc, usage = psutil.Process(pid), Usage()
    while time.time() < deadline:
        done = exited(pid)
        usage.cpu_total = own_cpu(proc)
        if done:
            break
        usage.peak_rss = max(usage.peak_rss, peak_rss(pid))
        if usage.cpu_at_ready is None and len(read_stamps(out, "start", 0)) == NPROC:
            usage.cpu_at_ready = usage.cpu_total
        time.sleep(SAMPLE_S)
    return usage


def measure(launcher: Launcher, cfg: BenchConfig) -> Usage | None:
    with workdir(f"overhead-{launcher.name}") as work:
        out = work / "stamps"
        out.mkdir()
        job = Job(worker_script("sleeper.py"), (str(out), str(cfg.overhead_s)), NPROC)
        command = launcher.command(job, work)
        with started(command.argv, work / "output.log", command.env) as running:
            usage = sample(running.pid, out, running.start + cfg.overhead_s + 60.0)
            result = running.wait(time.time() + 5.0)
        if not result.ok or usage.cpu_idle is None:
            log(f"overhead under {launcher.name} failed (rc {result.returncode}):\n{result.output_tail}")
            return None
        return usage


def run(cfg: BenchConfig) -> list[Row]:
    log(f"overhead: {NPROC} workers sleeping {cfg.overhead_s:g} s")
    case = f"{NPROC} workers sleeping {cfg.overhead_s:g} s"
    rows: dict[str, list[Row]] = {}
    for _ in range(cfg.overhead_reps):
        for launcher in usable(cfg.overhead_launchers):
            mine = rows.setdefault(launcher.name, [
                Row(NAME, f"{case}: CPU total", launcher.name, note=launcher.available() or ""),
                Row(NAME, f"{case}: CPU idle supervision", launcher.name, note=launcher.available() or ""),
                Row(NAME, f"{case}: peak RSS", launcher.name, unit="MiB", note=launcher.available() or ""),
            ])
            if launcher.available() is not None:
                continue
            usage = measure(launcher, cfg)
            mine[0].add(usage.cpu_total if usage else None)
            mine[1].add(usage.cpu_idle if usage else None)
            mine[2].add(usage.peak_rss / 2**20 if usage else None)
    return [row for rs in rows.values() for row in rs]
