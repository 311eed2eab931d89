"""The job file's schema: Hydra structured-config dataclasses, data only.

Every key a user can write in a job file or on the command line is a field here; Hydra rejects
unknown keys and wrong types at compose time, and `runner.config.compile` checks what types cannot.
Field metadata holds the help text (`help`) and, where the Python type is looser than the
accepted values, the JSON Schema an editor should use (`json`); `runner.config.schema_json` turns
these classes into schemas/job.schema.json.

To add a key: add a field with a default and a `help`, then regenerate the JSON Schema
(`python -m runner.config.schema_json`) and teach `runner.config.compile` what it means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.plan import DEFAULT_REDACT, LOG_LAYOUTS, NUMA_MODES, STREAM_MODES

SCHEMA_NAME = "erun_job_schema"

NPROC_JSON = {"anyOf": [{"type": "integer", "minimum": 1}, {"enum": ["cpu", "gpu", "auto"]}]}
NNODES_JSON = {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": r"^\d+(:\d+)?$"}]}
PARAMS_AS = ("flags", "overrides", "env")


def _key(default: Any = None, help: str = "", json: dict[str, Any] | None = None) -> Any:
    meta: dict[str, Any] = {"help": help}
    if json is not None:
        meta["json"] = json
    return field(default=default, metadata=meta)


def _keys(factory: Any, help: str = "") -> Any:
    return field(default_factory=factory, metadata={"help": help})


def _key_list(choices: list[str], help: str) -> Any:
    """A list of strings from `choices` (empty by default)."""
    return field(default_factory=list, metadata={"help": help,
                                                 "json": {"type": "array", "items": {"enum": choices}}})


REASONS = ["exit", "heartbeat_timeout", "timer_expired", "stalled", "memory_limit", "preempted"]
ACTIONS = ["restart", "always", "give_up"]


@dataclass
class BackoffConf:
    """The wait before each restart."""

    kind: str = _key("none", "none, fixed (initial_s each time) or exponential (initial_s * multiplier^n).",
                     json={"enum": ["none", "fixed", "exponential"]})
    initial_s: float = _key(1.0, "The first wait (fixed: every wait), in seconds.")
    max_s: float = _key(60.0, "The longest wait (exponential), in seconds.")
    multiplier: float = _key(2.0, "Growth per consecutive failure (exponential), 1 or more.")
    jitter: float = _key(0.0, "Spread each wait by up to this fraction either way (0 to 1).")


@dataclass
class RuleConf:
    """What to do when the first failing rank ended a certain way (first matching rule wins)."""

    action: str = _key("restart", "restart (spends budget), always (restarts without spending budget) "
                       "or give_up.", json={"enum": ACTIONS})
    exit_codes: list[int] = _keys(list, "Exit codes this rule matches, e.g. [2].")
    signals: list[str] = _keys(list, "Signals this rule matches, e.g. [SIGKILL].")
    reasons: list[str] = _key_list(REASONS, "Watchdog reasons this rule matches, e.g. [memory_limit].")


@dataclass
class PrewarmConf:
    """Warm spares: the next attempt's interpreters, started ahead with the slow imports done."""

    modules: list[str] = field(default_factory=list, metadata={
        "help": "Modules each spare imports ahead of a restart, e.g. [torch]; [] (the default) "
                "turns spares off. Opt-in: a warm worker differs slightly from a fresh interpreter "
                "(docs/warm-restarts.md)."})
    after_s: float = _key(2.0, "Seconds after an attempt starts before its spares start "
                          "(the attempt's own imports go first).")


@dataclass
class RestartConf:
    """When the worker group is restarted after a failure, after how long, and when to give up."""

    max_restarts: int = _key(0, "Restarts of the whole group after a failure before giving up (0: never).")
    stop_grace_s: float = _key(10.0, "Seconds between SIGTERM and SIGKILL when stopping workers.")
    backoff: BackoffConf = _keys(BackoffConf, "Wait before each restart.")
    rules: list[RuleConf] = _keys(list, "Rules by exit code, signal or watchdog reason; first match wins.")
    default: str = _key("restart", "What failures no rule matches get: restart, always or give_up.",
                        json={"enum": ACTIONS})
    crash_loop_failures: int = _key(
        0, "Give up when more than this many failures happen within crash_loop_window_s (0: off).")
    crash_loop_window_s: float = _key(300.0, "The crash-loop guard's window, in seconds.")
    reset_after_s: float = _key(
        0.0, "An attempt that ran this long before failing gives the whole budget back (0: never).")
    prewarm: PrewarmConf = _keys(PrewarmConf, "Warm spares (off unless `modules` is set, or "
                                 "restart=warm): restarts skip the interpreter start and the imports "
                                 "of `modules` (when the policy can restart).")


@dataclass
class HealthConf:
    """Watchdogs; each fails a rank with its own reason, and the restart policy decides."""

    heartbeat_timeout_s: float = _key(
        0.0, "A rank that called runner.heartbeat() and is then silent this long is hung (0: off).")
    stall_timeout_s: float = _key(
        0.0, "A rank whose process tree used no CPU and wrote no output this long is stalled (0: off).")
    memory_limit_mb: float = _key(0.0, "RSS limit of each rank's whole process tree, in MiB (0: off).")
    file_timer: bool = _key(False, "Serve torch's FileTimerClient (TORCHELASTIC_TIMER_FILE).")
    interval_s: float = _key(1.0, "How often the watchdogs sample, in seconds.")


@dataclass
class RdzvConf:
    """How nodes meet. `standalone` needs no rendezvous service (one node)."""

    backend: str = _key(
        "standalone", "Rendezvous backend: standalone, c10d, static, etcd or etcd-v2.",
        json={"enum": ["standalone", "c10d", "static", "etcd", "etcd-v2"]},
    )
    endpoint: str = _key("", "host[:port] of the rendezvous service (c10d, etcd) or of node 0 (static).")
    id: str = _key("none", "Job id shared by all nodes of one job (torchrun's --rdzv-id).")
    settings: dict[str, Any] = _keys(dict, "Backend settings, e.g. join_timeout, last_call_timeout.")


@dataclass
class DuplicateFiltersConf:
    """Filtered copies of the console lines (torchrun's --duplicate-stdout/stderr-filters)."""

    stdout: list[str] | None = _key(None, "Copy each stdout line shown behind the prefix (logs.stdout: "
                                    "console, logs.ranks) that contains any of these strings, prefix "
                                    "included, to attempt_N/filtered_stdout.log; null: no file, []: an "
                                    "empty file.")
    stderr: list[str] | None = _key(None, "As stdout, for stderr lines, to attempt_N/filtered_stderr.log.")


@dataclass
class LogsConf:
    """Console output of the workers; the log files always get everything."""

    prefix: str = _key("[{rank}]:", "Console line prefix; fields {rank}, {local_rank}, {role}, {attempt}.")
    prefix_space: bool = _key(True, "Put a space between the prefix and the line (torchrun's prefix "
                              "has none: erun torchrun turns it off).")
    ranks: list[int] | None = _key(None, "Show only these global ranks on the console (null: all).")
    console: bool = _key(True, "Copy worker output to the console at all.")
    panel: str = _key("auto", "Live status panel: auto (on a terminal), on or off.",
                      json={"enum": ["auto", "on", "off"]})
    private: bool = _key(True, "Run directory and erun's files readable by you only (0700/0600); "
                         "false: as the umask allows.")
    layout: str = _key("erun", "Rank log folders: erun (attempt_N/rank_R/) or torchrun "
                       "(attempt_N/<local_rank>/, as torchrun --log-dir).", json={"enum": list(LOG_LAYOUTS)})
    stdout: str = _key("console", "Workers' stdout besides its log file: console (behind the prefix), raw "
                       "(on the console, no prefix) or file (not on the console).",
                       json={"enum": list(STREAM_MODES)})
    stderr: str = _key("console", "Workers' stderr, as logs.stdout.", json={"enum": list(STREAM_MODES)})
    duplicate_filters: DuplicateFiltersConf = _keys(DuplicateFiltersConf, "Filtered copies of the console "
                                                    "lines, as torchrun's --duplicate-*-filters.")


@dataclass
class ClusterConf:
    """Where the job runs: here (local), or submitted to a cluster scheduler (runner.cluster)."""

    backend: str = _key("local", "local (this machine) or slurm (sbatch; cluster=slurm).",
                        json={"enum": ["local", "slurm"]})
    partition: str = _key("", "Slurm partition (empty: the cluster's default).")
    time: str = _key("", "Walltime, as sbatch --time takes it, e.g. 1:00:00 (empty: the partition's).")
    sbatch: dict[str, Any] = _keys(dict, "Any sbatch option, e.g. sbatch.account=proj "
                                   "sbatch.cpus-per-task=8 (true: a flag without a value).")
    setup: list[str] = _keys(list, "Shell lines run on each node before erun (module load, conda activate).")
    python: str = _key("", "The Python that runs erun on the nodes (empty: the one submitting).")
    warning_s: int = _key(120, "Slurm warns this many seconds before the job's end (preemption, walltime): "
                          "each worker gets SIGUSR1 once to checkpoint, then erun requeues the job, which "
                          "continues the run directory (0: no warning, no requeue).", json={"minimum": 0})


@dataclass
class JobConf:
    """A job: what each worker runs, how many, and under which policies."""

    name: str | None = _key(None, "Job name (default: the job file's name, else the entrypoint's).")
    entrypoint: str | None = _key(None, "Python script each worker runs (python -u SCRIPT ARGS).")
    module: str | None = _key(None, "Python module each worker runs (python -u -m MODULE ARGS).")
    exec: str | None = _key(None, "Executable each worker runs, no python (EXEC ARGS).")
    call: str | None = _key(
        None, "Python callable `pkg.mod:fn`, called in each worker as fn(**params).",
        json={"anyOf": [{"type": "null"}, {"type": "string", "pattern": r"^[\w.]+:[\w.]+$"}]},
    )
    args: list[str] = _keys(list, "Arguments after the entrypoint (before the rendered params).")
    params: dict[str, Any] = _keys(dict, "The job's own hyperparameters; see params_as.")
    params_as: str = _key(
        "flags", "How params reach the worker: flags (--key=value args), overrides (key=value args), "
        "env (ERUN_PARAMS only).", json={"enum": list(PARAMS_AS)},
    )
    nproc: Any = _key(1, "Workers on this node: N, cpu, gpu or auto.", json=NPROC_JSON)
    nnodes: Any = _key(1, "Nodes: N or MIN:MAX (elastic).", json=NNODES_JSON)
    node_rank: int | None = _key(None, "This node's rank (static rendezvous only).")
    isolate_gpus: bool = _key(
        False, "With nproc=gpu: give local rank i CUDA_VISIBLE_DEVICES=<i-th visible device> "
        "(it then sees one device, cuda:0).",
    )
    virtual_local_rank: bool = _key(
        False, "As torchrun --virtual-local-rank: every worker gets LOCAL_RANK=0 and, as its only device, "
        "CUDA_VISIBLE_DEVICES=<the i-th entry of erun's CUDA_VISIBLE_DEVICES> (local rank i; unset: i).",
    )
    numa_binding: str | None = _key(
        None, "Bind each local rank's CPUs near its GPU (GPU = local rank), as torchrun --numa-binding: "
        "node, socket, exclusive or core-complex (null: no binding).",
        json={"anyOf": [{"type": "null"}, {"enum": list(NUMA_MODES)}]},
    )
    role: str = _key("default", "Role name of the workers (ROLE_NAME).")
    env: dict[str, str] = _keys(dict, "Extra environment variables for every worker.")
    redact: list[str] = _keys(lambda: list(DEFAULT_REDACT),
                              "env names containing any of these (any case) are written and printed "
                              "as <redacted>; workers get the real values. []: redact nothing.")
    cwd: str | None = _key(None, "Working directory of the workers (default: where erun runs).")
    master_addr: str = _key("localhost", "MASTER_ADDR the workers meet at (single node: localhost).")
    restart: RestartConf = _keys(RestartConf, "Restart policy.")
    health: HealthConf = _keys(HealthConf, "Health watchdogs: hangs, stalls, memory.")
    rdzv: RdzvConf = _keys(RdzvConf, "Rendezvous (multi-node).")
    logs: LogsConf = _keys(LogsConf, "Console output.")
    cluster: ClusterConf = _keys(ClusterConf, "Where the job runs: local, or cluster=slurm.")


def register_configs() -> None:
    """Put the schema in Hydra's ConfigStore; erun.yaml's defaults list starts from it."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=JobConf)
