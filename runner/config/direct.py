"""One job file prepared without Hydra: what `erun +job=FILE hydra.run.dir=DIR` prepares, for
the job files `erun torchrun` writes (`prepare`; runner.torchrun_job runs it).

Hydra's import and compose cost about 0.4-0.5 s of CPU per agent, more than erun's agent itself
adds to a torchrun job. For this one command line (one job file, its run directory, no other
override) Hydra's work is small and fixed, and done here the same way:

- the config: the schema's defaults, then the `cluster: local` preset (erun's defaults list), then
  the job file as Hydra loads it (`OmegaConf.load`; its `hydra:` node is Hydra's, not the job's);
- the compile context: the same run directory, working directory, host, job name (Hydra's choice
  for `job@_global_`) and key sources (the job file's keys; no command-line key);
- Python logging: Hydra's `hydra/hydra_logging=default`, then erun's `hydra/job_logging=none`;
- the record: job.yaml, .hydra/config.yaml and .hydra/overrides.yaml as the Hydra path writes
  them; .hydra/hydra.yaml holds the run's part of Hydra's config (run dir, mode, overrides, job
  name, cwd, output dir, choices), each value as Hydra's path writes it. Hydra's own fixed
  settings (help texts, launcher, sweeper, logging) and version are left out (Hydra did not run;
  nothing reads them).

It steps aside (None, before anything is written) whenever Hydra could do something else: a job
file with a `defaults:` list or a `hydra:` node other than the run directory, or a config that
OmegaConf refuses (Hydra's path then reports the error as always). tests/test_torchrun_direct.py
compiles every flag family through both paths and compares plans and record files.
"""

from __future__ import annotations

import logging.config
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.config import jobfile
from runner.config.argv import CONFIG_NAME, path_safe, search_path_overrides
from runner.config.hydra_run import MODE_OVERRIDE, VERSION_BASE, make_run_dir
from runner.overrides import JOB_OVERRIDE_KEY, TYPED_JOB
from runner.paths import RunPaths

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from runner.config.sources import CompileContext
    from runner.plan import JobPlan

CLUSTER_PRESET = "local"  # conf/config.yaml's default for the cluster group
# Hydra's hydra/hydra_logging=default (hydra/conf/hydra/hydra_logging/default.yaml) and erun's
# hydra/job_logging=none; tests/test_torchrun_direct.py checks both against Hydra's composed config.
HYDRA_LOGGING: dict[str, Any] = {
    "version": 1,
    "formatters": {"simple": {"format": "[%(asctime)s][HYDRA] %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "simple",
                             "stream": "ext://sys.stdout"}},
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {"logging_example": {"level": "DEBUG"}},
    "disable_existing_loggers": False,
}
JOB_LOGGING: dict[str, Any] = {"version": 1, "root": None, "disable_existing_loggers": False}
# hydra.runtime.choices of such a run, but for the job's (added per run).
CHOICES: dict[str, Any] = {
    "cluster": CLUSTER_PRESET, "rdzv": None, "restart": None, "hydra/env": "default",
    "hydra/callbacks": None, "hydra/job_logging": "none", "hydra/hydra_logging": "default",
    "hydra/hydra_help": "default", "hydra/help": "default", "hydra/sweeper": "basic",
    "hydra/launcher": "erun", "hydra/output": "default",
}


def prepare(path: Path, record: str, cwd: Path) -> tuple[JobPlan, dict[str, str], tuple[str, ...]] | None:
    """The job's plan, record files and overrides (as the Hydra path prepares the point for
    `runner.sweep.prepared.PreparedPoint`), or None: Hydra's path must run it."""
    from runner.config.compile import compile_job

    job = jobfile.load(path)
    cfg = compose(job)
    if cfg is None:
        return None
    run_dir = Path(os.path.abspath(record))
    ctx = context(job, run_dir, cwd)
    private = cfg.logs.private is not False
    make_run_dir(run_dir, private)
    plan = compile_job(cfg, ctx)
    overrides = (typed_job(job),)
    return plan, record_files(plan, cfg, job, cwd), overrides


def compose(job: jobfile.JobFile) -> DictConfig | None:
    """The job's config as Hydra composes it (without the `hydra` node), or None."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from runner.config.schema import JobConf

    hydra_node = job.data.get("hydra")
    if "defaults" in job.data or (hydra_node is not None and not _run_dir_only(hydra_node)):
        return None
    try:
        with open(job.path, encoding="utf-8") as f:
            node = OmegaConf.load(f)
        assert isinstance(node, DictConfig)  # jobfile.load found a mapping
        node.pop("hydra", None)
        preset = OmegaConf.load(jobfile.SHIPPED_CONF / "cluster" / f"{CLUSTER_PRESET}.yaml")
        cfg = OmegaConf.merge(OmegaConf.structured(JobConf), {"cluster": preset}, node)
    except OmegaConfBaseException:  # Hydra's path says what is wrong, as it always has
        return None
    assert isinstance(cfg, DictConfig)
    return cfg


def _run_dir_only(node: Any) -> bool:
    """A `hydra:` node that sets only hydra.run.dir (the command line's wins over it)."""
    return isinstance(node, dict) and set(node) == {"run"} and isinstance(node["run"], dict) \
        and set(node["run"]) == {"dir"}


def context(job: jobfile.JobFile, run_dir: Path, cwd: Path) -> CompileContext:
    """What `runner.app.Session._context` gives the compiler for this run."""
    from runner.config.sources import CompileContext, KeySources
    from runner.devices import HostInfo

    return CompileContext(
        run_dir=str(run_dir.resolve()), run_id=uuid.uuid4().hex[:12], cwd=str(cwd),
        host=HostInfo.detect(os.environ), job_name=job.choice,
        config_file=str(RunPaths(run_dir.resolve()).job_config),
        sources=KeySources(job_file=str(job.path), job_keys=job.dotted_keys()),
    )


def configure_logging() -> None:
    """Python logging as Hydra's path leaves it for the agent."""
    logging.config.dictConfig(HYDRA_LOGGING)
    logging.config.dictConfig(JOB_LOGGING)


def typed_job(job: jobfile.JobFile) -> str:
    """The job override as the Hydra path records it: as typed (runner.overrides), `+job=FILE`."""
    return f"{TYPED_JOB}{job.path}"


def record_files(plan: JobPlan, cfg: DictConfig, job: jobfile.JobFile, cwd: Path) -> dict[str, str]:
    """job.yaml and .hydra/, as `runner.app.record_files` renders them."""
    from omegaconf import OmegaConf

    from runner.config.redact import redacted_config, scrub

    assert plan.config_file is not None
    folder = RunPaths(Path(plan.run_dir)).hydra_dir
    secrets = plan.secret_env()
    task = [typed_job(job)]
    return {
        plan.config_file: redacted_config(cfg, plan, resolve=True),
        str(folder / "config.yaml"): redacted_config(cfg, plan, resolve=False),
        str(folder / "hydra.yaml"): scrub(OmegaConf.to_yaml(hydra_record(plan, job, cwd, task)), secrets),
        str(folder / "overrides.yaml"): scrub(OmegaConf.to_yaml(task), secrets),
    }


def hydra_record(plan: JobPlan, job: jobfile.JobFile, cwd: Path, task: list[str]) -> dict[str, Any]:
    """The run's part of .hydra/hydra.yaml, each value as Hydra's path records it."""
    name = job_name(job)
    overrides = [*search_path_overrides([], cwd), "hydra.output_subdir=null", f"hydra.job.name='{name}'",
                 f"hydra.run.dir={plan.run_dir}", MODE_OVERRIDE]
    return {"hydra": {
        "run": {"dir": plan.run_dir},
        "mode": "RUN",
        "output_subdir": None,
        "overrides": {"hydra": overrides, "task": task},
        "job": {"name": name, "override_dirname": ",".join(task), "config_name": CONFIG_NAME},
        "runtime": {"version_base": VERSION_BASE, "cwd": str(cwd),
                    "output_dir": plan.run_dir, "choices": {JOB_OVERRIDE_KEY: job.choice, **CHOICES}},
    }}


def job_name(job: jobfile.JobFile) -> str:
    """Hydra's hydra.job.name for the run (`runner.config.argv.job_name` with one job file)."""
    given = job.data.get("name")
    return path_safe(str(given)) if isinstance(given, str) and given else job.choice

