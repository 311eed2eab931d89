"""Slurm's view of submitted jobs, for `erun status` and `erun report`: pending, running,
completed, failed, requeued... as the cluster tells it now.

Asked in order, each only about the jobs the one before did not know: `squeue` (every job the
controller still holds, array tasks one a line), `sacct` (finished jobs, where accounting is on),
then `scontrol show job` (recently finished jobs when there is no accounting). A command that is
missing, refuses (no accounting, a controller that is down) or is slow is skipped: a job nobody
knows reads as UNKNOWN with the reason, never as an error. Only the standard library: status and
report start fast.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

QUERY_TIMEOUT_S = 10.0
UNKNOWN = "UNKNOWN"
SLURM_COMMANDS = ("squeue", "sacct", "scontrol")


@dataclass(frozen=True)
class SlurmView:
    """One job (or array task) as Slurm sees it; `source` names the command that told."""

    job_id: str
    state: str = UNKNOWN
    reason: str = ""
    exit_code: str = ""
    restarts: int = 0
    source: str = ""

    def describe(self) -> str:
        """`RUNNING`, `PENDING (Resources)`, `FAILED (exit 1:0)`, `UNKNOWN (...)`, `, requeued 2 times`."""
        words = self.state
        detail = self.reason if self.reason and self.reason != "None" else ""
        if self.exit_code and self.state not in ("PENDING", "RUNNING", "COMPLETED"):
            detail = ", ".join(d for d in (detail, f"exit {self.exit_code}") if d)
        if detail:
            words += f" ({detail})"
        if self.restarts:
            words += f", requeued {self.restarts} time{'s' if self.restarts != 1 else ''}"
        return words


def _run(argv: Sequence[str]) -> str | None:
    """stdout of a Slurm command; None when it is missing, fails or hangs."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=QUERY_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


Runner = Callable[[Sequence[str]], "str | None"]


def from_squeue(ids: Sequence[str], run: Runner = _run) -> dict[str, SlurmView]:
    """Jobs the controller holds: `squeue -r -t all` lists each array task on a line of its own."""
    out = run(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(base_ids(ids)), "-o", "%i|%T|%r"])
    found = {}
    for line in (out or "").splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[0]:
            found[parts[0]] = SlurmView(parts[0], parts[1], parts[2], source="squeue")
    return found


def from_sacct(ids: Sequence[str], run: Runner = _run) -> dict[str, SlurmView]:
    """Finished jobs, from accounting (absent without slurmdbd: sacct then fails, skipped)."""
    out = run(["sacct", "-n", "-P", "-X", "-j", ",".join(ids), "-o", "JobID,State,ExitCode"])
    found = {}
    for line in (out or "").splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[0]:
            state = parts[1].split()[0] if parts[1] else UNKNOWN  # "CANCELLED by 0"
            found[parts[0]] = SlurmView(parts[0], state, exit_code=parts[2], source="sacct")
    return found


def from_scontrol(ids: Sequence[str], run: Runner = _run) -> dict[str, SlurmView]:
    """What the controller still remembers (MinJobAge), one record a line, with the requeue count."""
    found = {}
    for job_id in ids:
        out = run(["scontrol", "show", "job", "-o", job_id])
        for line in (out or "").splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            task = fields.get("ArrayTaskId")
            shown = f"{fields.get('ArrayJobId')}_{task}" if task else fields.get("JobId", "")
            if shown and "JobState" in fields:
                restarts = fields.get("Restarts", "0")
                count = int(restarts) if restarts.isdigit() else 0
                found[shown] = SlurmView(shown, fields["JobState"], fields.get("Reason", ""),
                                         fields.get("ExitCode", ""), count, "scontrol")
    return found


def base_ids(ids: Sequence[str]) -> list[str]:
    """`123_4` -> `123`: squeue asks about whole arrays."""
    return sorted({i.split("_")[0] for i in ids})


def views(ids: Sequence[str], run: Runner = _run) -> dict[str, SlurmView]:
    """Every job of `ids` as Slurm sees it; UNKNOWN (with why) for those no command knows."""
    wanted = list(dict.fromkeys(ids))
    found: dict[str, SlurmView] = {}
    for ask in (from_squeue, from_sacct, from_scontrol):
        missing = [i for i in wanted if i not in found]
        if not missing:
            break
        found.update({k: v for k, v in ask(missing, run).items() if k in missing})
    if len(wanted) == 1 and wanted[0] in found and found[wanted[0]].source != "scontrol":
        more = from_scontrol(wanted, run).get(wanted[0])  # one job: also its requeue count
        if more is not None:
            found[wanted[0]] = SlurmView(**{**found[wanted[0]].__dict__, "restarts": more.restarts})
    why = unknown_reason(run)
    return {i: found.get(i, SlurmView(i, UNKNOWN, why)) for i in wanted}


def unknown_reason(run: Runner = _run) -> str:
    """Why a job is UNKNOWN: no Slurm commands here, or Slurm no longer remembers it."""
    if run is _run and not any(shutil.which(c) for c in SLURM_COMMANDS):
        return "no squeue, sacct or scontrol on PATH"
    return "Slurm no longer knows the job"


# -- the job ids erun recorded --------------------------------------------------------------


def recorded_job(path: Path) -> str | None:
    """The job id in a run directory's slurm.json (runner.cluster.slurm writes it); None if none."""
    from runner.record.read import read_json  # not on the submitting path (write_job)

    job_id = read_json(path).get("job_id")
    return str(job_id) if isinstance(job_id, (str, int)) and str(job_id) else None


def write_job(path: Path, job_id: str, extra: Mapping[str, object] | None = None) -> None:
    """Record a submitted job's id (`slurm.json`)."""
    path.write_text(json.dumps({"job_id": job_id, **(extra or {})}, indent=2) + "\n", encoding="utf-8")
