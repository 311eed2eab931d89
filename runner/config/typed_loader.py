"""Hydra's config loader, composing erun's command line as Hydra needs it and recording it as
the user typed it (`runner.overrides.Spelling`).

Hydra makes its config loader itself, in every path (a plain run, `-m`, `--cfg`, a sweeper's
points, the joblib launcher's processes, which get it pickled): `run_hydra` has Hydra make this
one while it runs (`installed`). Each `load_configuration` composes the overrides spelled for
Hydra (`+job=train.yaml` as `job@_global_=train`, `params.x=1` as `++params.x=1`), then puts the
typed spelling back where Hydra records the command line: `hydra.overrides.task` (hence
.hydra/overrides.yaml, multirun.yaml and each point's JobReturn.overrides) and
`hydra.job.override_dirname`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from runner.overrides import Spelling

MAX_KEPT = 256  # points of one batch kept between the sweeper's compose and the launcher's


class TypedConfigLoader(ConfigLoaderImpl):
    """Hydra's ConfigLoaderImpl with erun's override spelling (an instance keeps it: pickled)."""

    current = Spelling()  # what the next loader Hydra makes takes (set by `installed`)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spelling = type(self).current
        self.composed: dict[tuple[int, tuple[str, ...]], DictConfig] = {}  # see load_sweep_config

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        """A point's config. Hydra's sweepers compose every point of a batch once to validate it
        (`validate_batch_is_legal`), then the launcher composes it again: the first compose is
        kept and handed, once, to the second (the same inputs give the same config), so a sweep's
        first point starts sooner."""
        key = (id(master_config), tuple(sweep_overrides))
        kept = self.composed.pop(key, None)
        if kept is not None:
            return kept
        config = super().load_sweep_config(master_config, sweep_overrides)
        if len(self.composed) < MAX_KEPT:
            self.composed[key] = copy.deepcopy(config)
        return config

    def load_configuration(self, config_name: str | None, overrides: list[str], run_mode: RunMode,
                           from_shell: bool = True, validate_sweep_overrides: bool = True) -> DictConfig:
        internal = [self.spelling.internal(o) for o in overrides]
        cfg = super().load_configuration(config_name, internal, run_mode, from_shell,
                                         validate_sweep_overrides)
        record_typed(cfg, dict(zip(internal, overrides, strict=True)))
        return cfg


def record_typed(cfg: DictConfig, typed: dict[str, str]) -> None:
    """The task overrides and override_dirname of `cfg`, as typed (`typed`: Hydra's spelling -> typed)."""
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra.core.override_parser.overrides_parser import OverridesParser

    recorded = OmegaConf.to_container(cfg.hydra.overrides.task, resolve=False)  # `${x}` stays as typed
    assert isinstance(recorded, list)
    task = [typed.get(str(o), str(o)) for o in recorded]
    dirname = cfg.hydra.job.config.override_dirname
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.overrides.task = task
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=OverridesParser.create().parse_overrides(task), kv_sep=dirname.kv_sep,
            item_sep=dirname.item_sep, exclude_keys=dirname.exclude_keys)


@contextmanager
def installed(spelling: Spelling) -> Iterator[None]:
    """While it lasts, the config loader Hydra makes is a TypedConfigLoader with `spelling`."""
    from hydra._internal import hydra as hydra_module

    saved = hydra_module.ConfigLoaderImpl
    TypedConfigLoader.current = spelling
    hydra_module.ConfigLoaderImpl = TypedConfigLoader  # type: ignore[misc]
    try:
        yield
    finally:
        hydra_module.ConfigLoaderImpl = saved  # type: ignore[misc]
        TypedConfigLoader.current = Spelling()
