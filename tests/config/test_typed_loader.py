"""erun's Hydra config loader (runner.config.typed_loader), in process: it composes the spelling
Hydra needs and records what was typed, and hands a sweeper's validation compose of a point to
the launcher once (a mutated config never comes back)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_automatic_config_search_path
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from runner.config import argv, staging
from runner.config.schema import register_configs
from runner.config.typed_loader import TypedConfigLoader, installed


@pytest.fixture
def loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """The loader Hydra makes for `erun -m +job=t.yaml params.x=1,2`, and the master config."""
    (tmp_path / "t.yaml").write_text("entrypoint: t.py\nparams:\n  y: 0\n")
    (tmp_path / "t.py").write_text("")
    monkeypatch.chdir(tmp_path)
    register_configs()
    with staging.staging_dir() as folder:
        invocation = argv.shape(["-m", "+job=t.yaml", "params.x=1,2"], tmp_path, folder)
        with installed(invocation.spelling):
            search_path = create_automatic_config_search_path(None, None, str(folder))
            hydra_loader = Hydra.create_main_hydra2("erun", search_path).config_loader
            assert isinstance(hydra_loader, TypedConfigLoader)
            overrides = [a for a in invocation.hydra_args if not a.startswith("-")]
            try:
                yield hydra_loader, hydra_loader.load_configuration("config", overrides, RunMode.MULTIRUN)
            finally:
                GlobalHydra.instance().clear()


def test_the_sweep_is_composed_as_hydra_needs_and_recorded_as_typed(loader: tuple[Any, Any]) -> None:
    hydra_loader, master = loader
    assert list(master.hydra.overrides.task) == ["+job=t.yaml", "params.x=1,2"]
    point = hydra_loader.load_sweep_config(master, ["+job=t.yaml", "params.x=1"])
    assert point.params == {"y": 0, "x": 1} and point.hydra.runtime.choices["job@_global_"] == "t"
    assert list(point.hydra.overrides.task) == ["+job=t.yaml", "params.x=1"]
    assert point.hydra.job.override_dirname == "+job=t.yaml,params.x=1"


def test_a_points_first_compose_is_handed_on_once(loader: tuple[Any, Any]) -> None:
    hydra_loader, master = loader
    overrides = ["+job=t.yaml", "params.x=2"]
    validated = hydra_loader.load_sweep_config(master, overrides)  # the sweeper's check
    with open_dict(validated):
        validated.params.x = 99  # what a caller does to its config is its own
    launched = hydra_loader.load_sweep_config(master, overrides)  # the launcher's: kept, not composed
    assert launched is not validated and launched.params.x == 2
    with open_dict(launched):
        launched.hydra.job.num = 7
    again = hydra_loader.load_sweep_config(master, overrides)  # composed afresh: nothing leaks
    assert OmegaConf.select(again, "hydra.job.num") is None and again.params.x == 2
