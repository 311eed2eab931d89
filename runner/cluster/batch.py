"""The batch script's process when Slurm warns of the job's end (`cluster.warning_s` > 0).

The batch script runs `python -m runner.cluster.batch PLAN.json WARNING_S srun ...`: this
process starts the job step (srun, one erun agent per node) and waits for it. Slurm sends it
SIGUSR1 `warning_s` before the end (`--signal=B:USR1@N`: a preemption with a grace time, or the
walltime; `scancel --batch --signal=USR1 JOBID` does the same by hand). Then, once:

1. every node's record gets a `preempted` event (the segment shows it in erun report/status);
2. srun passes SIGUSR1 to every process of the step: each worker gets it once (the agents do not
   forward it under Slurm), and checkpoints;
3. after the step ends, or half the warning later, erun requeues the job (`scontrol requeue`;
   the script has `--requeue`) unless a restart rule gives up on reason `preempted`
   (`restart.rules: [{reasons: [preempted], action: give_up}]`). A requeue spends no restart.

Slurm then stops the step (SIGTERM to every process, once: the agents do not send it again) and
runs the batch script anew; each node's agent continues its node_N/ record with a new segment,
attempt numbers and TORCHELASTIC_RESTART_COUNT going on (runner.record.continuation).
SIGTERM to this process (scancel, the requeue itself) is Slurm stopping the job: the step gets it
from Slurm, so it is not passed on; this process waits for srun to end. SIGINT, SIGHUP and SIGUSR2
are passed on to srun; a second warning is not.

This process stands between the job's start and srun: it starts the step first and reads the
plan (runner.plan, the record's writer) only afterwards, while the step starts, so the nodes'
agents start as soon as with a script that execs srun. The warning goes to the step before the
records are written.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.plan import JobPlan

PREEMPTED_REASON = "preempted"
# Signals to the batch script alone (scancel --batch) that srun passes on to the step, as it did
# when the script exec'd it. SIGTERM is not: Slurm sends it to every process when it ends the job.
PASSED_ON = (signal.SIGINT, signal.SIGHUP, signal.SIGUSR2)


def requeue_allowed(plan: JobPlan) -> bool:
    """The restart policy's word on a preemption: the first rule with reason `preempted`, else
    the policy's default; only give_up keeps the job from being requeued."""
    from runner.plan import RuleAction

    rules = plan.restart.rules
    action = next((r.action for r in rules if PREEMPTED_REASON in r.reasons), plan.restart.default)
    return action is not RuleAction.GIVE_UP


def mark_preempted(run_dir: Path, job_id: str, requeue: bool) -> None:
    """A `preempted` event in every node's record that exists (best effort: the job goes on)."""
    from runner.paths import RunPaths
    from runner.record.model import PREEMPTED_EVENT
    from runner.record.writer import EventLog

    for node_dir in RunPaths(run_dir).node_dirs():
        events = RunPaths(node_dir).events
        if not events.is_file():
            continue
        try:
            log = EventLog(events)
        except OSError:
            continue
        then = "the job is requeued" if requeue else "not requeued (restart.rules: give_up)"
        log.write(PREEMPTED_EVENT, job_id=job_id, requeue=requeue,
                  message=f"Slurm warned of the job's end: SIGUSR1 to every worker; {then}")
        log.close()


def requeue(job_id: str) -> str:
    """`scontrol requeue JOB`; what happened, in words."""
    if shutil.which("scontrol") is None:
        return "cannot requeue: scontrol is not on PATH"
    done = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        return f"scontrol requeue {job_id} failed: {' '.join(done.stderr.split()) or done.returncode}"
    return f"requeued Slurm job {job_id}: it continues in this run directory"


def say(message: str) -> None:
    print(f"erun: {message}", flush=True)


def load_plan(plan_path: Path) -> JobPlan:
    import json

    from runner.plan import JobPlan

    return JobPlan.from_dict(json.loads(plan_path.read_text()))


def run(plan_path: Path, warning_s: int, step_argv: Sequence[str], environ: dict[str, str]) -> int:
    """Run the step; answer the first SIGUSR1 as the module says. The step's exit status."""
    job_id = environ.get("SLURM_JOB_ID", "")
    inbox, wakeup = socket.socketpair()
    inbox.setblocking(False)
    wakeup.setblocking(False)
    for signum in (signal.SIGUSR1, signal.SIGTERM, *PASSED_ON):
        signal.signal(signum, lambda number, frame: None)  # the wakeup fd carries it
    signal.set_wakeup_fd(wakeup.fileno(), warn_on_full_buffer=False)
    step = subprocess.Popen(list(step_argv))  # exec resets the handlers: srun has its own
    pidfd = os.pidfd_open(step.pid)
    plan = load_plan(plan_path)  # while the step starts: the agents do not wait for it
    warned: float | None = None
    requeued = False
    while True:
        timeout = None if warned is None or requeued else max(0.0, warned + warning_s / 2 - time.monotonic())
        ready, _, _ = select.select([inbox.fileno(), pidfd], [], [], timeout)
        ended = pidfd in ready
        received = _drain(inbox) if inbox.fileno() in ready else b""
        for number in (n for n in received if n in PASSED_ON):
            step.send_signal(number)  # as srun, exec'd by the script, would have had it
        if signal.SIGUSR1 in received and warned is None:
            warned = time.monotonic()
            step.send_signal(signal.SIGUSR1)  # srun passes it to every process of the step, once
            allowed = requeue_allowed(plan)
            say(f"Slurm warns of the job's end (SIGUSR1, {warning_s} s ahead): SIGUSR1 to every worker "
                "to checkpoint" + ("" if allowed else "; not requeued (restart.rules: give_up on preempted)"))
            mark_preempted(plan_path.parent, job_id, allowed)
            requeued = not allowed
        due = warned is not None and (ended or time.monotonic() >= warned + warning_s / 2)
        if due and not requeued:
            requeued = True
            say(requeue(job_id))
        if ended:
            code = step.wait()
            return 128 - code if code < 0 else code


def _drain(inbox: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = inbox.recv(512)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


def main(argv: Sequence[str]) -> int:
    """`python -m runner.cluster.batch PLAN.json WARNING_S srun ...`"""
    if len(argv) < 3 or not argv[1].isdigit():
        print("erun: error: usage: python -m runner.cluster.batch PLAN.json WARNING_S srun ...",
              file=sys.stderr)
        return 2
    return run(Path(argv[0]), int(argv[1]), argv[2:], dict(os.environ))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
