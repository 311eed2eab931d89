"""Config to plan: `compile_job(cfg, ctx)` turns a composed job config into a frozen `JobPlan`.

Hydra has already checked key names and types against `runner.config.schema`; everything types cannot
say is checked here, and every mistake becomes one `ConfigError` naming the key, where it was
set (job file or command line), what is wrong and the fix. Nothing here starts a process or
imports torch: dry runs and tests compile plans freely.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from runner.config.entrypoint import default_name, entrypoint_plan
from runner.config.keys import did_you_mean, suggest_key, unknown_keys
from runner.config.schema import REASONS
from runner.config.sources import CompileContext
from runner.devices import HostInfo, virtual_devices
from runner.errors import ConfigError
from runner.plan import (
    DEFAULT_RDZV_PORTS,
    DEFAULT_REDACT,
    FIXES,
    NUMA_MODES,
    BackoffPlan,
    ExitRule,
    HealthPlan,
    JobPlan,
    LogsPlan,
    PrewarmPlan,
    RdzvPlan,
    RestartPlan,
)

BACKENDS = ("standalone", "c10d", "static", "etcd", "etcd-v2")
# Set by erun for each worker; a job's env must not fight the contract.
RESERVED_ENV = {
    "RANK": "", "LOCAL_RANK": "", "WORLD_SIZE": "nproc/nnodes", "LOCAL_WORLD_SIZE": "nproc",
    "GROUP_RANK": "", "GROUP_WORLD_SIZE": "nnodes", "ROLE_RANK": "", "ROLE_NAME": "role",
    "ROLE_WORLD_SIZE": "", "MASTER_ADDR": "master_addr", "MASTER_PORT": "",
    "TORCHELASTIC_RESTART_COUNT": "", "TORCHELASTIC_MAX_RESTARTS": "restart.max_restarts",
    "TORCHELASTIC_RUN_ID": "", "TORCHELASTIC_ERROR_FILE": "", "TORCHELASTIC_USE_AGENT_STORE": "",
    "ERUN_PARAMS": "params", "ERUN_CONFIG": "", "ERUN_RUN_DIR": "hydra.run.dir", "ERUN_JOB_TOKEN": "",
}
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")



def compile_job(cfg: DictConfig | Mapping[str, Any], ctx: CompileContext) -> JobPlan:
    """The plan for `cfg`, or a ConfigError naming the first mistake and where it was made."""
    try:
        return _compile(resolve(cfg), ctx)
    except ConfigError as e:
        if e.source is None and e.key:
            raise ConfigError(e.key, e.problem, e.fix, ctx.sources.source(e.key)) from None
        raise


def resolve(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The config as plain data: interpolations resolved, `???` values reported."""
    if not isinstance(cfg, DictConfig):
        return dict(cfg)
    try:
        data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as e:
        raise ConfigError(str(e.full_key), "has no value (???)",
                          "set it in the job file or on the command line") from None
    except InterpolationResolutionError as e:
        raise ConfigError(str(e.full_key), f"cannot be resolved: {str(e.msg or e).strip().splitlines()[0]}",
                          "fix the ${...} interpolation") from None
    assert isinstance(data, dict)
    return {str(k): v for k, v in data.items()}


def _compile(c: dict[str, Any], ctx: CompileContext) -> JobPlan:
    for key in unknown_keys(c):  # `+key=...` slips past Hydra's struct check
        raise ConfigError(key, "is not a job key", suggest_key(key))
    check_numbers(c)
    workdir = _workdir(c.get("cwd"), ctx)
    nproc = parse_nproc(c.get("nproc", 1), ctx.host)
    rdzv = _rdzv(c, *parse_nnodes(c.get("nnodes", 1)))
    entrypoint = entrypoint_plan(c, ctx, workdir)
    return JobPlan(
        entrypoint=entrypoint,
        nproc=nproc,
        run_dir=ctx.run_dir,
        run_id=ctx.run_id,
        name=c.get("name") or ctx.job_name or default_name(entrypoint),
        role=_nonempty(c, "role", "default", FIXES["role"]),
        env=_env(c.get("env") or {}),
        cwd=workdir,
        restart=_restart(c.get("restart") or {}),
        health=_health(c.get("health") or {}),
        logs=_logs(c.get("logs") or {}, nproc, rdzv),
        rdzv=rdzv,
        master_addr=_nonempty(c, "master_addr", "localhost", "use a host name or address, e.g. localhost"),
        devices=_devices(c, nproc, ctx.host),
        virtual_local_rank=bool(c.get("virtual_local_rank")),
        numa_binding=_numa(c.get("numa_binding")),
        params=c.get("params") or {},
        config_file=ctx.config_file,
        redact=_redact(c.get("redact", DEFAULT_REDACT)),
    )


# Numbers erun itself uses (counts, seconds, megabytes) stay within this: beyond it, a timeout
# overflows the event loop, a count overflows torch's C++ side, or nothing sensible is meant.
MAX_NUMBER = 2**31 - 1
# Passed through to the workers as they are: their numbers are the user's business.
USER_DATA_KEYS = ("params", "env", "args")


def check_numbers(data: Mapping[str, Any], prefix: str = "") -> None:
    """Every number in erun's own keys is finite and at most MAX_NUMBER in size (inf, nan and
    10**23 are mistakes, and would fail later, or worse, quietly mean 0)."""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if not prefix and key in USER_DATA_KEYS:
            continue
        if isinstance(value, Mapping):
            check_numbers(value, f"{name}.")
        elif isinstance(value, list):
            check_numbers({str(i): v for i, v in enumerate(value)}, f"{name}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            _check_number(name, value)


def _check_number(key: str, value: float) -> None:
    if not math.isfinite(value):
        raise ConfigError(key, f"is {value}, not a finite number", "use a finite number")
    if abs(value) > MAX_NUMBER:
        shown = value if isinstance(value, int) else f"{value:g}"
        raise ConfigError(key, f"is {shown}, too large", f"use a value up to {MAX_NUMBER}")


# -- sizes -------------------------------------------------------------------------------------


def parse_nproc(value: Any, host: HostInfo) -> int:
    """nproc as a number: N, cpu (usable cores), gpu (visible CUDA devices), auto (gpu, else cpu)."""
    word = value.strip().lower() if isinstance(value, str) else None
    if word == "cpu":
        return _within_capacity(host.cpus, host)
    if word == "gpu":
        if not host.gpus:
            raise ConfigError("nproc", f"is gpu, but no CUDA device is visible ({host.gpu_source})",
                              "use nproc=N or nproc=cpu on this machine")
        return len(host.gpus)
    if word == "auto":
        return _within_capacity(len(host.gpus) or host.cpus, host)
    count = _whole_number(value)
    if count is None:
        raise ConfigError("nproc", f"is {value!r}", "use a number of workers, or cpu, gpu or auto")
    if count < 1:
        raise ConfigError("nproc", f"is {count}", FIXES["nproc"])
    return _within_capacity(count, host)


def _within_capacity(count: int, host: HostInfo) -> int:
    """No more workers than the machine can hold: past that, spawning fails halfway (or the
    agent's bookkeeping alone exhausts memory, dry runs included)."""
    most = host.capacity.workers
    if count > most:
        raise ConfigError("nproc", f"is {count}, more than this machine can run ({host.capacity.bound})",
                          f"use nproc={most} or fewer")
    return count


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


def parse_nnodes(value: Any) -> tuple[int, int]:
    """nnodes as (min, max): N is N:N; MIN:MAX lets the job run on MIN to MAX nodes."""
    text = str(value).strip() if not isinstance(value, bool) else ""
    match = re.fullmatch(r"(-?\d+)(?::(-?\d+))?", text)
    if not match:
        raise ConfigError("nnodes", f"is {value!r}", "use N or MIN:MAX, e.g. nnodes=2 or nnodes=1:4")
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) is not None else low
    if not 1 <= low <= high:
        raise ConfigError("nnodes", f"is {text}", FIXES["nnodes"])
    return low, high


def _devices(c: dict[str, Any], nproc: int, host: HostInfo) -> tuple[str, ...]:
    if c.get("virtual_local_rank"):
        if c.get("isolate_gpus"):
            raise ConfigError("isolate_gpus", "is set with virtual_local_rank, which chooses each "
                              "worker's device", "set one of them")
        return virtual_devices(host.cuda_visible, nproc)
    if not c.get("isolate_gpus"):
        return ()
    if len(host.gpus) < nproc:
        raise ConfigError("isolate_gpus", f"needs one CUDA device per worker: nproc={nproc}, "
                          f"{len(host.gpus)} visible ({host.gpu_source})",
                          "use nproc=gpu, or isolate_gpus=false to share the visible devices")
    return host.gpus[:nproc]


# -- rendezvous --------------------------------------------------------------------------------


def _rdzv(c: dict[str, Any], min_nodes: int, max_nodes: int) -> RdzvPlan:
    r = c.get("rdzv") or {}
    backend = str(r.get("backend", "standalone"))
    if backend not in BACKENDS:
        hint = did_you_mean(backend, BACKENDS)
        raise ConfigError("rdzv.backend", f"is {backend!r}, not a known backend",
                          hint or f"use one of {', '.join(BACKENDS)} (or rdzv=c10d)")
    settings = dict(r.get("settings") or {})
    _check_settings(settings)
    if backend == "standalone" and max_nodes > 1:  # several nodes meet through c10d by default
        if not r.get("endpoint"):
            needs = f"is empty, but nnodes={min_nodes}:{max_nodes} needs a rendezvous"
            raise ConfigError("rdzv.endpoint", needs,
                              "set rdzv.endpoint=HOST:29400 (c10d, the multi-node default) or pick rdzv=...")
        backend = "c10d"
    if backend != "standalone":
        _check_endpoint(backend, str(r.get("endpoint") or ""))
    node_rank = c.get("node_rank")
    if backend == "static":
        settings["rank"] = _static_rank(node_rank, min_nodes, max_nodes)
    elif node_rank is not None:
        raise ConfigError("node_rank", f"is set but rdzv.backend is {backend}",
                          "remove it: only static rendezvous takes a fixed node rank")
    return RdzvPlan(backend=backend, endpoint=str(r.get("endpoint") or ""), id=str(r.get("id", "none")),
                    min_nodes=min_nodes, max_nodes=max_nodes, settings=settings)


def _check_endpoint(backend: str, endpoint: str) -> None:
    if not endpoint:
        raise ConfigError("rdzv.endpoint", f"is empty, but {backend} needs host[:port]",
                          "set rdzv.endpoint=HOST:PORT (the rendezvous host)")
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\s]+)(?::(\S*))?", endpoint)
    if not match:
        raise ConfigError("rdzv.endpoint", f"is {endpoint!r}", "write it as host:port, e.g. node0:29400")
    port = match.group(2)
    if port is None and backend not in DEFAULT_RDZV_PORTS:
        raise ConfigError("rdzv.endpoint", f"is {endpoint!r}, without a port", f"{backend} needs host:port")
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ConfigError("rdzv.endpoint", f"has port {port!r}", "use a port from 1 to 65535")


def _check_settings(settings: Mapping[str, Any]) -> None:
    for key, value in settings.items():
        if str(key).endswith("timeout") and not (isinstance(value, (int, float)) and value >= 0):
            raise ConfigError(f"rdzv.settings.{key}", f"is {value!r}", "use seconds, 0 or more")


def _static_rank(node_rank: Any, min_nodes: int, max_nodes: int) -> int:
    if min_nodes != max_nodes:
        raise ConfigError("nnodes", f"is {min_nodes}:{max_nodes}, but static rendezvous is not elastic",
                          f"use nnodes={max_nodes}, or rdzv=c10d for an elastic job")
    if node_rank is None or not 0 <= int(node_rank) < max_nodes:
        raise ConfigError("node_rank", f"is {node_rank}; static rendezvous needs this node's rank",
                          f"set node_rank=0 .. {max_nodes - 1} on each node")
    return int(node_rank)


# -- policies, env, logs -----------------------------------------------------------------------


def _restart(r: Mapping[str, Any]) -> RestartPlan:
    max_restarts = int(r.get("max_restarts", 0))
    grace = float(r.get("stop_grace_s", 10.0))
    if max_restarts < 0:
        raise ConfigError("restart.max_restarts", f"is {max_restarts}", FIXES["restart.max_restarts"])
    if grace < 0:
        raise ConfigError("restart.stop_grace_s", f"is {grace:g}", FIXES["restart.stop_grace_s"])
    policy = {k: r[k] for k in POLICY_KEYS if k in r}
    rules = tuple(_rule(i, rule) for i, rule in enumerate(r.get("rules") or ()))
    return RestartPlan(max_restarts=max_restarts, stop_grace_s=grace, rules=rules,
                       backoff=BackoffPlan(**(r.get("backoff") or {})),
                       prewarm=PrewarmPlan(**(r.get("prewarm") or {})), **policy)


POLICY_KEYS = ("default", "crash_loop_failures", "crash_loop_window_s", "reset_after_s")


def _rule(index: int, rule: Mapping[str, Any]) -> ExitRule:
    unknown = sorted(set(rule.get("reasons") or ()) - set(REASONS))
    if unknown:
        raise ConfigError(f"restart.rules.{index}.reasons", f"has `{unknown[0]}`",
                          f"use one of: {', '.join(REASONS)}")
    try:
        return ExitRule(**rule)
    except ConfigError as e:  # name the rule: restart.rules.1.signals
        field = (e.key or "").removeprefix("restart.rules").lstrip(".")
        key = f"restart.rules.{index}" + (f".{field}" if field else "")
        raise ConfigError(key, e.problem, e.fix) from None


def _health(h: Mapping[str, Any]) -> HealthPlan:
    return HealthPlan(**h)


def _env(env: Mapping[str, Any]) -> dict[str, str]:
    for name in env:
        if not ENV_NAME.match(str(name)):
            raise ConfigError(f"env.{name}", "is not a valid environment variable name",
                              "use letters, digits and _, not starting with a digit")
        if str(name) in RESERVED_ENV:
            use = RESERVED_ENV[str(name)]
            raise ConfigError(f"env.{name}", "is set by erun for each worker",
                              f"use {use}=... instead" if use else "remove it from env")
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _logs(logs: Mapping[str, Any], nproc: int, rdzv: RdzvPlan) -> LogsPlan:
    prefix = str(logs.get("prefix", "[{rank}]:"))
    unknown = sorted(_format_fields(prefix) - {"rank", "local_rank", "role", "attempt"})
    if unknown:
        raise ConfigError("logs.prefix", f"uses {{{unknown[0]}}}",
                          FIXES["logs.prefix"])
    ranks = logs.get("ranks")
    world = nproc if rdzv.single_node else None
    for rank in ranks or ():
        if rank < 0 or (world is not None and rank >= world):
            raise ConfigError("logs.ranks", f"has rank {rank}, outside 0..{(world or 1) - 1}",
                              "list global ranks that exist (or null for all)")
    return LogsPlan(prefix=prefix, prefix_space=bool(logs.get("prefix_space", True)), ranks=ranks,
                    console=bool(logs.get("console", True)), panel=str(logs.get("panel", "auto")),
                    private=bool(logs.get("private", True)), layout=str(logs.get("layout", "erun")),
                    stdout=str(logs.get("stdout", "console")), stderr=str(logs.get("stderr", "console")),
                    **_duplicate_filters(logs.get("duplicate_filters") or {}))


def _duplicate_filters(filters: Mapping[str, Any]) -> dict[str, tuple[str, ...] | None]:
    """logs.duplicate_filters.{stdout,stderr}: lists of strings, or null (no filtered file)."""
    out: dict[str, tuple[str, ...] | None] = {}
    for stream in ("stdout", "stderr"):
        needles = filters.get(stream)
        if needles is not None and (isinstance(needles, (str, bytes)) or not isinstance(needles, Sequence)):
            raise ConfigError(f"logs.duplicate_filters.{stream}", "is not a list",
                              "use a list of strings, e.g. [loss, acc], or null")
        out[f"duplicate_{stream}"] = None if needles is None else tuple(str(n) for n in needles)
    return out


def _numa(mode: Any) -> str | None:
    if mode is None or mode in NUMA_MODES:
        return mode
    raise ConfigError("numa_binding", f"is `{mode}`", f"use one of {', '.join(NUMA_MODES)}, or null")


def _redact(patterns: Any) -> tuple[str, ...]:
    if patterns is None:
        return ()
    if not isinstance(patterns, (list, tuple)) or not all(isinstance(p, str) and p for p in patterns):
        raise ConfigError("redact", f"is {patterns!r}",
                          "give a list of name parts, e.g. redact=[KEY,TOKEN] (or redact=[] for none)")
    return tuple(patterns)


def _format_fields(prefix: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(prefix) if name is not None}
    except ValueError as e:
        raise ConfigError("logs.prefix", f"is not a valid format string ({e})",
                          "escape literal braces as {{ and }}") from None


def _workdir(value: Any, ctx: CompileContext) -> str | None:
    if value in (None, ""):
        return ctx.workdir or ctx.cwd
    base = ctx.sources.base_dirs("cwd", ctx.cwd)[0]
    path = Path(base, str(value)).resolve()
    if not path.is_dir():
        raise ConfigError("cwd", f"{value} is not a directory",
                          "create it, or point cwd at an existing folder")
    return str(path)


def _nonempty(c: dict[str, Any], key: str, default: str, fix: str) -> str:
    value = c.get(key, default)
    if value is None or not str(value).strip():
        raise ConfigError(key, "is empty", fix)
    return str(value)
