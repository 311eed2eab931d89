"""`erun torchrun`'s job run: the job file its flags make (runner.torchrun), staged where it
never outlives erun, then run without Hydra (runner.config.direct: the same plan and record as
`erun +job=FILE`, without Hydra's 0.4-0.5 s of CPU per agent) or, for a dry run or with
ERUN_TORCHRUN_HYDRA=1, through Hydra as `erun +job=FILE` runs it. Errors name the flag the user
typed, never the temporary job file.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.config import staging
from runner.errors import ConfigError, ExitStatus
from runner.torchrun import check_logs_specs, job_file_stem, notes, one_node, parser, render, to_job

HYDRA_PATH_VAR = "ERUN_TORCHRUN_HYDRA"  # 1: compose the job with Hydra, as `erun +job=FILE` does
# Job keys back to the flags they came from: an error found when the job file is compiled
# names the flag the user typed, never the temporary job file.
FLAG_OF = {"role": "--role", "nproc": "--nproc-per-node", "nnodes": "--nnodes", "node_rank": "--node-rank",
           "master_addr": "--master-addr", "rdzv.endpoint": "--rdzv-endpoint", "rdzv.id": "--rdzv-id",
           "rdzv.backend": "--rdzv-backend", "rdzv.settings.local_addr": "--local-addr",
           "rdzv.settings": "--rdzv-conf", "restart.max_restarts": "--max-restarts",
           "restart.stop_grace_s": "--shutdown-timeout", "logs.ranks": "--local-ranks-filter",
           "virtual_local_rank": "--virtual-local-rank", "entrypoint": "training_script",
           "module": "training_script", "exec": "training_script",
           "args": "training_script_args", "hydra.run.dir": "--log-dir", "numa_binding": "--numa-binding",
           "logs.duplicate_filters.stdout": "--duplicate-stdout-filters",
           "logs.duplicate_filters.stderr": "--duplicate-stderr-filters"}


def main(args: Sequence[str]) -> int:
    opts = parser().parse_args(list(args))
    job = to_job(opts)
    lines = notes(opts)
    check_logs_specs(opts.logs_specs)
    if opts.print_config:
        sys.stdout.write(render(job, args))
        return 0
    for line in lines:
        print(f"erun: note: {line}", file=sys.stderr)
    try:
        return run_job(opts, job)
    except staging.StartupStopped as stop:  # the staging folder is gone already
        return ExitStatus.for_signal(stop.signum)


def run_job(opts: argparse.Namespace, job: dict[str, Any]) -> int:
    """The job file in a staging folder that never outlives erun (runner.config.staging), run by erun."""
    from runner.app import main as app_main

    with staging.staging_dir() as staged:
        folder = str(staged)
        path = Path(folder) / f"{job_file_stem(job['name'])}.yaml"
        path.write_text(render(job))
        dry = [f"--dry-run={opts.dry_run}"] if opts.dry_run else []
        record = record_dir(opts)
        try:
            code = run_direct(path, record)
            if code is not None:
                return code
            return app_main([f"+job={path}", *[f"hydra.run.dir={record}"] * bool(record), *dry])
        except ConfigError as e:
            if record and not os.listdir(record):  # refused before it started: leave nothing
                os.rmdir(record)
            if e.source is None or folder not in e.source:
                raise
            raise as_flag_error(e, folder) from None


def run_direct(path: Path, record: str) -> int | None:
    """A run (not a dry run) without Hydra (runner.config.direct: the same plan and record,
    without Hydra's 0.4 s of CPU per agent); None when Hydra's path must run it, or when
    ERUN_TORCHRUN_HYDRA=1 asks for it."""
    if not record or os.environ.get(HYDRA_PATH_VAR, "") not in ("", "0"):
        return None
    from runner.app import start
    from runner.config import direct, gcpause
    from runner.sweep.prepared import PreparedPoint

    with gcpause.paused():
        prepared = direct.prepare(path, record, Path.cwd())
        if prepared is None:
            return None
        direct.configure_logging()
        gcpause.resume()  # start-up is over: the job may run for days
        return int(start(PreparedPoint(*prepared), dict(os.environ)).exit_code)


def record_dir(opts: argparse.Namespace) -> str:
    """Without --log-dir, torchrun writes nothing where it runs (its logs go to a temporary
    folder): so erun's run record goes to a new temporary folder too, which erun's last line
    names ("run dir ..."). With --log-dir D, torchrun's folder D/<rdzv_id>_<random>/, made as
    torchrun makes it (its rank logs go under it, erun's record files beside them). "": a dry
    run writes nothing."""
    if opts.dry_run:
        return ""
    if opts.log_dir:
        os.makedirs(opts.log_dir, exist_ok=True)
        return tempfile.mkdtemp(prefix=f"{_run_id(opts)}_", dir=opts.log_dir)
    return tempfile.mkdtemp(prefix="erun-torchrun-run-")


def _run_id(opts: argparse.Namespace) -> str:
    """torchrun's run id: a fresh uuid4 on one node (it turns --standalone and a lone static
    node into c10d at localhost:0), else --rdzv-id."""
    import uuid

    one = opts.standalone or (one_node(opts) and opts.master_port is None)
    return str(uuid.uuid4()) if one else opts.rdzv_id


def as_flag_error(e: ConfigError, folder: str) -> ConfigError:
    """The same error, about the flag that set the key instead of the temporary job file
    (which `folder` holds: a path the user never wrote is left out of the message)."""
    key = e.key or ""
    e.problem = re.sub(re.escape(folder) + r"[^\s,;)]*(, )?", "", e.problem)
    flag = next((f for k, f in FLAG_OF.items() if key == k or key.startswith(k + ".")), None)
    inner = key.removeprefix("rdzv.settings.") if flag == "--rdzv-conf" else ""
    problem = f"{inner + ' ' if inner else ''}{e.problem}" if flag else f"{key} {e.problem}".strip()
    return ConfigError(flag, problem if flag else f"torchrun flags: {problem}", e.fix)
