"""`python -m runner.api.worker PAYLOAD FOLDER`: one rank of `runner.launch`, in a fresh
interpreter started by erun's agent (torchrun's environment: RANK, WORLD_SIZE, MASTER_ADDR...).

Unpacks the function and arguments (runner.api.shipping), calls it and sends what it ended
with: the return value, or the exception and its traceback (then exits 1 with the traceback on
stderr and in TORCHELASTIC_ERROR_FILE, so erun's failure report shows it). A return value that
cannot be pickled fails the rank with an error naming the rank and the type.
"""

from __future__ import annotations

import os
import pickle
import sys
import traceback
from pathlib import Path
from typing import Any

from runner.api.shipping import LaunchFolder, Sent, write_sent
from runner.worker.call import write_error_file


def unpack(path: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        shipped = pickle.load(f)
    # The caller's import path first: what was shipped by reference imports from there.
    sys.path[:] = [*shipped["sys_path"], *(p for p in sys.path if p not in shipped["sys_path"])]
    return pickle.loads(shipped["blob"])  # type: ignore[no-any-return]


def sendable(rank: int, value: Any) -> Sent:
    """The rank's return as a Sent; an error naming the rank and the type when it cannot travel."""
    import cloudpickle

    try:
        cloudpickle.dumps(value)
    except Exception as e:  # noqa: BLE001 - any pickling error
        raise TypeError(f"rank {rank} returned a {type(value).__module__}.{type(value).__qualname__}, "
                        f"which cannot be pickled to send back to the caller: {e}") from None
    return Sent(rank, True, value)


def failed(rank: int, error: BaseException) -> Sent:
    """The exception itself when it pickles, else a RuntimeError carrying its text."""
    import cloudpickle

    shown = traceback.format_exc()
    try:
        cloudpickle.dumps(error)
    except Exception:  # noqa: BLE001 - any pickling error: keep its words
        error = RuntimeError(f"{type(error).__name__}: {error}")
    return Sent(rank, False, exception=error, traceback=shown)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m runner.api.worker PAYLOAD FOLDER", file=sys.stderr)
        return 2
    rank = int(os.environ.get("RANK", "0"))
    restart_count = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    out = LaunchFolder(Path(argv[1])).return_file(restart_count, rank)
    try:
        call = unpack(argv[0])
        sent = sendable(rank, call["fn"](*call["args"], **call["kwargs"]))
    except Exception as e:
        write_sent(out, failed(rank, e))
        if os.environ.get("TORCHELASTIC_ERROR_FILE"):
            write_error_file(os.environ["TORCHELASTIC_ERROR_FILE"], e)
        raise
    write_sent(out, sent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
