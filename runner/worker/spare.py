"""A warm spare: an interpreter that imports the slow modules now and becomes a worker later.

    python -u runner/spare.py CONTROL_FD MODULE...

Run by path with the workers' own interpreter (it needs nothing of erun, only the standard
library), by `runner.runtime.spares.SparePool`. It imports each MODULE (failures are ignored: the
worker's own import will report them), then blocks reading CONTROL_FD. The agent writes one
JSON message and closes the pipe:

    {"argv": [...], "orig_argv": [...], "env": {...}, "cwd": "..."}

argv is the worker's command line without the interpreter and its `-u`: `[script, args...]`
or `["-m", module, args...]`; orig_argv the full one (`[python, "-u", ...]`), which a fresh
interpreter would show as `sys.orig_argv`. The spare then does what `python -u` would have done
with that argv: the environment replaced by `env` (os.environ and the C environment), the
working directory, sys.argv, sys.orig_argv, sys.path[0], a fresh `__main__`, the user's code
compiled with its own `__future__` flags only, and an uncaught exception reported and turned
into an exit status as the interpreter does, with a traceback that starts where Python's
would. End of file without a message means "not needed": the spare exits 0 without a word.

What cannot be made identical is listed in docs/warm-restarts.md: the preloaded modules
were imported before the script ran (so the environment they read at import time, and the
warnings they emit then, are the spare's), and the process's command line (/proc/self/cmdline).

No `from __future__ import annotations` here: compile() is told not to inherit this file's
flags, and without the import there is nothing to inherit if that ever changes.
"""

import sys

del sys.path[0]  # this file's folder (runner/worker/): its modules must not shadow the worker's imports

import atexit  # noqa: E402
import builtins  # noqa: E402
import importlib  # noqa: E402
import importlib.machinery  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import runpy  # noqa: E402
import signal  # noqa: E402
import types  # noqa: E402
from typing import Any  # noqa: E402

# Set when the user's code ends with an uncaught KeyboardInterrupt: the interpreter then exits
# by SIGINT after finalisation (bpo-1054041), so a shell or an agent sees a ^C, not a status.
_INTERRUPTED = False


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
    """Take on the worker's environment, working directory and sys.orig_argv; returns its argv."""
    os.environ.clear()
    os.environ.update(message["env"])
    if message.get("cwd"):
        os.chdir(message["cwd"])
    argv = [str(a) for a in message["argv"]]
    # What `python -u script args` shows; an older agent sent no orig_argv: rebuild it.
    sys.orig_argv = [str(a) for a in message.get("orig_argv") or [sys.orig_argv[0], "-u", *argv]]
    return argv


def fresh_main() -> types.ModuleType:
    """A new `__main__` in sys.modules (this file's own globals must not be the user's), holding
    what the interpreter's own starts with (pylifecycle's add_main_module)."""
    main = types.ModuleType("__main__")
    main.__dict__.update(__builtins__=builtins, __annotations__={},
                         __loader__=importlib.machinery.BuiltinImporter)
    sys.modules["__main__"] = main
    return main


def add_path(folder: str) -> None:
    """sys.path[0] as the interpreter sets it, unless -P / PYTHONSAFEPATH says not to."""
    if not sys.flags.safe_path:
        sys.path.insert(0, folder)


def run_module(argv: list[str]) -> None:
    """As `python -m module args`: runpy's own entry for -m (argv[0] becomes the module's file,
    `__main__.__spec__` the module's spec), so even its frames in tracebacks are Python's."""
    sys.argv = argv[1:]
    add_path(os.getcwd())
    fresh_main()
    runpy._run_module_as_main(argv[1], alter_argv=True)  # type: ignore[attr-defined]


def run_script(argv: list[str]) -> None:
    """As `python script args`: sys.path[0] is the script's folder, `__main__` a fresh module."""
    path = argv[0]
    sys.argv = argv
    # A folder or zip file with __main__.py (a .py file is taken as source without the zip check).
    if os.path.isdir(path) or (os.path.isfile(path) and not path.endswith(".py") and _is_zip(path)):
        add_path(path)
        fresh_main()
        runpy._run_module_as_main("__main__", alter_argv=False)  # type: ignore[attr-defined]
        return
    full = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)  # not normalised: as Python
    try:
        with open(full, "rb") as f:
            source = f.read()
    except OSError as e:  # the interpreter's own words and status for a script it cannot open
        print(f"{sys.orig_argv[0]}: can't open file {full!r}: [Errno {e.errno}] {e.strerror}",
              file=sys.stderr)
        sys.exit(2)
    add_path(os.path.dirname(os.path.realpath(full)))
    main = fresh_main()
    main.__dict__.update(__file__=full, __cached__=None,
                         __loader__=importlib.machinery.SourceFileLoader("__main__", full))
    # dont_inherit: the user's own `from __future__` lines only, none of this file's.
    exec(compile(source, full, "exec", dont_inherit=True), main.__dict__)


def _is_zip(path: str) -> bool:
    import zipfile

    return zipfile.is_zipfile(path)


def user_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """Drop this file's frames, so the traceback starts where Python's would (runpy's frames
    stay: `python -m` shows them too)."""
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return tb


def report_uncaught(e: BaseException) -> None:
    """What the interpreter does with an exception that reaches the top: sys.last_*, then
    sys.excepthook (the user's, if they set one), with this file's frames gone."""
    global _INTERRUPTED
    e.__traceback__ = user_traceback(e.__traceback__)
    sys.last_type, sys.last_value, sys.last_traceback = type(e), e, e.__traceback__
    hook = getattr(sys, "excepthook", None) or sys.__excepthook__
    hook(type(e), e, e.__traceback__)
    _INTERRUPTED = isinstance(e, KeyboardInterrupt)


def exit_like_python() -> None:
    """Registered before the user's code, so it runs after every atexit handler of theirs: an
    uncaught KeyboardInterrupt ends the process by SIGINT, as the interpreter's own exit does."""
    if not _INTERRUPTED:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # closed or replaced by the user
            pass
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)


def main() -> None:
    control_fd, modules = int(sys.argv[1]), sys.argv[2:]
    preload(modules)
    message = read_message(control_fd)
    if message is None:
        return
    argv = become(message)
    atexit.register(exit_like_python)
    try:
        if argv[0] == "-m":
            run_module(argv)
        else:
            run_script(argv)
    except SystemExit:  # the interpreter's own handling: status, message, no traceback
        raise
    except BaseException as e:  # noqa: BLE001 - every uncaught exception, as the interpreter
        report_uncaught(e)
        sys.exit(128 + signal.SIGINT if _INTERRUPTED else 1)  # 130 only if the SIGINT fails


if __name__ == "__main__":
    main()
