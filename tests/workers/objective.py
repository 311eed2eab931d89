"""A sweep's objective: rank 0 reports (x - 1) ** 2 through runner.result; x >= 3 fails (exit 1).
Also a `call` target: `objective:square` returns (x - 1) ** 2, the job's result."""

import json
import os
import sys

import runner


def square(x: float) -> float:
    return (float(x) - 1) ** 2


if __name__ == "__main__":
    x = float(json.loads(os.environ["ERUN_PARAMS"])["x"])
    if x >= 3:
        sys.exit(1)
    runner.result(square(x))
