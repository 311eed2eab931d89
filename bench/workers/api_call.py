"""A caller of a Python launch API: time one launch of a trivial function on N workers.

Usage: api_call.py erun|elastic_launch NPROC OUT_JSON

`erun`: `runner.launch(trivial, K, nproc=N)`; `elastic_launch`: torch's
`torch.distributed.launcher.api.elastic_launch(LaunchConfig(...), trivial)(K)` with its defaults
on one node (c10d on a free port, as torchrun --standalone; start_method spawn). The same
function, defined here in `__main__`; each returns its rank and K. Writes {"seconds": ...} (the
call alone, the caller's imports excluded) to OUT_JSON once every rank's value came back right.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

K = 7


def trivial(k: int) -> tuple[int, int]:
    return int(os.environ["RANK"]), k


def erun(nproc: int, out: str) -> dict[int, object]:
    import runner

    run_dir = os.path.join(os.path.dirname(out), "run")
    return runner.launch(trivial, K, nproc=nproc, run_dir=run_dir).return_values


def elastic_launch(nproc: int, out: str) -> dict[int, object]:
    from torch.distributed.launcher.api import LaunchConfig
    from torch.distributed.launcher.api import elastic_launch as launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", run_id=uuid.uuid4().hex, max_restarts=0)
    return launch(config, trivial)(K)


def main(launcher: str, nproc: int, out: str) -> int:
    call = {"erun": erun, "elastic_launch": elastic_launch}[launcher]
    begin = time.perf_counter()
    values = call(nproc, out)
    seconds = time.perf_counter() - begin
    if values != {rank: (rank, K) for rank in range(nproc)}:
        print(f"api_call: {launcher} returned {values!r}", file=sys.stderr)
        return 1
    with open(out, "w") as f:
        json.dump({"seconds": seconds}, f)
    return 0


if __name__ == "__main__":  # spawn re-imports this module in torch's workers
    raise SystemExit(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
