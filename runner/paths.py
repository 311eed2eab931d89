"""Every file a run writes, in one place (as submitit's JobPaths)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunPaths:
    """The run directory's layout:

        run_dir/plan.json            the compiled plan
        run_dir/events.jsonl         state changes, one JSON object a line
        run_dir/summary.json         the outcome (written at the end, updated per attempt)
        run_dir/attempt_N/rank_R/    stdout.log, stderr.log, error.json (torch's @record),
                                     heartbeat (touched by runner.heartbeat())
        run_dir/timer.fifo           torch FileTimerClient requests (when file timers are on)
    """

    run_dir: Path

    @property
    def plan(self) -> Path:
        return self.run_dir / "plan.json"

    @property
    def events(self) -> Path:
        return self.run_dir / "events.jsonl"

    @property
    def summary(self) -> Path:
        return self.run_dir / "summary.json"

    def rank_dir(self, attempt: int, rank: int) -> Path:
        return self.run_dir / f"attempt_{attempt}" / f"rank_{rank}"

    def stdout(self, attempt: int, rank: int) -> Path:
        return self.rank_dir(attempt, rank) / "stdout.log"

    def stderr(self, attempt: int, rank: int) -> Path:
        return self.rank_dir(attempt, rank) / "stderr.log"

    def error_file(self, attempt: int, rank: int) -> Path:
        return self.rank_dir(attempt, rank) / "error.json"

    def heartbeat(self, attempt: int, rank: int) -> Path:
        return self.rank_dir(attempt, rank) / "heartbeat"

    @property
    def timer_fifo(self) -> Path:
        return self.run_dir / "timer.fifo"
