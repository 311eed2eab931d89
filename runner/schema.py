"""The job file's schema: Hydra structured-config dataclasses, data only.

Every key a user can write in a job file or on the command line is a field here; Hydra rejects
unknown keys and wrong types at compose time, and `runner.compile` checks what types cannot.
Field metadata holds the help text (`help`) and, where the Python type is looser than the
accepted values, the JSON Schema an editor should use (`json`); `runner.schema_json` turns
these classes into schemas/job.schema.json.

To add a key: add a field with a default and a `help`, then regenerate the JSON Schema
(`python -m runner.schema_json`) and teach `runner.compile` what it means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class RestartConf:
    """When the worker group is restarted after a failure (issue 5 adds backoff and windows)."""

    max_restarts: int = _key(0, "Restarts of the whole group after a failure before giving up (0: never).")
    stop_grace_s: float = _key(10.0, "Seconds between SIGTERM and SIGKILL when stopping workers.")


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
class LogsConf:
    """Console output of the workers; the log files always get everything."""

    prefix: str = _key("[{rank}]:", "Console line prefix; fields {rank}, {local_rank}, {role}, {attempt}.")
    ranks: list[int] | None = _key(None, "Show only these global ranks on the console (null: all).")
    console: bool = _key(True, "Copy worker output to the console at all.")


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
    role: str = _key("default", "Role name of the workers (ROLE_NAME).")
    env: dict[str, str] = _keys(dict, "Extra environment variables for every worker.")
    cwd: str | None = _key(None, "Working directory of the workers (default: where erun runs).")
    master_addr: str = _key("localhost", "MASTER_ADDR the workers meet at (single node: localhost).")
    restart: RestartConf = _keys(RestartConf, "Restart policy.")
    rdzv: RdzvConf = _keys(RdzvConf, "Rendezvous (multi-node).")
    logs: LogsConf = _keys(LogsConf, "Console output.")


def register_configs() -> None:
    """Put the schema in Hydra's ConfigStore; erun.yaml's defaults list starts from it."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=JobConf)
