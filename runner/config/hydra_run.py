"""Hydra, run with erun's command line (`run_hydra`), and one run composed once: what
`@hydra.main` does for `erun +job=... KEY=VALUE`, without its second compose (`run_once`).

For every run `@hydra.main` composes the config twice: once (in MULTIRUN mode) only to read
`hydra.mode`, then again for the run, with `hydra.mode=RUN` added to the Hydra overrides when
the config chose no mode. That first compose is a fifth of erun's start-up. `run_once` composes
once, in RUN mode, adds what the second compose would have added, and then does what Hydra's
`Hydra.run` and `run_job` do for the one job: the same config, `HydraConfig`, run directory
(`hydra.run.dir`, `${now:...}` included), logging, `.hydra/` files (when `hydra.output_subdir`
is set), `hydra.job.env_set` and task error line.

It only takes command lines of overrides (no flag: `--cfg`, `--help`, `-m`, ... are Hydra's),
and it steps aside, before anything is written or configured, whenever Hydra could do something
else: the compose fails (Hydra's own path then reports the same error, or finds that the config
is a multirun), the config is a multirun (`hydra.mode=MULTIRUN`), or it asks for what this path
does not repeat (callbacks, `hydra.job.chdir`, `hydra.verbose`). The caller then runs
`@hydra.main` as before.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.config import gcpause
from runner.config.argv import CONFIG_NAME, Invocation
from runner.errors import COMMAND_LINE, ConfigError, ErunError
from runner.paths import dir_mode

if TYPE_CHECKING:
    from hydra._internal.hydra import Hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

Task = Callable[[Any], None]

VERSION_BASE = "1.3"  # what run_hydra gives @hydra.main
MODE_OVERRIDE = "hydra.mode=RUN"  # what @hydra.main adds when the config chose no mode


def run_hydra(config_dir: Path, invocation: Invocation, task: Task) -> None:
    """Hydra's main with erun's argv (a plain run composes once: `run_once`); its errors become
    ConfigErrors (one line, exit 2)."""
    import hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from runner.config.schema import register_configs
    from runner.config.typed_loader import installed

    register_configs()
    entry = hydra.main(version_base=VERSION_BASE, config_path=str(config_dir), config_name=CONFIG_NAME)(task)
    args = invocation.hydra_args
    with _hydra_process_state(args), installed(invocation.spelling):
        try:
            if not (takes(args) and run_once(config_dir, CONFIG_NAME, args, task)):
                gcpause.resume()  # Hydra's own path: -m, --help, ..., or what run_once leaves to it
                entry()
        except ErunError:
            raise
        except (HydraException, OmegaConfBaseException) as e:
            from runner.config.hydra_errors import translate

            raise translate(e, invocation) from None
        except SystemExit as e:  # --help, --info, argparse errors
            if e.code not in (0, None):
                raise ErunError("invalid command line (see the usage above)") from None


@contextmanager
def _hydra_process_state(args: list[str]) -> Iterator[None]:
    """Hydra reads sys.argv and reports errors itself unless HYDRA_FULL_ERROR is set."""
    saved_argv, saved_env = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = ["erun", *args]
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        sys.argv = saved_argv
        if saved_env is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_env


def takes(args: list[str]) -> bool:
    """True when `args` (Hydra's command line) holds overrides only, no flag."""
    return not any(a.startswith("-") for a in args)


def run_once(config_dir: Path, config_name: str, overrides: list[str], task: Task) -> bool:
    """Compose once and run `task` as `@hydra.main(config_path=config_dir)` would; False (and
    nothing done) when `@hydra.main` must run instead (see the module docstring)."""
    from hydra import version
    from hydra.core.global_hydra import GlobalHydra

    version.setbase(VERSION_BASE)
    hydra = _create_hydra(config_dir, task)
    try:
        composed = _compose(hydra, config_name, overrides)
        if composed is None:
            return False
        cfg, run_overrides = composed
        _configure_hydra_logging(hydra, cfg, config_name, run_overrides)
        _run_job(cfg, task)
        return True
    finally:
        GlobalHydra.instance().clear()


def _create_hydra(config_dir: Path, task: Task) -> Hydra:
    """Hydra's object for the app, with the search path and task name @hydra.main would give it."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import (
        create_automatic_config_search_path,
        detect_calling_file_or_module_from_task_function,
        detect_task_name,
    )

    calling_file, calling_module = detect_calling_file_or_module_from_task_function(task)
    search_path = create_automatic_config_search_path(calling_file, calling_module, str(config_dir))
    return Hydra.create_main_hydra2(detect_task_name(calling_file, calling_module), search_path)


def _compose(hydra: Hydra, config_name: str, overrides: list[str]) -> tuple[DictConfig, list[str]] | None:
    """The run's config, as Hydra's second compose makes it, and the overrides that compose had;
    None when Hydra must decide."""
    from hydra.types import RunMode

    try:
        cfg = hydra.compose_config(config_name, overrides, run_mode=RunMode.RUN)
    except Exception:  # noqa: BLE001 - @hydra.main composes again and reports it (or runs a multirun)
        return None
    if cfg.hydra.mode is not None and cfg.hydra.mode != RunMode.RUN:
        return None
    if cfg.hydra.callbacks or cfg.hydra.job.chdir or cfg.hydra.verbose:
        return None
    if cfg.hydra.mode is None:
        # @hydra.main found no mode in its first compose, so its second one had this override last.
        cfg.hydra.mode = RunMode.RUN
        cfg.hydra.overrides.hydra.append(MODE_OVERRIDE)
        overrides = [*overrides, MODE_OVERRIDE]
    return cfg, overrides


def _configure_hydra_logging(hydra: Hydra, cfg: DictConfig, config_name: str, overrides: list[str]) -> None:
    """What `Hydra.compose_config(with_log_configuration=True)` does after composing."""
    from hydra._internal import hydra as hydra_module
    from hydra.core.utils import configure_log
    from hydra.types import RunMode

    configure_log(cfg.hydra.hydra_logging, cfg.hydra.verbose)
    hydra_module.log = logging.getLogger(hydra_module.__name__)
    hydra._print_debug_info(config_name, overrides, RunMode.RUN)


def _run_job(cfg: DictConfig, task: Task) -> None:
    """Hydra's `run_job` for one RUN-mode job without callbacks or chdir."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import _flush_loggers, configure_log, env_override

    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg
    hydra_config.set_config(cfg)  # `${hydra:...}` in the run dir resolves
    try:
        _set_output_dir(cfg, hydra_config)
        task_cfg = _task_config(cfg)
        _make_run_dir(cfg)
        configure_log(cfg.hydra.job_logging, cfg.hydra.verbose)
        if cfg.hydra.output_subdir is not None:
            _save_hydra_files(cfg, task_cfg)
        with env_override(cfg.hydra.job.env_set):
            error = _call(task, task_cfg)
        _flush_loggers()
    finally:
        hydra_config.cfg = previous
    if error is not None:
        _raise_as_hydra_does(error, cfg)


def _set_output_dir(cfg: DictConfig, hydra_config: HydraConfig) -> None:
    """`hydra.runtime.output_dir`: the run dir, resolved and absolute, in the config and in
    HydraConfig's copy of its hydra node (Hydra sets it in the config, then copies it again)."""
    from omegaconf import OmegaConf, open_dict, read_write

    output_dir = os.path.abspath(str(OmegaConf.select(cfg, "hydra.run.dir")))
    copied: Any = hydra_config.cfg  # typed HydraConf, really {hydra: HydraConf}
    for runtime in (cfg.hydra.runtime, copied.hydra.runtime):
        with read_write(runtime), open_dict(runtime):
            runtime.output_dir = output_dir


def _task_config(cfg: DictConfig) -> DictConfig:
    """The config the task gets: everything but the `hydra` node."""
    from omegaconf import open_dict, read_write

    task_cfg = copy.deepcopy(cfg)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    return task_cfg


def _save_hydra_files(cfg: DictConfig, task_cfg: DictConfig) -> None:
    """The `.hydra/` record Hydra writes itself when the user chose `hydra.output_subdir`."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import _save_config

    folder = Path(cfg.hydra.runtime.output_dir) / Path(cfg.hydra.output_subdir)
    hydra_cfg: Any = HydraConfig.instance().cfg  # typed HydraConf, really a DictConfig {hydra: ...}
    _save_config(task_cfg, "config.yaml", folder)
    _save_config(hydra_cfg, "hydra.yaml", folder)
    _save_config(cfg.hydra.overrides.task, "overrides.yaml", folder)


def _call(task: Task, task_cfg: DictConfig) -> Exception | None:
    """Run the task; what it raised (Hydra's `run_job` catches it too, and raises it later)."""
    try:
        task(task_cfg)
    except Exception as e:  # noqa: BLE001 - raised again by _raise_as_hydra_does
        return e
    return None


def _raise_as_hydra_does(error: Exception, cfg: DictConfig) -> None:
    """The line Hydra writes before it raises a task's exception again (not for a job that
    failed: its agent said why)."""
    from omegaconf import OmegaConf

    from runner.errors import JobFailed

    if isinstance(error, JobFailed):
        raise error

    overrides = OmegaConf.to_container(cfg.hydra.overrides.task)
    sys.stderr.write(f"Error executing job with overrides: {overrides}" + os.linesep)
    raise error


def _make_run_dir(cfg: DictConfig) -> None:
    from omegaconf import OmegaConf

    private = OmegaConf.select(cfg, "logs.private", default=True) is not False
    make_run_dir(Path(cfg.hydra.runtime.output_dir), private)


def make_run_dir(run_dir: Path, private: bool) -> None:
    """Hydra's run directory, the user's only unless `logs.private=false`; one line when it
    cannot be made (a read-only or full disk), before anything starts."""
    try:
        run_dir.mkdir(mode=dir_mode(private), parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError("hydra.run.dir", f"{run_dir} cannot be created: {e.strerror or e}",
                          "choose a directory you can write, on a disk with space (hydra.run.dir=...)",
                          COMMAND_LINE) from None
