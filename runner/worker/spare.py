"""A warm spare: an interpreter that imports the slow modules now and becomes a worker later.

    python -u runner/spare.py CONTROL_FD MODULE...

Run by path with the workers' own interpreter (it needs nothing of erun, only the standard
library), by `runner.runtime.spares.SparePool`. It imports each MODULE (failures are ignored: the
worker's own import will report them), then blocks reading CONTROL_FD. The agent writes one
JSON message and closes the pipe:

    {"argv": [...], "env": {...}, "cwd": "..."}

argv is the worker's command line without the interpreter and its `-u`: `[script, args...]`
or `["-m", module, args...]`. The spare then does what `python -u` would have done with that
argv: the environment replaced by `env` (os.environ and the C environment), the working
directory, sys.argv, sys.path[0] and a fresh `__main__`, and runs it. End of file without a
message means "not needed": the spare exits 0 without a word.
"""

from __future__ import annotations

import sys

del sys.path[0]  # this file's folder (runner/worker/): its modules must not shadow the worker's imports

import builtins  # noqa: E402
import importlib  # noqa: E402
import importlib.machinery  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import runpy  # noqa: E402
import types  # noqa: E402
from typing import Any  # noqa: E402


def preload(modules: list[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the worker's own import reports it
            pass


def read_message(fd: int) -> dict[str, Any] | None:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    os.close(fd)
    data = b"".join(chunks)
    return json.loads(data) if data else None


def become(message: dict[str, Any]) -> list[str]:
    """Take on the worker's environment and working directory; returns its argv."""
    os.environ.clear()
    os.environ.update(message["env"])
    if message.get("cwd"):
        os.chdir(message["cwd"])
    return [str(a) for a in message["argv"]]


def run_module(argv: list[str]) -> None:
    """As `python -m module args`: sys.path[0] is the working directory, argv[0] the module's file."""
    sys.argv = argv[1:]
    sys.path.insert(0, os.getcwd())
    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)


def run_script(argv: list[str]) -> None:
    """As `python script args`: sys.path[0] is the script's folder, `__main__` a fresh module."""
    path = argv[0]
    sys.argv = argv
    if not os.path.isfile(path):  # a folder or zip file with __main__.py
        sys.path.insert(0, path)
        runpy.run_path(path, run_name="__main__")
        return
    full = os.path.abspath(path)
    sys.path.insert(0, os.path.dirname(os.path.realpath(full)))
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=full, __builtins__=builtins, __cached__=None,
                         __loader__=importlib.machinery.SourceFileLoader("__main__", full))
    sys.modules["__main__"] = main
    with open(full, "rb") as f:
        code = compile(f.read(), full, "exec")
    exec(code, main.__dict__)


def user_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """Drop this file's and runpy's frames, so the traceback starts where Python's would."""
    ours = (__file__, runpy.__file__, "<frozen runpy>")
    while tb is not None and tb.tb_frame.f_code.co_filename in ours:
        tb = tb.tb_next
    return tb


def main() -> None:
    control_fd, modules = int(sys.argv[1]), sys.argv[2:]
    preload(modules)
    message = read_message(control_fd)
    if message is None:
        return
    argv = become(message)
    try:
        if argv[0] == "-m":
            run_module(argv)
        else:
            run_script(argv)
    except Exception as e:  # as the interpreter would: the hook prints it, the exit status is 1
        e.__traceback__ = user_traceback(e.__traceback__)  # the hook prints the exception's own
        sys.excepthook(type(e), e, e.__traceback__)
        sys.exit(1)


if __name__ == "__main__":
    main()
