"""Shared helpers: timing, statistics, commands with hard timeouts, and leaving nothing behind.

Every command the bench starts runs in its own session and carries ERUN_BENCH_TOKEN in its
environment, which all its descendants inherit (workers of erun and of torchrun start their
own sessions, so a process-group kill alone would miss them). When a command ends, or its
timeout passes, the bench SIGKILLs its process group, then every process that carries the
token, until none is left. `sweep_session` does the same for the whole bench run at exit.
"""

from __future__ import annotations

import compileall
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORKERS_DIR = BENCH_DIR / "workers"
TOKEN_VAR = "ERUN_BENCH_TOKEN"
SESSION = uuid.uuid4().hex[:12]
OUTPUT_TAIL_CHARS = 2000


def worker_script(name: str) -> str:
    return str(WORKERS_DIR / name)


# -- statistics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """min / median / max of the successful runs."""

    n: int
    min: float
    median: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats | None:
        if not values:
            return None
        return cls(len(values), min(values), statistics.median(values), max(values))


@dataclass
class Row:
    """One measured case under one launcher: the values of its successful runs."""

    metric: str
    case: str
    launcher: str
    unit: str = "s"
    values: list[float] = field(default_factory=list)
    runs: int = 0
    note: str = ""

    def add(self, value: float | None) -> None:
        """Count a run; None means it failed or did not finish within its timeout."""
        self.runs += 1
        if value is not None:
            self.values.append(value)

    @property
    def ok(self) -> int:
        return len(self.values)

    @property
    def stats(self) -> Stats | None:
        return Stats.of(self.values)

    def to_dict(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "metric": self.metric, "case": self.case, "launcher": self.launcher, "unit": self.unit,
            "runs": self.runs, "ok": self.ok, "values": [round(v, 6) for v in self.values],
            "min": stats and round(stats.min, 6), "median": stats and round(stats.median, 6),
            "max": stats and round(stats.max, 6), "note": self.note,
        }


# -- commands --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    """How a command ended. `start` is the wall clock just before it was started."""

    returncode: int | None
    timed_out: bool
    start: float
    end: float
    output_tail: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


class Running:
    """A started command; `wait` ends it (success, failure or timeout) and returns the result."""

    def __init__(self, popen: subprocess.Popen[bytes], token: str, log: Path, start: float) -> None:
        self.popen = popen
        self.token = token
        self.log = log
        self.start = start

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait(self, deadline: float) -> CommandResult:
        """Wait until the command exits or the wall-clock deadline passes."""
        timed_out = False
        try:
            self.popen.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            timed_out = True
        end = time.time()
        self.cleanup()
        return CommandResult(self.popen.returncode if not timed_out else None, timed_out,
                             self.start, end, tail(self.log))

    def cleanup(self) -> None:
        """SIGKILL the command's process group and everything that carries its token."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        kill_marked(f"{self.token}\0".encode())
        if self.popen.returncode is None:
            self.popen.wait()


@contextmanager
def started(argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None,
            cwd: Path | None = None) -> Iterator[Running]:
    """Start argv in its own session, output to log; on leaving, nothing of it survives."""
    token = f"{SESSION}-{uuid.uuid4().hex[:8]}"
    full_env = {**os.environ, "PYTHONPATH": python_path(), **(env or {}), TOKEN_VAR: token}
    with open(log, "wb") as out:
        start = time.time()
        popen = subprocess.Popen(list(argv), env=full_env, cwd=cwd or log.parent, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    running = Running(popen, token, log, start)
    try:
        yield running
    finally:
        running.cleanup()


def run_command(argv: Sequence[str], log: Path, timeout_s: float, env: Mapping[str, str] | None = None,
                cwd: Path | None = None) -> CommandResult:
    """Run argv to its end, or kill it (and all it started) after timeout_s."""
    with started(argv, log, env, cwd) as running:
        return running.wait(running.start + timeout_s)


def python_path() -> str:
    """The repo first, so `python -m runner` and `import bench` work from any directory."""
    rest = os.environ.get("PYTHONPATH", "")
    return f"{REPO_DIR}{os.pathsep}{rest}" if rest else str(REPO_DIR)


def tail(path: Path, chars: int = OUTPUT_TAIL_CHARS) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-chars:].decode(errors="replace")


# -- leaving nothing behind ------------------------------------------------------------------


def marked_pids(needle_value: bytes) -> list[int]:
    """Live processes whose environment has ERUN_BENCH_TOKEN starting with needle_value."""
    needle = b"\0" + TOKEN_VAR.encode() + b"=" + needle_value
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                data = f.read()
        except OSError:  # gone, a zombie, or not ours
            continue
        if needle in b"\0" + data:
            found.append(int(name))
    return found


def kill_marked(needle_value: bytes, rounds: int = 5) -> int:
    """SIGKILL every marked process, again until none is left (a dying parent may fork)."""
    killed = 0
    for _ in range(rounds):
        pids = marked_pids(needle_value)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)
    return killed


def sweep_session() -> int:
    """Kill whatever any command of this bench run left behind (called at exit)."""
    return kill_marked(f"{SESSION}-".encode())


def survivors() -> list[int]:
    return marked_pids(f"{SESSION}-".encode())


# -- files -----------------------------------------------------------------------------------


@contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temporary directory for one run: run dirs, stamps and logs; removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"erun-bench-{prefix}-") as path:
        yield Path(path)


def read_stamps(out: Path, kind: str, attempt: int) -> dict[int, float]:
    """{rank: time} from the workers' `<kind>_<attempt>_<rank>` files."""
    stamps = {}
    for path in out.glob(f"{kind}_{attempt}_*"):
        if path.suffix == ".tmp":
            continue
        rank = int(path.name.rsplit("_", 1)[1])
        stamps[rank] = float(path.read_text())
    return stamps


def last_stamp(out: Path, kind: str, attempt: int, nproc: int) -> float | None:
    """The latest stamp when all nproc ranks wrote one, else None."""
    stamps = read_stamps(out, kind, attempt)
    return max(stamps.values()) if len(stamps) == nproc else None


def wait_for_stamps(out: Path, kind: str, attempt: int, nproc: int, deadline: float) -> bool:
    while time.time() < deadline:
        if len(read_stamps(out, kind, attempt)) == nproc:
            return True
        time.sleep(0.02)
    return False


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def precompile_erun() -> None:
    """Write erun's bytecode, as `pip install` does for an installed package (torch's is in its
    wheel): a checkout run with PYTHONDONTWRITEBYTECODE=1 would otherwise compile erun's
    sources on every launch, a cost no installed erun pays."""
    for package in ("runner", "hydra_plugins"):
        compileall.compile_dir(str(REPO_DIR / package), quiet=1)

