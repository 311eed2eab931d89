"""`erun torchrun ...`: torchrun's command line, run by erun's agent.

    erun torchrun --nproc-per-node 4 --max-restarts 2 train.py --lr 1e-3
    erun torchrun --print-config --nproc-per-node 4 train.py --lr 1e-3 > train.yaml
    erun +job=train.yaml                          # the same job, now from a job file

The flags become a job file (`to_job`), which is then run exactly as `erun +job=FILE` would:
one path from flags to plan, so `--print-config` round-trips by construction. Flags that make
no sense for erun (how often to poll, how to start processes) are accepted and ignored with a
note, so a torchrun command line works as it is.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from runner.errors import ConfigError

# torchrun flags that erun accepts and ignores, and why.
IGNORED = {
    "monitor_interval": "erun notices a worker's exit at once",
    "start_method": "erun's workers are always fresh processes",
    "logs_specs": "erun always writes every rank's logs to its run directory",
    "event_log_handler": "erun's events are in the run directory's events.jsonl",
    "master_port": "erun gives every attempt a fresh free port",
    "local_addr": "erun does not use it",
    "numa_binding": "not supported by erun",
}
STD = {"0": (), "1": ("stdout",), "2": ("stderr",), "3": ("stdout", "stderr")}


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as one erun line (exit 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(None, f"torchrun flags: {message}", "see `erun torchrun --help`")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="erun torchrun", description="Run a torchrun command line with erun's agent.")
    flag = _flag_adder(p)
    flag("--nnodes", default="1", help="N or MIN:MAX")
    flag("--nproc-per-node", default="1", help="N, cpu, gpu or auto")
    flag("--node-rank", type=int, default=None)
    flag("--rdzv-backend", default=None)
    flag("--rdzv-endpoint", default="")
    flag("--rdzv-id", default="none")
    flag("--rdzv-conf", default="", help="k=v,k2=v2")
    flag("--standalone", action="store_true")
    flag("--max-restarts", type=int, default=0)
    flag("--role", default="default")
    flag("--master-addr", default=None)
    flag("--log-dir", default=None)
    flag("-r", "--redirects", default="0")
    flag("-t", "--tee", default="0")
    flag("--local-ranks-filter", default="")
    flag("-m", "--module", action="store_true")
    flag("--no-python", action="store_true")
    flag("--run-path", action="store_true")
    for name in IGNORED:
        flag(f"--{name.replace('_', '-')}", default=None, help=f"ignored: {IGNORED[name]}")
    p.add_argument("--print-config", action="store_true",
                   help="print the equivalent erun job file (give it before the script)")
    p.add_argument("--dry-run", nargs="?", const="text", choices=["text", "json"], help="erun's dry run")
    p.add_argument("training_script")
    p.add_argument("training_script_args", nargs=argparse.REMAINDER)
    return p


def _flag_adder(p: argparse.ArgumentParser):  # type: ignore[no-untyped-def]
    """Add a flag under both of torchrun's spellings: --nproc-per-node and --nproc_per_node."""
    def add(*names: str, **kw: Any) -> None:
        spellings = list(names)
        for name in names:
            if name.startswith("--") and "-" in name[2:]:
                spellings.append("--" + name[2:].replace("-", "_"))
        p.add_argument(*spellings, **kw)
    return add


def to_job(opts: argparse.Namespace) -> dict[str, Any]:
    """The erun job file that means what the torchrun flags mean."""
    job: dict[str, Any] = {"name": Path(opts.training_script).stem or "job"}
    job.update(_entrypoint(opts))
    job["nproc"] = _int_or_text(opts.nproc_per_node)
    job.update(_nodes(opts))
    if opts.max_restarts:
        job["restart"] = {"max_restarts": opts.max_restarts}
    if opts.role != "default":
        job["role"] = opts.role
    logs = _logs(opts)
    if logs:
        job["logs"] = logs
    if opts.log_dir:
        job["hydra"] = {"run": {"dir": f"{opts.log_dir}/${{now:%Y-%m-%d_%H-%M-%S}}"}}
    return job


def _entrypoint(opts: argparse.Namespace) -> dict[str, Any]:
    if opts.module and opts.no_python:
        raise ConfigError("--module", "and --no-python are both set", "use one of them")
    kind = "module" if opts.module else "exec" if opts.no_python else "entrypoint"
    entry: dict[str, Any] = {kind: opts.training_script}
    if opts.training_script_args:
        entry["args"] = list(opts.training_script_args)
    return entry


def _nodes(opts: argparse.Namespace) -> dict[str, Any]:
    nnodes = _int_or_text(opts.nnodes)
    if opts.standalone or (nnodes == 1 and not opts.rdzv_endpoint and opts.rdzv_backend in (None, "static")):
        out: dict[str, Any] = {}
        if opts.master_addr:
            out["master_addr"] = opts.master_addr
        return out  # one node: no rendezvous service at all
    backend = opts.rdzv_backend or "static"
    rdzv: dict[str, Any] = {"backend": backend, "endpoint": opts.rdzv_endpoint, "id": opts.rdzv_id}
    if backend == "static" and not opts.rdzv_endpoint:  # torchrun: --master-addr:--master-port
        rdzv["endpoint"] = f"{opts.master_addr or '127.0.0.1'}:{opts.master_port or 29500}"
    settings = _settings(opts.rdzv_conf)
    if settings:
        rdzv["settings"] = settings
    out = {"nnodes": nnodes, "rdzv": rdzv}
    if opts.node_rank is not None:
        out["node_rank"] = opts.node_rank
    return out


def _settings(text: str) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError("--rdzv-conf", f"has `{item}`", "use key=value pairs: --rdzv-conf k=v,k2=v2")
        settings[key.strip()] = _int_or_text(value.strip())
    return settings


def _logs(opts: argparse.Namespace) -> dict[str, Any]:
    logs: dict[str, Any] = {}
    for flag in ("redirects", "tee"):
        if getattr(opts, flag) not in STD:
            raise ConfigError(f"--{flag}", f"is `{getattr(opts, flag)}`", "use 0, 1, 2 or 3")
    if STD[opts.redirects] and not STD[opts.tee]:  # redirected and not teed: files only
        logs["console"] = False
    if opts.local_ranks_filter:
        try:
            logs["ranks"] = [int(r) for r in opts.local_ranks_filter.split(",")]
        except ValueError:
            raise ConfigError("--local-ranks-filter", f"is `{opts.local_ranks_filter}`",
                              "use a comma-separated list of ranks, e.g. 0,1") from None
    return logs


def _int_or_text(value: str) -> int | str:
    return int(value) if value.isdigit() else value


class _Quoted(str):
    """A string written in quotes, so YAML (and OmegaConf's resolvers) keep it as typed:
    the script argument `1e-3` must not become `0.001`, nor `true` a boolean."""


def render(job: dict[str, Any], args: Sequence[str] = ()) -> str:
    """The job as YAML, headed by the command line it came from."""
    import shlex

    import yaml  # Hydra's dependency; only needed here

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(_Quoted, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="'"))
    job = dict(job)
    for key in ("entrypoint", "module", "exec"):
        if key in job:
            job[key] = _Quoted(job[key])
    if "args" in job:  # and `${` is literal, not an OmegaConf interpolation
        job["args"] = [_Quoted(a.replace("${", "\\${")) for a in job["args"]]
    shown = [a for a in args if a != "--print-config"]
    header = f"# erun job file, from: erun torchrun {shlex.join(shown)}\n" if shown else ""
    return header + yaml.dump(job, Dumper=Dumper, sort_keys=False, default_flow_style=None)


def main(args: Sequence[str]) -> int:
    opts = parser().parse_args(list(args))
    ignored = [f"--{k.replace('_', '-')}" for k in IGNORED if getattr(opts, k) is not None]
    job = to_job(opts)
    if opts.print_config:
        sys.stdout.write(render(job, args))
        return 0
    for name in ignored:
        key = name[2:].replace("-", "_")
        print(f"erun: note: {name} ignored ({IGNORED[key]})", file=sys.stderr)
    from runner.app import main as app_main

    with tempfile.TemporaryDirectory(prefix="erun-torchrun-") as folder:
        path = Path(folder) / f"{job['name']}.yaml"
        path.write_text(render(job))
        dry = [f"--dry-run={opts.dry_run}"] if opts.dry_run else []
        return app_main([f"+job={path}", *dry])
