"""What travels between the caller and the workers of `runner.launch`, and where it lies.

The caller packs the function and its arguments by value with cloudpickle (functions of
`__main__` and of notebook cells included) into `payload.pkl`; each worker writes what its
call ended with to `returns/<restart count>/<rank>.pkl`. Both are pickles: a rank's return
value is any Python object (a tensor, a dataclass, a dict of arrays), which JSON cannot hold
without losing its type, and caller and workers are the same user with the same interpreter
and packages, so unpickling them trusts no one new.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import ConfigError

PAYLOAD = "payload.pkl"
RETURNS = "returns"
LAUNCH_KEY = "fn"  # the "key" of a ConfigError about the function or its arguments
SOURCE = "runner.launch()"


def pack(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """fn, args and the caller's import path, pickled; a ConfigError naming what cannot travel."""
    import cloudpickle

    if not callable(fn):
        raise ConfigError(LAUNCH_KEY, f"is a {type(fn).__name__}, not a function",
                          "pass the function to run on every rank: runner.launch(train, ...)", SOURCE)
    for what, value in (("the function", fn), *((f"argument {i}", a) for i, a in enumerate(args)),
                        *((f"argument {k}=", v) for k, v in kwargs.items())):
        try:
            cloudpickle.dumps(value)
        except Exception as e:  # noqa: BLE001 - any pickling error: name what cannot travel
            raise ConfigError(LAUNCH_KEY, f"cannot be sent to the workers: {what} ({_name(value)}) "
                              f"cannot be pickled: {e}",
                              "create it inside the function (locks, open files, sockets, CUDA "
                              "streams cannot travel to other processes)", SOURCE) from None
    blob = cloudpickle.dumps({"fn": fn, "args": args, "kwargs": kwargs})
    return pickle.dumps({"sys_path": list(sys.path), "blob": blob})


def _name(value: Any) -> str:
    return getattr(value, "__qualname__", None) or type(value).__name__


@dataclass(frozen=True)
class Sent:
    """What one rank's call ended with: its return value, or its exception and traceback."""

    rank: int
    ok: bool
    value: Any = None
    exception: BaseException | None = None
    traceback: str = ""


@dataclass(frozen=True)
class LaunchFolder:
    """The caller's private folder for one launch: the payload and every rank's return."""

    root: Path

    @property
    def payload(self) -> Path:
        return self.root / PAYLOAD

    @property
    def returns(self) -> Path:
        return self.root / RETURNS

    def return_file(self, restart_count: int, rank: int) -> Path:
        return self.returns / str(restart_count) / f"{rank}.pkl"

    def last_returns(self) -> dict[int, Sent]:
        """Every rank's return of the last restart that sent any, by rank."""
        if not self.returns.is_dir():
            return {}
        counts = [int(p.name) for p in self.returns.iterdir() if p.name.isdigit()]
        if not counts:
            return {}
        folder = self.returns / str(max(counts))
        sent = (read_sent(p) for p in folder.glob("*.pkl"))
        return {s.rank: s for s in sent if s is not None}


def read_sent(path: Path) -> Sent | None:
    try:
        data = pickle.loads(path.read_bytes())
    except Exception:  # noqa: BLE001 - a torn or foreign file is no return
        return None
    return data if isinstance(data, Sent) else None


def write_sent(path: Path, sent: Sent) -> None:
    """Atomically: the caller never reads half a file."""
    import cloudpickle

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(cloudpickle.dumps(sent))
    os.replace(tmp, path)
