"""probe.py OUT_DIR [END [light]]: record what a worker sees, then end by END, uncaught.

END: `interrupt` (the default: KeyboardInterrupt), `exit-text` (sys.exit with a message),
`exit-3` (sys.exit(3)), `base` (a BaseException subclass of the script's own), `vanish`
(attempt 0 deletes this file: run a copy; later attempts cannot open it). `light` skips
importing torch (for tests about the ending only).

Run on a cold and a warm attempt of the same job (tests/test_spare_semantics.py), it writes
OUT_DIR/probe_a<attempt>_r<rank>.json: `__main__` as the script found it, annotations and
typing.get_type_hints, sys.argv/orig_argv/path/flags, /proc/self/cmdline, the warnings
filters before and after `import torch`, the warnings that import emitted, and
torch.get_num_threads() after the script set OMP_NUM_THREADS=3 before importing torch.
Attempt 0 waits for the agent's `spares` event first, so that attempt 1 starts warm.
"""

MAIN_AT_START = sorted(globals())  # before any import or definition of this script's own

import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import typing  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

from _common import attempt, rank  # noqa: E402

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE)
MODULES_AT_START = {"torch": "torch" in sys.modules}
FILTERS_AT_START = [repr(f) for f in warnings.filters]


class Point:
    x: int  # a class annotation: a type, not the string "int", unless this file asks for that


def scale(p: Point, k: float = 1.0) -> list[int]:
    return [int(p.x * k)]


def main_module() -> dict[str, str]:
    main = sys.modules["__main__"]
    names = ("__name__", "__file__", "__spec__", "__package__", "__cached__", "__doc__")
    # Object addresses differ between any two processes: drop them.
    seen = {n: re.sub(r" at 0x[0-9a-f]+", "", repr(getattr(main, n, "<unset>"))) for n in names}
    seen["__loader__"] = type(getattr(main, "__loader__", None)).__name__
    seen["__builtins__"] = repr(getattr(main, "__builtins__", None))
    return seen


def torch_seen() -> dict[str, typing.Any]:
    """Import torch as a script that tunes threads and watches warnings does."""
    os.environ["OMP_NUM_THREADS"] = "3"
    with warnings.catch_warnings(record=True) as emitted:
        import torch

        filters = [repr(f) for f in warnings.filters]  # catch_warnings restores them on exit
    return {"threads": torch.get_num_threads(), "filters_after_import": filters,
            "import_warnings": [str(w.message) for w in emitted]}


def record(out: str) -> None:
    data = {
        "main_at_start": MAIN_AT_START, "main": main_module(), "modules_at_start": MODULES_AT_START,
        "annotations": {k: repr(v) for k, v in scale.__annotations__.items()},
        "class_annotations": {k: repr(v) for k, v in Point.__annotations__.items()},
        "type_hints": {k: repr(v) for k, v in typing.get_type_hints(scale).items()},
        "argv": sys.argv, "orig_argv": sys.orig_argv, "path": sys.path, "flags": repr(sys.flags),
        "cmdline": Path("/proc/self/cmdline").read_bytes().decode().split("\0")[:-1],
        "filters_at_start": FILTERS_AT_START, "excepthook": sys.excepthook is sys.__excepthook__,
        "signals": {s.name: repr(signal.getsignal(s)) for s in SIGNALS},
        "gc": [gc.isenabled(), gc.get_threshold()], "recursion": sys.getrecursionlimit(),
        "import_system": [getattr(f, "__qualname__", type(f).__name__)
                          for f in [*sys.path_hooks, *sys.meta_path]],
        "cwd": os.getcwd(), "umask": os.umask(os.umask(0)),
        "stdio": [repr(f) for f in (sys.stdin, sys.stdout, sys.stderr)],
        **(torch_seen() if "light" not in sys.argv[3:] else {}),
    }
    path = Path(out) / f"probe_a{attempt()}_r{rank()}.json"
    path.with_suffix(".tmp").write_text(json.dumps(data, indent=1))
    os.replace(path.with_suffix(".tmp"), path)


def wait_for_spares(timeout: float = 60.0) -> None:
    """Until the agent has started the next attempt's spares (its `spares` event)."""
    import time

    events = Path(os.environ["ERUN_RUN_DIR"]) / "events.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = events.read_text().splitlines() if events.exists() else []
        if any(json.loads(line).get("event") == "spares" for line in lines if line.endswith("}")):
            return
        time.sleep(0.02)
    sys.exit(4)


class Stop(BaseException):
    """Not an Exception: reported and exit 1 all the same, when nobody catches it."""


def end(how: str) -> None:
    if how == "exit-text":
        sys.exit("probe: stopping with a message")  # printed on stderr, exit status 1
    if how == "exit-3":
        sys.exit(3)
    if how == "vanish":
        os.remove(__file__)
        sys.exit(1)
    if how == "base":
        raise Stop("nobody catches this")
    raise KeyboardInterrupt  # a ^C that nobody handles: the interpreter reports it and dies by SIGINT


if __name__ == "__main__":
    record(sys.argv[1])
    if attempt() == 0:
        wait_for_spares()
    end(sys.argv[2] if len(sys.argv) > 2 else "interrupt")
