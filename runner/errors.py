"""Error types and exit statuses: the one place where failures map to exit codes."""

from __future__ import annotations

import enum

# The source named in a ConfigError for a mistake made on the command line (not in a job file).
COMMAND_LINE = "command line"


class ExitStatus(enum.IntEnum):
    """What `erun` returns. Signals add 128 + N, as a shell would report them."""

    SUCCESS = 0
    JOB_FAILED = 1
    BAD_INPUT = 2
    SIGNAL_BASE = 128

    @staticmethod
    def for_signal(signum: int) -> int:
        return int(ExitStatus.SIGNAL_BASE) + signum


class ErunError(Exception):
    """Base of every error erun raises on purpose (never for bugs)."""

    exit_status: ExitStatus = ExitStatus.JOB_FAILED


class ConfigError(ErunError):
    """Bad user input: one line naming the key (and file), what is wrong, and the fix.

    Rendered by the CLI as a single line on stderr with exit status 2.
    """

    exit_status = ExitStatus.BAD_INPUT

    def __init__(self, key: str | None, problem: str, fix: str = "", source: str | None = None):
        self.key = key
        self.problem = problem
        self.fix = fix
        self.source = source
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = f"{self.source}: " if self.source else ""
        what = f"`{self.key}` {self.problem}" if self.key else self.problem
        fix = f"; {self.fix}" if self.fix else ""
        return f"erun: error: {where}{what}{fix}"


class JobFailed(ErunError):
    """The job ran and did not succeed (its agent already said why). Hydra's task function
    raises it, so the job's JobReturn is FAILED for callbacks and sweepers, as for any Hydra
    app; erun then exits with the job's own status and prints nothing more."""

    def __init__(self, exit_code: int, run_dir: str = "") -> None:
        super().__init__(exit_code, run_dir)  # plain args: it crosses processes (joblib) pickled
        self.exit_code, self.run_dir = exit_code, run_dir

    def __str__(self) -> str:
        return f"erun: the job in {self.run_dir} ended with exit status {self.exit_code}"


class LaunchError(ErunError):
    """The agent could not start a worker (executable missing, cwd gone, permission denied)."""

    exit_status = ExitStatus.BAD_INPUT


class RendezvousError(ErunError):
    """Nodes could not meet: the rendezvous endpoint is unreachable, too few nodes came before the
    join timeout, the port is taken, or the job was closed by another node. One line, exit 1."""

    exit_status = ExitStatus.JOB_FAILED
