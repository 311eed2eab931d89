"""The frozen, validated plan of a job: what the agent runs, and what the run directory records.

A plan is built once (by `runner.config.compile` from a Hydra config, or by hand through the Python
API), never changes, serialises to JSON (`to_dict` / `from_dict`) and holds no live objects.
`__post_init__` guards the invariants the runtime relies on; user-facing config errors that
name keys and files are raised earlier, by the compiler.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from runner.errors import ConfigError

PLAN_VERSION = 1
# What a redacted value reads as, wherever erun writes or prints the plan (plan.json, --dry-run).
REDACTED = "<redacted>"
# Environment names that look secret, matched case-insensitively anywhere in the name; the job
# key `redact` replaces the list (`redact: []` writes every value as is).
DEFAULT_REDACT = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE", "PRIVATE")
# Where a rendezvous backend listens when its endpoint names no port (torch's defaults).
DEFAULT_RDZV_PORTS = {"c10d": 29400, "etcd": 2379, "etcd-v2": 2379}
# torch's rendezvous settings erun fills in when a job leaves them out (torchrun's defaults).
SETTING_DEFAULTS = {"join_timeout": 600, "last_call_timeout": 30}
# torch 2.13's --numa-binding modes (torch/numa/binding.py AffinityMode), and the log layouts.
NUMA_MODES = ("node", "socket", "exclusive", "core-complex")
LOG_LAYOUTS = ("erun", "torchrun")
# Where a worker stream's lines go besides its log file: the console behind logs.prefix, the
# console as written (no prefix), or nowhere else (torchrun --redirects without --tee).
STREAM_MODES = ("console", "raw", "file")
# The fix for a bad value of each key that both the compiler and the plan check: one text,
# whichever finds the mistake (the compiler first, naming the file; a plan built by hand after).
FIXES = {
    "nproc": "use 1 or more workers per node",
    "nnodes": "use N or MIN:MAX with 1 <= MIN <= MAX",
    "role": "name the workers' role, e.g. role=trainer",
    "restart.max_restarts": "use 0 (never restart) or more",
    "restart.stop_grace_s": "use 0 or more seconds",
    "logs.prefix": "use the fields {rank}, {local_rank}, {role}, {attempt}",
}


class EntrypointKind(str, enum.Enum):
    """How a worker is started."""

    SCRIPT = "script"  # python -u script args...
    MODULE = "module"  # python -u -m module args...
    EXEC = "exec"  # executable args... (no python)
    CALL = "call"  # python -u -m runner.worker.call pkg.mod:fn  (fn(**params) in each worker)


@dataclass(frozen=True)
class EntrypointPlan:
    """What each worker process executes. `args` are final: params are already rendered."""

    kind: EntrypointKind
    target: str
    args: tuple[str, ...] = ()
    python: str = sys.executable

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", EntrypointKind(self.kind))
        object.__setattr__(self, "args", tuple(str(a) for a in self.args))
        if not self.target:
            raise ConfigError(f"entrypoint.{self.kind.value}", "is empty", "name what to run")

    def argv(self) -> list[str]:
        """The exact command line, as torchrun builds it for scripts and modules."""
        if self.kind is EntrypointKind.SCRIPT:
            return [self.python, "-u", self.target, *self.args]
        if self.kind is EntrypointKind.MODULE:
            return [self.python, "-u", "-m", self.target, *self.args]
        if self.kind is EntrypointKind.CALL:
            return [self.python, "-u", "-m", "runner.worker.call", self.target, *self.args]
        return [self.target, *self.args]


class BackoffKind(str, enum.Enum):
    NONE = "none"
    FIXED = "fixed"
    EXPONENTIAL = "exponential"


@dataclass(frozen=True)
class BackoffPlan:
    """The wait before restart n (1-based): fixed `initial_s`, or `initial_s * multiplier**(n-1)`
    capped at `max_s`; `jitter` spreads it by up to that fraction either way."""

    kind: BackoffKind = BackoffKind.NONE
    initial_s: float = 1.0
    max_s: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _enum(BackoffKind, self.kind, "restart.backoff.kind"))
        _non_negative("restart.backoff.initial_s", self.initial_s)
        _non_negative("restart.backoff.max_s", self.max_s)
        if self.multiplier < 1:
            raise ConfigError("restart.backoff.multiplier", f"is {self.multiplier}", "use 1 or more")
        if not 0 <= self.jitter <= 1:
            raise ConfigError("restart.backoff.jitter", f"is {self.jitter}", "use a fraction from 0 to 1")


class RuleAction(str, enum.Enum):
    RESTART = "restart"  # restart, spending one restart of the budget
    ALWAYS = "always"  # restart without spending budget (the crash-loop guard still applies)
    GIVE_UP = "give_up"  # do not restart: the failure would only repeat


@dataclass(frozen=True)
class ExitRule:
    """What to do when the root-cause rank ended a certain way. A rule matches when any of its
    lists names the exit code, the signal (e.g. SIGKILL) or the watchdog reason."""

    action: RuleAction
    exit_codes: tuple[int, ...] = ()
    signals: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", _enum(RuleAction, self.action, "restart.rules.action"))
        object.__setattr__(self, "exit_codes", tuple(int(c) for c in self.exit_codes))
        object.__setattr__(self, "signals", tuple(_signal_name(s) for s in self.signals))
        object.__setattr__(self, "reasons", tuple(str(r) for r in self.reasons))
        if not (self.exit_codes or self.signals or self.reasons):
            raise ConfigError("restart.rules", "has a rule that matches nothing",
                              "give exit_codes, signals or reasons")


@dataclass(frozen=True)
class PrewarmPlan:
    """Warm spares (`runner.runtime.spares`): while an attempt runs, one interpreter per local rank starts
    `after_s` after it, imports `modules` and waits; a restart hands each rank to its spare, so
    the next attempt skips the interpreter start and those imports. No modules (the default:
    spares are opt-in, a warm worker is not quite a fresh interpreter): no spares."""

    modules: tuple[str, ...] = ()
    after_s: float = 2.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "modules", tuple(str(m) for m in self.modules))
        _non_negative("restart.prewarm.after_s", self.after_s)
        bad = next((m for m in self.modules if not all(p.isidentifier() for p in m.split("."))), None)
        if bad is not None:
            raise ConfigError("restart.prewarm.modules", f"has `{bad}`, not a module name",
                              "list importable modules, e.g. [torch, numpy]")


@dataclass(frozen=True)
class RestartPlan:
    """When the group is restarted, after how long, and how long a stop may take.

    max_restarts: the budget. reset_after_s: an attempt that ran healthy this long gives the
    whole budget back (0: never). crash_loop_failures/crash_loop_window_s: give up when more
    than that many failures happen within the window, budget or not (0: off). rules: first
    match decides; `default` applies when none matches.
    """

    max_restarts: int = 0
    stop_grace_s: float = 10.0
    backoff: BackoffPlan = field(default_factory=BackoffPlan)
    rules: tuple[ExitRule, ...] = ()
    default: RuleAction = RuleAction.RESTART
    crash_loop_failures: int = 0
    crash_loop_window_s: float = 300.0
    reset_after_s: float = 0.0
    prewarm: PrewarmPlan = field(default_factory=PrewarmPlan)

    def __post_init__(self) -> None:
        _non_negative("restart.max_restarts", self.max_restarts)
        _non_negative("restart.stop_grace_s", self.stop_grace_s)
        _non_negative("restart.crash_loop_failures", self.crash_loop_failures)
        _non_negative("restart.crash_loop_window_s", self.crash_loop_window_s)
        _non_negative("restart.reset_after_s", self.reset_after_s)
        if isinstance(self.backoff, Mapping):
            object.__setattr__(self, "backoff", BackoffPlan(**self.backoff))
        if isinstance(self.prewarm, Mapping):
            object.__setattr__(self, "prewarm", PrewarmPlan(**self.prewarm))
        object.__setattr__(self, "rules", tuple(
            ExitRule(**r) if isinstance(r, Mapping) else r for r in self.rules))
        object.__setattr__(self, "default", _enum(RuleAction, self.default, "restart.default"))

    @property
    def can_restart(self) -> bool:
        """Whether any failure could ever be restarted (budget, or a rule that needs none)."""
        always = RuleAction.ALWAYS
        return self.max_restarts > 0 or self.default is always or any(r.action is always for r in self.rules)


def _non_negative(key: str, value: float) -> None:
    if not math.isfinite(value):  # a hand-written plan.json may hold NaN or Infinity
        raise ConfigError(key, f"is {value}, not a finite number", "use a finite number, 0 or more")
    if value < 0:
        raise ConfigError(key, f"is {value:g}", FIXES.get(key, "use 0 or more"))


def _enum(kind: type[enum.Enum], value: Any, key: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in kind)
        raise ConfigError(key, f"is `{value}`", f"use one of: {choices}") from None


def _signal_name(value: str | int) -> str:
    """SIGKILL, KILL, kill or 9 all mean SIGKILL."""
    import signal as _signal

    text = str(value).upper()
    try:
        return _signal.Signals(int(text)).name
    except ValueError:
        pass
    name = text if text.startswith("SIG") else f"SIG{text}"
    if name not in _signal.Signals.__members__:
        raise ConfigError("restart.rules.signals", f"has unknown signal `{value}`", "use a name like SIGKILL")
    return name


@dataclass(frozen=True)
class HealthPlan:
    """Watchdogs; 0 disables each. A tripped watchdog fails the rank with its own reason.

    heartbeat_timeout_s: a rank that called `runner.heartbeat()` and then stays silent this long
        is hung (torch FileTimerClient timers are always honoured).
    stall_timeout_s: a rank whose process tree used no CPU and wrote no output this long is
        stalled (no code changes needed).
    memory_limit_mb: RSS of a rank's whole process tree above this fails it, before the kernel's
        OOM killer takes the node down.
    file_timer: serve torch's FileTimerClient (TORCHELASTIC_TIMER_FILE); also on when the agent's
        environment has TORCHELASTIC_ENABLE_FILE_TIMER=1, as with torchrun.
    interval_s: how often trees are sampled.
    """

    heartbeat_timeout_s: float = 0.0
    stall_timeout_s: float = 0.0
    memory_limit_mb: float = 0.0
    file_timer: bool = False
    interval_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("heartbeat_timeout_s", "stall_timeout_s", "memory_limit_mb"):
            if getattr(self, name) < 0:
                raise ConfigError(f"health.{name}", f"is {getattr(self, name)}", "use 0 (off) or more")
        if self.interval_s <= 0:
            raise ConfigError("health.interval_s", f"is {self.interval_s}", "use a positive number")

    @property
    def samples_trees(self) -> bool:
        return self.stall_timeout_s > 0 or self.memory_limit_mb > 0


@dataclass(frozen=True)
class LogsPlan:
    """Console output of the workers. Files always get everything.

    `prefix` is a format string with {rank}, {local_rank}, {role} and {attempt}, followed by a
    space unless `prefix_space` is off (or the prefix is empty or ends with one);
    `ranks` limits the console to those global ranks (None: all); `panel` shows a live status
    panel: auto (on a terminal only), on, or off.
    """

    prefix: str = "[{rank}]:"
    prefix_space: bool = True
    ranks: tuple[int, ...] | None = None
    console: bool = True
    panel: str = "auto"
    # The run directory and erun's files in it are the user's only (0700/0600); False: the umask's.
    private: bool = True
    # How the rank folders are named (runner.paths.RunPaths): erun's attempt_N/rank_R/, or
    # torchrun's attempt_N/<local_rank>/ (erun torchrun --log-dir).
    layout: str = "erun"
    stdout: str = "console"  # one of STREAM_MODES
    stderr: str = "console"
    # torchrun's --duplicate-*-filters: a stream's lines shown behind the prefix that contain any
    # of these go to attempt_N/filtered_<stream>.log too (None: no such file; (): an empty one).
    duplicate_stdout: tuple[str, ...] | None = None
    duplicate_stderr: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for stream in ("stdout", "stderr"):
            if getattr(self, stream) not in STREAM_MODES:
                raise ConfigError(f"logs.{stream}", f"is `{getattr(self, stream)}`",
                                  f"use {', '.join(STREAM_MODES)}")
            if (needles := getattr(self, f"duplicate_{stream}")) is not None:  # a list from plan.json
                object.__setattr__(self, f"duplicate_{stream}", tuple(str(n) for n in needles))
        if self.layout not in LOG_LAYOUTS:
            raise ConfigError("logs.layout", f"is `{self.layout}`", f"use {' or '.join(LOG_LAYOUTS)}")
        if self.panel not in ("auto", "on", "off"):
            raise ConfigError("logs.panel", f"is `{self.panel}`", "use auto, on or off")
        if self.ranks is not None:
            object.__setattr__(self, "ranks", tuple(int(r) for r in self.ranks))
        try:
            self.prefix.format(rank=0, local_rank=0, role="r", attempt=0)
        except (KeyError, IndexError, ValueError) as e:
            raise ConfigError(
                "logs.prefix", f"is not a valid format string ({e})",
                FIXES["logs.prefix"],
            ) from None

    def shows(self, rank: int) -> bool:
        return self.console and (self.ranks is None or rank in self.ranks)


@dataclass(frozen=True)
class RdzvPlan:
    """How nodes meet. `standalone` (one node) needs no rendezvous service at all."""

    backend: str = "standalone"
    endpoint: str = ""
    id: str = "none"
    min_nodes: int = 1
    max_nodes: int = 1
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))
        if not 1 <= self.min_nodes <= self.max_nodes:
            raise ConfigError("nnodes", f"is {self.min_nodes}:{self.max_nodes}", FIXES["nnodes"])

    @property
    def single_node(self) -> bool:
        return self.max_nodes == 1


@dataclass(frozen=True)
class JobPlan:
    """Everything the agent needs to run a job on this node."""

    entrypoint: EntrypointPlan
    nproc: int
    run_dir: str
    run_id: str
    name: str = "job"
    role: str = "default"
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    restart: RestartPlan = field(default_factory=RestartPlan)
    logs: LogsPlan = field(default_factory=LogsPlan)
    health: HealthPlan = field(default_factory=HealthPlan)
    rdzv: RdzvPlan = field(default_factory=RdzvPlan)
    master_addr: str = "localhost"
    # One entry per local rank: that rank's CUDA_VISIBLE_DEVICES. Empty: leave devices alone.
    devices: tuple[str, ...] = ()
    # The job's own hyperparameters (already rendered into args for script/module/exec).
    params: Mapping[str, Any] = field(default_factory=dict)
    # The fully resolved job config that workers may read (ERUN_CONFIG); None: not written.
    config_file: str | None = None
    # Environment names whose values are secret (substrings, any case): redacted where written.
    redact: tuple[str, ...] = DEFAULT_REDACT
    # Bind each local rank's CPUs near its GPU, as torch's --numa-binding (runner.runtime.numa).
    numa_binding: str | None = None
    # torchrun --virtual-local-rank: LOCAL_RANK=0 for every worker (each sees its device as cuda:0).
    virtual_local_rank: bool = False
    # Forward SIGUSR1/SIGUSR2 to the workers. False inside a Slurm job step, where Slurm signals
    # every process of the step itself (forwarding again would deliver each signal twice).
    forward_signals: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", MappingProxyType({str(k): str(v) for k, v in self.env.items()}))
        object.__setattr__(self, "redact", tuple(str(p) for p in self.redact))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "devices", tuple(str(d) for d in self.devices))
        object.__setattr__(self, "run_dir", os.path.abspath(self.run_dir))
        if self.nproc < 1:
            raise ConfigError("nproc", f"is {self.nproc}", FIXES["nproc"])
        if self.devices and len(self.devices) != self.nproc:
            raise ConfigError("devices", f"has {len(self.devices)} entries for nproc={self.nproc}",
                              "give one device per local rank")
        if not self.role:
            raise ConfigError("role", "is empty", FIXES["role"])
        if self.numa_binding is not None and self.numa_binding not in NUMA_MODES:
            raise ConfigError("numa_binding", f"is `{self.numa_binding}`",
                              f"use one of {', '.join(NUMA_MODES)}")

    @property
    def warm_spares(self) -> bool:
        """Whether restarts start from warm spares (runner.runtime.spares): they help only a Python
        entrypoint, under a policy that can restart, with modules to import ahead."""
        return bool(self.restart.prewarm.modules) and self.restart.can_restart and (
            self.entrypoint.kind is not EntrypointKind.EXEC)

    def to_dict(self, redacted: bool = False) -> dict[str, Any]:
        data = {"version": PLAN_VERSION, **_plain(self)}
        if redacted:
            data["env"] = redacted_env(self.env, self.redact)
        return data

    def to_json(self, redacted: bool = True) -> str:
        """The plan as erun writes and prints it: secret-looking env values redacted."""
        return json.dumps(self.to_dict(redacted), indent=2, sort_keys=True)

    def secret_env(self) -> dict[str, str]:
        """The env entries that `to_json` redacts, with their values."""
        return {k: v for k, v in self.env.items() if looks_secret(k, self.redact)}

    def with_secrets(self, environ: Mapping[str, str]) -> JobPlan:
        """This plan with each redacted env value taken from `environ` (a plan read back from
        plan.json); a ConfigError names the first one `environ` lacks: never run with REDACTED."""
        missing = sorted(k for k, v in self.env.items() if v == REDACTED and k not in environ)
        if missing:
            name = missing[0]
            raise ConfigError(f"env.{name}", "was redacted when the plan was written (its name looks secret)",
                              f"export {name}=... before `erun run-plan`, so the workers get the real value")
        restored = {k: environ[k] if v == REDACTED else v for k, v in self.env.items()}
        return self if restored == dict(self.env) else dataclasses.replace(self, env=restored)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobPlan:
        data = {k: v for k, v in data.items() if k != "version"}
        nested = {"entrypoint": EntrypointPlan, "restart": RestartPlan, "logs": LogsPlan,
                  "health": HealthPlan, "rdzv": RdzvPlan}
        for key, sub in nested.items():
            if key in data:
                data[key] = sub(**data[key])
        return cls(**data)


def looks_secret(name: str, patterns: tuple[str, ...] = DEFAULT_REDACT) -> bool:
    return any(p and p.upper() in name.upper() for p in patterns)


def redacted_env(env: Mapping[str, str], patterns: tuple[str, ...] = DEFAULT_REDACT) -> dict[str, str]:
    return {k: REDACTED if looks_secret(k, patterns) else v for k, v in env.items()}


def _plain(value: Any) -> Any:
    """Turn dataclasses, enums, tuples and mapping proxies into JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
