"""The metrics, one module each. A metric module defines NAME, TITLE, `run(cfg) -> list[Row]`
and optionally PENDING (why it cannot be measured yet; printed as "not yet measured").

To add a metric: write bench/<metric>.py with those names and list it in METRICS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from bench import api, launch, multinode, overhead, restart, scale, slurm, slurm_preempt, sweep
from bench.common import Row
from bench.config import BenchConfig


@dataclass(frozen=True)
class Metric:
    name: str
    title: str
    run: Callable[[BenchConfig], list[Row]]
    pending: str | None = None

    @classmethod
    def of(cls, module: ModuleType) -> Metric:
        return cls(module.NAME, module.TITLE, module.run, getattr(module, "PENDING", None))


METRICS: tuple[Metric, ...] = tuple(
    Metric.of(m) for m in (launch, restart, overhead, multinode, sweep, scale, api, slurm, slurm_preempt))
BY_NAME = {m.name: m for m in METRICS}
