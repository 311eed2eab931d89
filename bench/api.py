"""api: erun from Python against torch's own API, a trivial function on N workers with every
rank's return value back.

`erun` is `runner.launch(fn, K, nproc=N)`; `elastic_launch` is torch's
`elastic_launch(LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=N, rdzv_backend="c10d",
rdzv_endpoint="localhost:0", max_restarts=0), fn)(K)`, its defaults otherwise (start_method
spawn). The same function, defined in the caller's `__main__` (bench/workers/api_call.py), which
returns its rank and K. The value is the call, from entering it until every rank's value is
back (the caller's own imports excluded: torch for elastic_launch, `runner` for erun). Each run
is a fresh caller process; the two alternate so that load hits both alike.

Where torch's time goes: each spawned worker imports torch (torch.multiprocessing's bootstrap
and the caller's module), whatever the function does; erun's workers are plain interpreters that
import only what the function does, plus erun's agent in a child process.
"""

from __future__ import annotations

import json
import sys

from bench.common import Row, log, run_command, workdir, worker_script
from bench.config import BenchConfig

NAME = "api"
TITLE = "api: runner.launch of a trivial function on N workers, return values back, vs torch's elastic_launch"
CASE = "fn on {n} workers, return values"
BASELINE = "elastic_launch"


def measure(launcher: str, nproc: int, timeout_s: float) -> float | None:
    """Seconds of one call, None when it failed or ran past the timeout."""
    with workdir(f"api-{launcher}") as work:
        out = work / "result.json"
        argv = [sys.executable, worker_script("api_call.py"), launcher, str(nproc), str(out)]
        # TMPDIR: torch's default log folder and erun's launch folder stay in the run's directory.
        result = run_command(argv, work / "caller.log", timeout_s, env={"TMPDIR": str(work)}, cwd=work)
        if not result.ok or not out.exists():
            log(f"api {launcher} nproc={nproc} failed (exit {result.returncode}, timed out: "
                f"{result.timed_out}):\n{result.output_tail}")
            return None
        return float(json.loads(out.read_text())["seconds"])


def run(cfg: BenchConfig) -> list[Row]:
    """Sizes from bench/config.py (api_*)."""
    rows: list[Row] = []
    for nproc in cfg.api_nprocs:
        log(f"api: fn on {nproc} workers")
        case = {name: Row(NAME, CASE.format(n=nproc), name) for name in cfg.api_launchers}
        for _ in range(cfg.api_reps):
            for name in cfg.api_launchers:  # interleaved
                case[name].add(measure(name, nproc, cfg.api_timeout_s))
        rows += case.values()
    return rows
