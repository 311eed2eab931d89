"""The live status panel's contents: one line for the job, one per rank.

Per rank: pid, state, CPU % and RSS of its whole process tree, age, and its last output line;
for the job: attempt, elapsed time and restarts left. Sampled with psutil when the panel is
redrawn (once a second), only when a panel is shown.
"""

from __future__ import annotations

import time

import psutil

from runner.runtime.workers import Worker, WorkerGroup


class PanelSampler:
    """Keeps psutil handles between redraws, so CPU % is measured over the last interval."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def rows(self, group: WorkerGroup, job_started: float, restart_count: int,
             max_restarts: int) -> list[str]:
        left = max(0, max_restarts - restart_count)
        header = (f"── erun ── attempt {group.attempt} · elapsed {_clock(time.time() - job_started)} · "
                  f"restarts {restart_count} (left {left}) ──")
        columns = f"{'rank':>5} {'pid':>8} {'state':<10} {'cpu%':>6} {'rss':>9} {'age':>8}  last output"
        return [header, columns, *(self._row(w) for w in group.workers)]

    def _row(self, worker: Worker) -> str:
        cpu, rss = self._sample(worker.pid) if worker.running and worker.pid else (0.0, 0)
        age = _clock((worker.end or time.time()) - worker.start) if worker.start else "-"
        spoke = [s for s in worker.streams if s.last_line]
        last = max(spoke, key=lambda s: s.last_activity).last_line if spoke else b""
        text = last.decode("utf-8", errors="replace").replace("\t", " ").strip()
        return (f"{worker.rank:>5} {worker.pid or '-':>8} {worker.state.value:<10} {cpu:>6.1f} "
                f"{_mib(rss):>9} {age:>8}  {text}")

    def _sample(self, pid: int) -> tuple[float, int]:
        try:
            root = self._procs.setdefault(pid, psutil.Process(pid))
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0, 0
        cpu, rss = 0.0, 0
        for proc in tree:
            proc = self._procs.setdefault(proc.pid, proc)
            try:
                cpu += proc.cpu_percent(None)
                rss += proc.memory_info().rss
            except psutil.Error:
                continue
        return cpu, rss


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _mib(rss: int) -> str:
    return f"{rss / 2**20:.0f} MiB"
