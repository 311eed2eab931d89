"""multi-node: launch and restart across nodes (c10d rendezvous). A hook, not measured yet.

To add it: measure with the same `Row`s as bench/launch.py, set PENDING to None and list the
targets in bench/targets.py.
"""

from __future__ import annotations

from bench.common import Row
from bench.config import BenchConfig

NAME = "multi-node"
TITLE = "multi-node: launch and restart over c10d rendezvous"
PENDING: str | None = "not yet measured: needs the multi-node agent (issue 4)"


def run(cfg: BenchConfig) -> list[Row]:
    return []
