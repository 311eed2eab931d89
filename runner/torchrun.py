"""`erun torchrun ...`: torchrun's command line, run by erun's agent.

    erun torchrun --nproc-per-node 4 --max-restarts 2 train.py --lr 1e-3
    erun torchrun --print-config --nproc-per-node 4 train.py --lr 1e-3 > train.yaml
    erun +job=train.yaml                          # the same job, now from a job file

The flags become a job file (`to_job`), which is then run as `erun +job=FILE` would
(runner.torchrun_job: without Hydra, to the same plan and record): one path from flags to plan,
so `--print-config` round-trips by construction. Every flag of
torchrun 2.13 is accepted, and so are its `PET_<FLAG>` environment variables (a flag on the
command line wins, as with torchrun). Flags that make no sense for erun (how often to poll,
how to start processes) are accepted and ignored with a one-line note, so a torchrun command
line works as it is. Bad values are refused here, naming the flag, before any file exists.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from runner.errors import ConfigError
from runner.plan import NUMA_MODES

# torchrun flags that erun accepts and ignores, and why.
IGNORED = {
    "monitor_interval": "erun notices a worker's exit at once",
    "start_method": "erun's workers are always fresh processes",
    "logs_specs": "erun always writes every rank's logs to its run directory",
    "event_log_handler": "erun's events are in the run directory's events.jsonl",
    "master_port": "erun gives every attempt a fresh free port",
}
STD = {"0": (), "1": ("stdout",), "2": ("stderr",), "3": ("stdout", "stderr")}
# torchrun reads no PET_ variable for these two (plain argparse flags there).
NO_ENV = {"logs_specs", "numa_binding"}
TORCHRUN_SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT"  # torchrun's --signals-to-handle default
# What erun's agent does with signals, whatever --signals-to-handle lists (runner/signals.py).
ERUN_SIGNALS = {"SIGINT": "stops", "SIGTERM": "stops", "SIGHUP": "stops",
                "SIGUSR1": "forwards", "SIGUSR2": "forwards"}
NPROC_WORDS = ("cpu", "gpu", "auto")
RDZV_BACKENDS = ("c10d", "static", "etcd", "etcd-v2")
# torchrun's console prefix with --tee, and the variable that replaces it (torch's names -> erun's).
DEFAULT_TEE_PREFIX = "[{role}{local_rank}]:"
PREFIX_TEMPLATE_VAR = "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE"
TEMPLATE_FIELDS = {"role_name": "role", "rank": "rank", "local_rank": "local_rank"}
YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "none", "nan", "inf"}


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as one erun line (exit 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(None, f"torchrun flags: {message}", "see `erun torchrun --help`")


def parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """torchrun 2.13's flags (both spellings), defaults from `PET_<FLAG>` in `environ`."""
    p = _Parser(prog="erun torchrun", description="Run a torchrun command line with erun's agent.")
    flag = _flag_adder(p, os.environ if environ is None else environ)
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
    flag("--local-addr", default=None,
         help="this node's address in the rendezvous (rdzv.settings.local_addr)")
    flag("--log-dir", default=None)
    flag("-r", "--redirects", default="0")
    flag("-t", "--tee", default="0")
    flag("--local-ranks-filter", default="")
    flag("--duplicate-stdout-filters", default=None,
         help="A,B: teed stdout lines containing A or B also go to attempt_N/filtered_stdout.log "
              "(,, is a comma; logs.duplicate_filters.stdout)")
    flag("--duplicate-stderr-filters", default=None, help="as --duplicate-stdout-filters, for stderr")
    flag("--signals-to-handle", default=TORCHRUN_SIGNALS,
         help="accepted: erun stops on SIGINT/SIGTERM/SIGHUP and forwards SIGUSR1/SIGUSR2")
    flag("--shutdown-timeout", type=int, default=None,
         help="seconds from SIGTERM to SIGKILL (restart.stop_grace_s)")
    flag("--virtual-local-rank", action="store_true",
         help="LOCAL_RANK=0, one device per worker (virtual_local_rank)")
    flag("--numa-binding", default=None, choices=list(NUMA_MODES),
         help="bind each local rank's CPUs near its GPU, as torchrun (numa_binding)")
    flag("-m", "--module", action="store_true")
    flag("--no-python", action="store_true")
    flag("--run-path", action="store_true")
    for name in IGNORED:
        choices = {"start_method": ["spawn", "fork", "forkserver"]}.get(name)
        flag(f"--{name.replace('_', '-')}", default=None, choices=choices, help=f"ignored: {IGNORED[name]}")
    p.add_argument("--print-config", action="store_true",
                   help="print the equivalent erun job file (give it before the script)")
    p.add_argument("--dry-run", nargs="?", const="text", choices=["text", "json"], help="erun's dry run")
    p.add_argument("training_script")
    p.add_argument("training_script_args", nargs=argparse.REMAINDER)
    return p


def _flag_adder(p: argparse.ArgumentParser, environ: Mapping[str, str]):  # type: ignore[no-untyped-def]
    """Add a flag under both of torchrun's spellings (--nproc-per-node, --nproc_per_node), its
    default taken from PET_NPROC_PER_NODE when set, as torchrun's `env`/`check_env` actions do."""
    def add(*names: str, **kw: Any) -> None:
        spellings = list(names)
        for name in names:
            if name.startswith("--") and "-" in name[2:]:
                spellings.append("--" + name[2:].replace("-", "_"))
        dest = max(names, key=len).lstrip("-").replace("-", "_")
        pet = f"PET_{dest.upper()}"
        if dest not in NO_ENV and pet in environ:
            kw["default"] = _pet_flag(pet, environ[pet]) if kw.get("action") == "store_true" else environ[pet]
        p.add_argument(*spellings, **kw)
    return add


def _pet_flag(name: str, value: str) -> bool:
    """A PET_ variable for an on/off flag: an integer, non-zero meaning on (torchrun's check_env)."""
    try:
        return bool(int(value))
    except ValueError:
        raise ConfigError(name, f"is `{value}`", "use 1 (on) or 0 (off)") from None


def to_job(opts: argparse.Namespace) -> dict[str, Any]:
    """The erun job file that means what the torchrun flags mean."""
    job: dict[str, Any] = {"name": Path(opts.training_script).stem or "job"}
    job.update(_entrypoint(opts))
    job["nproc"] = _nproc(opts.nproc_per_node)
    job.update(_nodes(opts))
    restart = _restart(opts)
    if restart:
        job["restart"] = restart
    if opts.virtual_local_rank:
        job["virtual_local_rank"] = True
    if opts.numa_binding:
        job["numa_binding"] = opts.numa_binding
    if opts.role != "default":
        job["role"] = opts.role
    logs = _logs(opts)
    if logs:
        job["logs"] = logs
    if opts.log_dir:  # torchrun's layout: D/<run_id>_<suffix>/attempt_N/<local_rank>/
        job.setdefault("logs", {})["layout"] = "torchrun"
        # The job file's own run dir (--print-config); a run made here gets torchrun's (`record_dir`).
        job["hydra"] = {"run": {"dir": f"{opts.log_dir}/{opts.rdzv_id}_${{now:%Y-%m-%d_%H-%M-%S}}"}}
    return job


def _nproc(value: str) -> int | str:
    nproc = _int_or_text(value)
    if nproc in NPROC_WORDS or (isinstance(nproc, int) and nproc > 0):
        return nproc
    raise ConfigError("--nproc-per-node", f"is `{value}`", "use a number of workers, cpu, gpu or auto")


def _restart(opts: argparse.Namespace) -> dict[str, Any]:
    """--max-restarts, and --shutdown-timeout (else TORCH_ELASTIC_SHUTDOWN_TIMEOUT, as torchrun)."""
    restart: dict[str, Any] = {}
    if opts.max_restarts < 0:
        raise ConfigError("--max-restarts", f"is {opts.max_restarts}", "use 0 or more")
    if opts.max_restarts:
        restart["max_restarts"] = opts.max_restarts
    grace = opts.shutdown_timeout
    if grace is None and os.environ.get("TORCH_ELASTIC_SHUTDOWN_TIMEOUT"):
        grace = _seconds("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", os.environ["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"])
    if grace is not None:
        if grace < 0:
            raise ConfigError("--shutdown-timeout", f"is {grace}", "use seconds, 0 or more")
        restart["stop_grace_s"] = grace
    return restart


def _seconds(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(name, f"is `{value}`", "use whole seconds, e.g. 30") from None


def _entrypoint(opts: argparse.Namespace) -> dict[str, Any]:
    if opts.module and opts.no_python:
        raise ConfigError("--module", "and --no-python are both set", "use one of them")
    kind = "module" if opts.module else "exec" if opts.no_python else "entrypoint"
    entry: dict[str, Any] = {kind: opts.training_script}
    if opts.training_script_args:
        entry["args"] = list(opts.training_script_args)
    return entry


def _nodes(opts: argparse.Namespace) -> dict[str, Any]:
    if not re.fullmatch(r"\d+(:\d+)?", opts.nnodes) or opts.nnodes.split(":")[0] == "0":
        raise ConfigError("--nnodes", f"is `{opts.nnodes}`", "use a number of nodes, or MIN:MAX")
    nnodes = _int_or_text(opts.nnodes)
    if one_node(opts):
        out: dict[str, Any] = {}
        if opts.master_addr:
            out["master_addr"] = opts.master_addr
        return out  # one node: no rendezvous service at all
    backend = opts.rdzv_backend or "static"
    if backend not in RDZV_BACKENDS:
        raise ConfigError("--rdzv-backend", f"is `{backend}`", f"use one of {', '.join(RDZV_BACKENDS)}")
    rdzv: dict[str, Any] = {"backend": backend, "endpoint": opts.rdzv_endpoint, "id": opts.rdzv_id}
    if backend == "static" and not opts.rdzv_endpoint:  # torchrun: --master-addr:--master-port
        rdzv["endpoint"] = f"{opts.master_addr or '127.0.0.1'}:{opts.master_port or 29500}"
    settings = _settings(opts.rdzv_conf)
    if opts.local_addr:
        settings["local_addr"] = opts.local_addr
    if settings:
        rdzv["settings"] = settings
    out = {"nnodes": nnodes, "rdzv": rdzv}
    if opts.node_rank is not None:
        out["node_rank"] = opts.node_rank
    return out


def one_node(opts: argparse.Namespace) -> bool:
    """A single-node job: erun then needs no rendezvous at all (torchrun's --standalone)."""
    return bool(opts.standalone) or (_int_or_text(opts.nnodes) == 1 and not opts.rdzv_endpoint
                                     and opts.rdzv_backend in (None, "static"))


def _settings(text: str) -> dict[str, Any]:
    """k=v,k2=v2; the whole value may come in quotes, as torch's own launcher test passes it."""
    text = text.strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
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
    # As torch 2.13's DefaultLogsSpecs: a teed stream is tailed to the agent's same stream behind
    # the prefix; a redirected one goes to its file only; any other reaches the console as written
    # (with no --tee, the empty prefix does that).
    teed, redirected = STD[opts.tee], STD[opts.redirects]
    for stream in ("stdout", "stderr"):
        if stream in redirected and stream not in teed:
            logs[stream] = "file"
        elif teed and stream not in teed:
            logs[stream] = "raw"
    logs.update(console_prefix(bool(teed), os.environ.get(PREFIX_TEMPLATE_VAR)))
    filters = {stream: list(comma_list(text)) if stream in teed else []
               for stream in ("stdout", "stderr")
               if (text := getattr(opts, f"duplicate_{stream}_filters")) is not None}
    if filters:  # torch: a file for each stream given filters; lines from the teed streams only
        logs["duplicate_filters"] = filters
    if opts.local_ranks_filter:
        try:
            logs["ranks"] = [int(r) for r in opts.local_ranks_filter.split(",")]
        except ValueError:
            raise ConfigError("--local-ranks-filter", f"is `{opts.local_ranks_filter}`",
                              "use a comma-separated list of ranks, e.g. 0,1") from None
    return logs


def comma_list(text: str) -> list[str]:
    """torchrun's split of a --duplicate-*-filters value: at commas, `,,` being a comma
    (so "" is [""], which every line contains)."""
    return [item.replace("\0", ",") for item in text.replace(",,", "\0").split(",")]


def console_prefix(tee: bool, template: str | None) -> dict[str, Any]:
    """Worker lines on the console as torchrun prints them: raw, or with `--tee` behind
    `[{role}{local_rank}]:` (no space), or behind TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE."""
    if not tee:
        return {"prefix": ""}
    prefix = DEFAULT_TEE_PREFIX if template is None else from_torch_template(template)
    return {"prefix": prefix, "prefix_space": False}


def from_torch_template(template: str) -> str:
    """torch's `${role_name}`/`${rank}`/`${local_rank}` prefix (string.Template, unknown names
    kept as written) as erun's `logs.prefix` format string."""
    marks = {name: f"\0{name}\0" for name in TEMPLATE_FIELDS}
    text = string.Template(template).safe_substitute(marks)
    text = text.replace("{", "{{").replace("}", "}}")
    for name, field in TEMPLATE_FIELDS.items():
        text = text.replace(marks[name], f"{{{field}}}")
    return text


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
    for key in ("name", "entrypoint", "module", "exec"):  # `true`, `null`, `1` stay names
        if key in job:
            job[key] = _Quoted(job[key].replace("${", "\\${"))
    if "args" in job:  # and `${` is literal, not an OmegaConf interpolation
        job["args"] = [_Quoted(a.replace("${", "\\${")) for a in job["args"]]
    if "prefix" in job.get("logs", {}):  # TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE keeps unknown `${x}`
        job["logs"] = {**job["logs"], "prefix": _Quoted(job["logs"]["prefix"].replace("${", "\\${"))}
    if "duplicate_filters" in job.get("logs", {}):  # filters are text as typed: `1e-3`, `true`, `${x}`
        filters = {stream: [_Quoted(n.replace("${", "\\${")) for n in needles]
                   for stream, needles in job["logs"]["duplicate_filters"].items()}
        job["logs"] = {**job["logs"], "duplicate_filters": filters}
    shown = [a for a in args if a != "--print-config"]
    header = f"# erun job file, from: erun torchrun {shlex.join(shown)}\n" if shown else ""
    return header + yaml.dump(job, Dumper=Dumper, sort_keys=False, default_flow_style=None)


def notes(opts: argparse.Namespace) -> list[str]:
    """One line for each flag that erun accepts without doing what torchrun does with it."""
    out = [f"--{k.replace('_', '-')} ignored ({IGNORED[k]})" for k in IGNORED if getattr(opts, k) is not None]
    unhandled = [s for s in _signal_names(opts.signals_to_handle) if s not in ERUN_SIGNALS]
    if opts.signals_to_handle != TORCHRUN_SIGNALS and unhandled:
        out.append(f"--signals-to-handle: erun does not handle {', '.join(unhandled)} (it stops the job "
                   "on SIGINT, SIGTERM, SIGHUP and forwards SIGUSR1, SIGUSR2 to the workers)")
    if opts.local_addr and one_node(opts):
        out.append("--local-addr ignored (one node: no rendezvous to announce it to)")
    return out


def _signal_names(text: str) -> list[str]:
    names = [n.strip().upper() for n in text.split(",") if n.strip()]
    for name in names:
        if not hasattr(signal.Signals, name) and not hasattr(signal.Signals, f"SIG{name}"):
            raise ConfigError("--signals-to-handle", f"has `{name}`, not a signal name",
                              f"use names such as {TORCHRUN_SIGNALS}")
    return [n if n.startswith("SIG") else f"SIG{n}" for n in names]


def check_logs_specs(name: str | None) -> None:
    """torchrun refuses a --logs-specs that no installed package provides; so does erun."""
    if name is None:
        return
    from importlib.metadata import entry_points

    if not entry_points(group="torchrun.logs_specs", name=name):
        raise ConfigError("--logs-specs", f"is `{name}`: no entry point torchrun.logs_specs[{name}]",
                          "install the package that provides it, or drop the flag")


def job_file_stem(name: str) -> str:
    """A file name Hydra takes as a plain name: the job name becomes the override `+job=STEM`,
    where `train(v2)`, `a=b,c`, `true`, `null` or `1` would be parsed, not named."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")
    if not stem or not stem[0].isalpha() or stem.lower() in YAML_WORDS:
        stem = f"job_{stem}".rstrip("_")
    return stem
