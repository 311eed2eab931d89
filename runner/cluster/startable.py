"""A job Slurm accepted but will never start: sbatch takes a job that asks for more time, nodes or
CPUs than its partition allows (unless the cluster enforces partition limits at submission), and
leaves it pending for ever with a reason such as PartitionTimeLimit. `sbatch --test-only` does not
see these either. So right after sbatch, erun asks for the job's pending reason until the
scheduler has judged it (a few tenths of a second); a reason that no wait can cure cancels the job
at once and is refused in one line (exit 2), as sbatch's own refusals: nothing stays queued.
"""

from __future__ import annotations

import subprocess
import time

from runner.errors import ConfigError

JUDGE_TIMEOUT_S = 5.0
POLL_S = 0.1
# Pending reasons that no wait cures, and the key (and fix) to name for each.
NEVER = {
    "PartitionTimeLimit": ("cluster.time", "ask for at most the partition's time limit (sinfo -o '%P %l')"),
    "PartitionNodeLimit": ("nnodes", "ask for at most the partition's nodes a job (scontrol show partition)"),
    "PartitionConfig": ("cluster.sbatch", "ask for what one node of the partition has (sinfo -N -l)"),
    "BadConstraints": ("cluster.sbatch", "ask for what one node of the partition has (sinfo -N -l)"),
    "InvalidAccount": ("cluster.sbatch.account", "use an account you belong to (sshare -U)"),
    "AccountNotAllowed": ("cluster.sbatch.account", "use one the partition allows (scontrol show partition)"),
    "InvalidQOS": ("cluster.sbatch.qos", "use a QOS you may use (sacctmgr show assoc user=$USER)"),
    "QOSNotAllowed": ("cluster.sbatch.qos", "use a QOS the partition allows (scontrol show partition)"),
}
UNJUDGED = ("", "None")


def pending_reason(job_id: str) -> tuple[str, str]:
    """The job's state and pending reason (scontrol show job); ("", "") when unknown."""
    done = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True,
                          check=False, stdin=subprocess.DEVNULL)
    fields = dict(f.split("=", 1) for f in done.stdout.split() if "=" in f)
    return fields.get("JobState", ""), fields.get("Reason", "")


def check_can_start(job_id: str, partition: str = "") -> None:
    """Refuse (and cancel) a job Slurm will keep pending for ever; return once it is judged."""
    deadline = time.monotonic() + JUDGE_TIMEOUT_S
    while True:
        state, reason = pending_reason(job_id)
        if state and state != "PENDING":
            return
        if reason in NEVER:
            subprocess.run(["scancel", job_id], capture_output=True, check=False, stdin=subprocess.DEVNULL)
            key, fix = NEVER[reason]
            where = f"partition {partition}" if partition else "the partition"
            raise ConfigError(key, f"asks for what {where} cannot give: Slurm would keep the job pending "
                              f"for ever ({reason}; job {job_id} cancelled)", fix)
        if reason not in UNJUDGED or time.monotonic() > deadline:
            return
        time.sleep(POLL_S)
