"""`python -u -m runner.worker.call pkg.mod:fn [args...]`: the worker side of a `call` entrypoint.

Imports the callable and calls `fn(**params)` with the job's params (ERUN_PARAMS, JSON);
`sys.argv` is `[pkg.mod:fn, *args]` while it runs. An `int` return becomes the exit status; any
other value but None is the rank's result (`runner.result`: rank 0's is the job's).
An exception exits 1 with its traceback on stderr and in TORCHELASTIC_ERROR_FILE (torch's
error-file format, so the agent's failure report shows it). When the callable's module
imported torch, torch's own `@record` writes the file; otherwise erun writes the same JSON,
so a torch-free callable does not pay for importing torch.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

# runner.worker.result's variable: worker modules import nothing of erun, not even each other.
RESULT_VAR = "ERUN_RESULT_FILE"


def load(target: str) -> Callable[..., Any]:
    """The object `pkg.mod:attr.sub` names."""
    module_name, _, attr_path = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    if not callable(obj):
        raise TypeError(f"{target} is a {type(obj).__name__}, not a callable")
    return obj  # type: ignore[no-any-return]


def params_from_env(environ: dict[str, str] | os._Environ[str]) -> dict[str, Any]:
    data = json.loads(environ.get("ERUN_PARAMS") or "{}")
    if not isinstance(data, dict):
        raise TypeError("ERUN_PARAMS must hold a JSON object")
    return data


def run(target: str, args: list[str]) -> int:
    sys.argv = [target, *args]
    fn = load(target)
    value = _recorded(fn)(**params_from_env(os.environ))
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if value is not None:
        record_result(value)
    return 0


def record_result(value: Any) -> None:
    """What `runner.result(value)` does: the rank's result as JSON, in the file RESULT_VAR names."""
    path = os.environ.get(RESULT_VAR)
    if path:
        with open(f"{path}.tmp", "w", encoding="utf-8") as f:
            json.dump(value, f, default=repr)  # a value JSON cannot hold is recorded as its repr
        os.replace(f"{path}.tmp", path)


def _recorded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """fn, writing its exception to TORCHELASTIC_ERROR_FILE (with torch's @record if loaded)."""
    error_file = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not error_file:
        return fn
    if "torch" in sys.modules:
        from torch.distributed.elastic.multiprocessing.errors import record

        return record(fn)  # type: ignore[no-any-return]

    def recorded(**kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except Exception as e:
            write_error_file(error_file, e)
            raise

    return recorded


def write_error_file(path: str, error: BaseException) -> None:
    """The JSON torch's ErrorHandler.record_exception writes."""
    data = {"message": {
        "message": f"{type(error).__name__}: {error}",
        "extraInfo": {"py_callstack": traceback.format_exc(), "timestamp": str(int(time.time()))},
    }}
    try:
        with open(path, "w") as f:
            json.dump(data, f)
    except OSError:
        pass  # the traceback still reaches stderr


def main(argv: list[str]) -> int:
    if not argv or ":" not in argv[0]:
        print("usage: python -m runner.worker.call pkg.module:function [args...]", file=sys.stderr)
        return 2
    return run(argv[0], argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
