"""`runner.result(value)`: a worker reports its job's result (a sweeper's objective, a metric).

The value is written as JSON to the file ERUN_RESULT_FILE names (the rank's own directory of
the attempt, `RunPaths.result`); the agent records rank 0's in summary.json (`result`), and a
sweep hands it to Hydra's sweeper in the point's JobReturn. A later call replaces an earlier
one. Outside erun (no ERUN_RESULT_FILE) it does nothing, so a script runs the same by itself.
Standard library only, like everything a worker imports from erun.
"""

from __future__ import annotations

import json
import os
from typing import Any

RESULT_VAR = "ERUN_RESULT_FILE"


def result(value: Any) -> None:
    """Record `value` (anything JSON can hold: a number, a string, a list, a dict) as this
    rank's result; rank 0's is the job's."""
    path = os.environ.get(RESULT_VAR)
    try:
        text = json.dumps(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"runner.result() takes what JSON can hold (numbers, strings, lists, dicts), "
                        f"not {type(value).__name__}: {e}") from None
    if not path:
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    os.replace(tmp, path)  # a reader never sees half a value
