"""cluster=slurm: the job as an sbatch script, submitted with sbatch.

`dryrun` compiles the job (the same compiler as a local run; several nodes meet through c10d)
and renders the batch script: one erun agent per node (`srun --ntasks-per-node=1`), each running
`python -m runner.cluster.node`, which fills in what only the allocation knows (the first node,
the job id) and becomes `erun run-plan` of its node's plan. `schedule` writes the run
directory's files, runs `sbatch --parsable` (`--wait` with --wait, following the batch output,
where every node's console goes) and prints the job id and the run directory.

Refusals are one line and exit 2, with nothing submitted: no sbatch on PATH, a bad cluster key,
or sbatch's own refusal (unknown partition or account, more nodes than the partition has); a job
sbatch accepts but Slurm would keep pending for ever is cancelled at once (runner.cluster.startable).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from runner.cluster.api import SubmitOptions
from runner.cluster.jobview import write_job
from runner.cluster.startable import check_can_start
from runner.config.compile import compile_job
from runner.config.sources import CompileContext
from runner.errors import ConfigError, ErunError
from runner.paths import RunPaths
from runner.plan import JobPlan
from runner.words import display_path

# Set by erun from the job's keys: passing them through would break the one-agent-per-node shape.
OWN_OPTIONS = {"nodes": "nnodes", "ntasks": "nnodes", "ntasks-per-node": "nnodes", "output": None,
               "open-mode": None, "parsable": None, "wait": "--wait", "partition": "cluster.partition",
               "time": "cluster.time"}
OPTION_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
# Until the allocation exists, the rendezvous endpoint and id are placeholders (runner.cluster.node).
FIRST_NODE = "SLURM_FIRST_NODE"
PLACEHOLDER_PORT = 29400
JOB_ID = "SLURM_JOB_ID"
NODE_NPROC = ("cpu", "gpu", "auto")
JOB_DIR_VAR = "ERUN_JOB_DIR"  # the run directory, shared by every node (checkpoints)
FOLLOW_INTERVAL_S = 0.2


@dataclass(frozen=True)
class SlurmPlan:
    """The cluster keys, checked: sbatch options as (name, value or None for a flag)."""

    partition: str = ""
    time: str = ""
    options: tuple[tuple[str, str | None], ...] = ()
    setup: tuple[str, ...] = ()
    python: str = ""
    # nproc=cpu/gpu/auto counts each node's own CPUs or GPUs: resolved there (runner.cluster.node).
    node_nproc: str = ""
    isolate_gpus: bool = False
    # Slurm's warning before the end (--signal=B:USR1@N, --requeue; runner.cluster.batch); 0: none.
    warning_s: int = 0


@dataclass(frozen=True)
class SbatchRequest:
    """What `sbatch` is given: the batch script, the job's plan, the command."""

    plan: JobPlan
    script: str
    slurm: SlurmPlan = SlurmPlan()

    @property
    def paths(self) -> RunPaths:
        return RunPaths(Path(self.plan.run_dir))

    def argv(self, wait: bool = False) -> list[str]:
        return ["sbatch", "--parsable", *(["--wait"] if wait else []), str(self.paths.batch_script)]

    def describe(self) -> str:
        return (f"# {shlex.join(self.argv())}  (dry run: nothing submitted)\n"
                f"# and {display_path(self.paths.plan)}, the job's plan (--dry-run=json shows both)\n"
                f"{self.script}")

    def to_dict(self) -> dict[str, Any]:
        return {"sbatch": self.argv(), "script": self.script, "plan": self.plan.to_dict()}


# -- the request (dry run) ----------------------------------------------------------------------


def slurm_plan(cluster: Mapping[str, Any]) -> SlurmPlan:
    """The `cluster` keys as a SlurmPlan; a bad one is a ConfigError naming it."""
    options = []
    for name, value in (cluster.get("sbatch") or {}).items():
        key = f"cluster.sbatch.{name}"
        if not OPTION_NAME.match(str(name)):
            raise ConfigError(key, "is not an sbatch option name", "write it as sbatch's long option, "
                              "without dashes, e.g. cluster.sbatch.cpus-per-task=8")
        if name in OWN_OPTIONS:
            by = OWN_OPTIONS[name]
            raise ConfigError(key, "is set by erun", f"use {by}" if by else "drop it")
        if value is False or value is None:
            continue
        text = None if value is True else str(value)
        if text is not None and ("\n" in text or not text.strip()):
            raise ConfigError(key, f"is {value!r}", "give one line, e.g. cluster.sbatch.account=proj")
        options.append((str(name), text))
    for key in ("partition", "time", "python"):
        if any(c.isspace() for c in str(cluster.get(key) or "")):
            raise ConfigError(f"cluster.{key}", f"is {cluster.get(key)!r}", "give one word, no spaces")
    setup = tuple(str(line) for line in cluster.get("setup") or ())
    warning = cluster.get("warning_s") or 0
    if isinstance(warning, bool) or not isinstance(warning, int) or warning < 0:
        raise ConfigError("cluster.warning_s", f"is {warning!r}",
                          "give whole seconds, e.g. cluster.warning_s=120 (0: no warning, no requeue)")
    return SlurmPlan(str(cluster.get("partition") or ""), str(cluster.get("time") or ""), tuple(options),
                     setup, str(cluster.get("python") or ""), warning_s=warning)


def compile_for_slurm(cfg: Any, ctx: CompileContext) -> tuple[JobPlan, SlurmPlan]:
    """The job's plan (several nodes meet through c10d at the first node; its name and the port
    come from the allocation) and the cluster keys."""
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(cfg, resolve=False) if OmegaConf.is_config(cfg) else dict(cfg)
    assert isinstance(data, dict)
    rdzv = dict(data.get("rdzv") or {})
    backend = rdzv.get("backend", "standalone")
    if backend not in ("standalone", "c10d"):
        raise ConfigError("rdzv.backend", f"is {backend}, but under Slurm the nodes meet through c10d "
                          "at the first node of the allocation", "drop rdzv=... (or use cluster=local)")
    if rdzv.get("endpoint"):
        raise ConfigError("rdzv.endpoint", "is set, but under Slurm it is the first node of the "
                          "allocation", "drop it")
    data["rdzv"] = {**rdzv, "endpoint": f"{FIRST_NODE}:{PLACEHOLDER_PORT}", "id": JOB_ID}
    cluster = data.pop("cluster", None) or {}
    word = str(data.get("nproc", 1)).strip().lower()
    node_nproc = word if word in NODE_NPROC else ""
    isolate = bool(data.get("isolate_gpus")) and bool(node_nproc)
    if node_nproc:  # this host's CPUs and GPUs say nothing of the nodes'
        data.update(nproc=1, isolate_gpus=False)
    cfg = OmegaConf.create(data) if OmegaConf.is_config(cfg) else data
    plan = compile_job(cfg, ctx)
    env = {**plan.env, JOB_DIR_VAR: plan.run_dir}
    slurm = dataclasses.replace(slurm_plan(cluster), node_nproc=node_nproc, isolate_gpus=isolate)
    return dataclasses.replace(plan, env=env), slurm


def batch_script(plan: JobPlan, slurm: SlurmPlan) -> str:
    """The sbatch script: erun's options, the user's, the setup lines, then one agent per node."""
    rdzv = plan.rdzv
    nodes = str(rdzv.min_nodes) if rdzv.min_nodes == rdzv.max_nodes else f"{rdzv.min_nodes}-{rdzv.max_nodes}"
    paths = RunPaths(Path(plan.run_dir))
    options: list[tuple[str, str | None]] = [
        ("job-name", plan.name), ("nodes", nodes), ("ntasks-per-node", "1"),
        ("output", str(paths.batch_output)), ("open-mode", "append")]
    options += [(k, v) for k, v in (("partition", slurm.partition), ("time", slurm.time)) if v]
    if slurm.warning_s:  # the warning goes to the batch script only (B:), which requeues the job
        options += [("signal", f"B:USR1@{slurm.warning_s}"), ("requeue", None)]
    options = [o for o in options if o[0] not in dict(slurm.options)] + list(slurm.options)
    options = [(k, exporting(v, sorted(plan.secret_env())) if k == "export" else v) for k, v in options]
    python = shlex.quote(slurm.python or sys.executable)
    node_args = "".join([f" --nproc={slurm.node_nproc}" if slurm.node_nproc else "",
                         " --isolate-gpus" if slurm.isolate_gpus else ""])
    step = (f"srun --ntasks-per-node=1 --kill-on-bad-exit=1 {python} "
            f"-m runner.cluster.node {shlex.quote(str(paths.plan))}{node_args}")
    if slurm.warning_s:
        step = f"{python} -m runner.cluster.batch {shlex.quote(str(paths.plan))} {slurm.warning_s} {step}"
    lines = ["#!/bin/bash",
             f"# erun job {plan.name}: one erun agent per node, meeting through c10d at the first node.",
             *(f"#SBATCH --{k}" + (f"={v}" if v is not None else "") for k, v in options),
             *slurm.setup, f"exec {step}"]
    return "\n".join(lines) + "\n"


def exporting(value: str | None, secrets: list[str]) -> str | None:
    """cluster.sbatch.export with the job's secret env names added (plan.json has them redacted;
    the agents read them from the job's environment): ALL exports them already."""
    names = [n for n in (value or "").split(",") if n]
    if not secrets or not names or names[0] == "ALL":
        return value
    return ",".join([n for n in names if n != "NONE"] + secrets)


class Slurm:
    """The Slurm backend (runner.cluster.api.Scheduler)."""

    def dryrun(self, cfg: Any, ctx: CompileContext) -> SbatchRequest:
        plan, slurm = compile_for_slurm(cfg, ctx)
        return SbatchRequest(plan, batch_script(plan, slurm), slurm)

    def schedule(self, request: SbatchRequest, options: SubmitOptions) -> int:
        if shutil.which("sbatch") is None:
            raise ConfigError("cluster", "is slurm, but sbatch is not on PATH",
                              "load Slurm's client tools (module load slurm), or use cluster=local")
        paths = request.paths
        if paths.plan.exists():
            raise ConfigError("hydra.run.dir", f"{request.plan.run_dir} already holds a run",
                              "choose a new directory, so the earlier run's record stays intact")
        check_partition_size(request.plan, request.slurm.partition)
        written = write_files(request, options.files)
        try:
            job_id = submit(request)
            check_can_start(job_id, request.slurm.partition)  # accepted, but pending for ever?
        except ErunError:
            remove_files(written, paths.run_dir)
            raise
        write_job(paths.slurm_job, job_id)  # erun status/report ask Slurm about it (runner.cluster.jobview)
        print(f"erun: submitted Slurm job {job_id}; run directory {display_path(paths.run_dir)}", flush=True)
        if not options.wait:
            return 0
        return follow(job_id, paths.batch_output, sys.stdout)


def write_files(request: SbatchRequest, files: Mapping[str, str]) -> list[Path]:
    """The record's files, the plan and the batch script, in the run directory."""
    paths = request.paths
    texts = {**{Path(k): v for k, v in files.items()}, paths.plan: request.plan.to_json() + "\n",
             paths.batch_script: request.script}
    for path, text in texts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(texts)


def remove_files(written: list[Path], run_dir: Path) -> None:
    """Undo write_files: a refused submission leaves no trace (the emptied folders below the run
    directory go too; the run directory itself is the app's, which drops it when empty)."""
    for path in written:
        path.unlink(missing_ok=True)
    for folder in {p.parent for p in written} - {run_dir}:
        try:
            folder.rmdir()
        except OSError:
            pass


def partition_nodes(partition: str) -> tuple[str, int] | None:
    """The partition (given, else the default one) and its node count, as sinfo tells."""
    done = subprocess.run(["sinfo", "-h", "-o", "%P %D"], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    counts: dict[str, int] = {}
    default = ""
    for line in done.stdout.splitlines():
        name, _, count = line.partition(" ")
        if name.endswith("*"):
            name = default = name[:-1]
        if count.strip().isdigit():
            counts[name] = counts.get(name, 0) + int(count)
    chosen = partition or default
    return (chosen, counts[chosen]) if chosen in counts else None


def check_partition_size(plan: JobPlan, partition: str) -> None:
    """More nodes than the partition has would pend forever: refuse them before sbatch."""
    found = partition_nodes(partition) if shutil.which("sinfo") else None
    if found is None:
        return  # sbatch judges the partition itself
    name, count = found
    rdzv = plan.rdzv
    if rdzv.max_nodes > count:
        elastic = rdzv.min_nodes != rdzv.max_nodes
        asked = f"{rdzv.min_nodes}:{rdzv.max_nodes}" if elastic else str(rdzv.max_nodes)
        fix = f"nnodes={rdzv.min_nodes}:{count}" if elastic and rdzv.min_nodes <= count else f"nnodes={count}"
        raise ConfigError("nnodes", f"is {asked}, but partition {name} has {count} node"
                          f"{'s' if count != 1 else ''}", f"use {fix} or a bigger partition")


def submit(request: SbatchRequest) -> str:
    """Run sbatch; the job id (a refusal is a ConfigError: nothing was submitted)."""
    # plan.json has secret-looking env values redacted: they reach the nodes' agents in the job's
    # environment (sbatch exports it; a requeued job keeps it), as `erun run-plan` expects.
    env = {**os.environ, **request.plan.secret_env()}
    done = subprocess.run(request.argv(), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          cwd=request.plan.run_dir, check=False, env=env)
    job_id = done.stdout.strip().split(";")[0]
    if done.returncode != 0 or not job_id:
        raise refusal(done.stderr)
    return job_id


def refusal(stderr: str) -> ConfigError:
    """sbatch's refusal in one line, naming the key that caused it where it can tell."""
    lines = [ln.removeprefix("sbatch: error: ").strip() for ln in stderr.splitlines() if ln.strip()]
    message = "; ".join(lines) or "sbatch failed without a message"
    lower = message.lower()
    if "account" in lower:  # "Invalid account or account/partition combination specified"
        return ConfigError("cluster.sbatch.account", f"was refused by sbatch: {message}",
                           "use an account you belong to (sshare -U)")
    if "partition" in lower:
        return ConfigError("cluster.partition", f"was refused by sbatch: {message}",
                           "use a partition sinfo lists")
    if "node count" in lower or "nodes" in lower:
        return ConfigError("nnodes", f"was refused by sbatch: {message}",
                           "ask for at most the nodes of the partition (sinfo -s)")
    if "time limit" in lower:
        return ConfigError("cluster.time", f"was refused by sbatch: {message}",
                           "ask for at most the partition's time limit (sinfo -s)")
    return ConfigError(None, f"sbatch refused the job: {message}", "fix the cluster.* keys")


# -- following a job (--wait) -------------------------------------------------------------------


@dataclass(frozen=True)
class JobState:
    """Slurm's view of a job (scontrol show job): its state and ExitCode=CODE:SIGNAL."""

    state: str
    exit_code: int = 0
    signal: int = 0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def exit_status(self) -> int:
        """As erun reports a local run: 0, the exit code, or 128 + the signal."""
        if self.state == "COMPLETED":
            return 0
        if self.signal:
            return 128 + self.signal
        return self.exit_code or 1


ACTIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
                 "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT"}


def job_state(job_id: str) -> JobState:
    """The job's state now (UNKNOWN when the controller no longer knows it)."""
    done = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True,
                          check=False, stdin=subprocess.DEVNULL)
    fields = dict(f.split("=", 1) for f in done.stdout.split() if "=" in f)
    code, _, sig = fields.get("ExitCode", "0:0").partition(":")
    state = fields.get("JobState", "UNKNOWN")
    return JobState(state, int(code or 0) if code.isdigit() else 1, int(sig) if sig.isdigit() else 0)


def follow(job_id: str, output: Path, out: IO[str]) -> int:
    """Copy the batch output (every node's console) to `out` until the job ends; its exit status."""
    offset = 0
    while True:
        state = job_state(job_id)
        offset = copy_new(output, offset, out)
        if not state.active:
            break
        time.sleep(FOLLOW_INTERVAL_S)
    if state.state == "COMPLETED":
        return 0
    print(f"erun: Slurm job {job_id} ended {state.state} (ExitCode {state.exit_code}:{state.signal})",
          file=sys.stderr, flush=True)
    if state.state == "FAILED":
        return nodes_exit_status(output.parent) or state.exit_status
    return state.exit_status


def nodes_exit_status(run_dir: Path) -> int | None:
    """The job's status as its agents recorded it: srun stops the other nodes once one fails
    (--kill-on-bad-exit), so Slurm's ExitCode is often theirs (143), not the failing node's."""
    from runner.record.read import read_json  # only here: not on the submitting path

    codes = []
    for node_dir in RunPaths(run_dir).node_dirs():
        code = read_json(RunPaths(node_dir).summary).get("exit_code")
        if isinstance(code, int) and 0 < code < 128:
            codes.append(code)
    return min(codes) if codes else None


def copy_new(path: Path, offset: int, out: IO[str]) -> int:
    """Write what `path` gained since `offset` (whole lines only); the new offset."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return offset
    end = data.rfind(b"\n") + 1
    if end:
        out.write(data[:end].decode(errors="replace"))
        out.flush()
    return offset + end


SCHEDULER = Slurm()
