"""sweep: time to run a Hydra multirun (-m) of small jobs. A hook, not measured yet.

To add it: measure with the same `Row`s as bench/launch.py, set PENDING to None and list the
targets in bench/targets.py.
"""

from __future__ import annotations

from bench.common import Row
from bench.config import BenchConfig

NAME = "sweep"
TITLE = "sweep: a multirun of small jobs, erun -m vs a loop of torchrun"
PENDING: str | None = "not yet measured: needs sweeps (issue 6)"


def run(cfg: BenchConfig) -> list[Row]:
    return []
