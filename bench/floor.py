"""The physical floor: the least a launcher can do. A bare Popen loop, standard library only.

Usage: python floor.py NPROC MAX_RESTARTS SCRIPT [ARGS...]

Spawns NPROC `python -u SCRIPT ARGS` with the minimal worker environment (ranks, world size,
a fresh MASTER_PORT per attempt, TORCHELASTIC_RESTART_COUNT); when one fails it SIGKILLs the
rest at once (no grace) and starts the next attempt. No logs, no record, no rendezvous.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def spawn(argv: list[str], nproc: int, attempt: int) -> dict[int, subprocess.Popen[bytes]]:
    port = str(free_port())
    procs = {}
    for rank in range(nproc):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc),
                   LOCAL_WORLD_SIZE=str(nproc), MASTER_ADDR="localhost", MASTER_PORT=port,
                   TORCHELASTIC_RESTART_COUNT=str(attempt))
        proc = subprocess.Popen(argv, env=env)
        procs[proc.pid] = proc
    return procs


def wait_group(procs: dict[int, subprocess.Popen[bytes]]) -> bool:
    """True when every worker exits 0; on the first failure, SIGKILL and reap the rest."""
    left = set(procs)
    while left:
        pid, status = os.wait()
        left.discard(pid)
        if os.waitstatus_to_exitcode(status) != 0:
            for other in left:
                os.kill(other, signal.SIGKILL)
            for other in left:
                os.waitpid(other, 0)
            return False
    return True


def main(args: list[str]) -> int:
    nproc, max_restarts = int(args[0]), int(args[1])
    argv = [sys.executable, "-u", *args[2:]]
    for attempt in range(max_restarts + 1):
        if wait_group(spawn(argv, nproc, attempt)):
            return 0
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
