"""Acceptance: Hydra's own launcher contract (hydra/test_utils/launcher_common_tests.py, from
the installed hydra-core) with `hydra/launcher=erun`, parametrised as Hydra's plugin repositories
do (plugins/hydra_joblib_launcher/tests). Each point's task runs in a process of its own; the
no-survivor check holds for every test. The suites' fixtures (`hydra_sweep_runner`,
`hydra_restore_singletons`) come from hydra-core's pytest plugin. Two slots keep them quick."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)

from hydra_plugins.erun_launcher.erun_launcher import ErunLauncher

pytestmark = pytest.mark.usefixtures("no_survivors")

SLOTS = ["hydra.launcher.slots=2"]


def test_discovery() -> None:
    assert ErunLauncher.__name__ in [x.__name__ for x in Plugins.instance().discover(Launcher)]


@pytest.mark.parametrize("launcher_name, overrides", [("erun", SLOTS)])
class TestErunLauncher(LauncherTestSuite):
    """Hydra's launcher contract on erun's launcher."""


@pytest.mark.parametrize("launcher_name, overrides", [("erun", ["hydra.sweeper.max_batch_size=2", *SLOTS])])
class TestErunLauncherBatched(BatchedSweeperTestSuite):
    """Hydra's basic sweeper, in batches of two, on erun's launcher."""


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({"defaults": [{"override hydra/launcher": "erun"}, {"override hydra/hydra_logging": "hydra_debug"},
                    {"override hydra/job_logging": "disabled"}]}, ["-m", *SLOTS])],
)
class TestErunLauncherIntegration(IntegrationTestSuite):
    """Whole Hydra apps run as scripts, sweeping on erun's launcher."""


@pytest.mark.usefixtures("hydra_restore_singletons")
def test_a_failed_task_is_failed_with_its_traceback(hydra_sweep_runner: Any, tmp_path: Path) -> None:
    def task(cfg: Any) -> Any:
        if cfg.a == 1:
            raise ValueError("a is one")
        return {"a": cfg.a, "pid": os.getpid()}

    sweep = hydra_sweep_runner(calling_file=None, calling_module="hydra.test_utils.a_module",
                               task_function=task, config_path="configs", config_name="compose",
                               temp_dir=tmp_path, overrides=["hydra/launcher=erun", *SLOTS, "+a=0,1"])
    with pytest.raises(ValueError, match="a is one"), sweep:  # the basic sweeper raises the point's error
        pass
    rows = json.loads((tmp_path / "sweep.json").read_text())["points"]
    assert [r["state"] for r in rows] == ["SUCCEEDED", "FAILED"]
    assert rows[0]["result"]["a"] == 0 and rows[0]["result"]["pid"] != os.getpid()  # its own process
    assert "Traceback" in rows[1]["error"] and "ValueError: a is one" in rows[1]["error"]
