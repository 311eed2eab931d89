"""Acceptance: Hydra's own launcher contract (hydra/test_utils/launcher_common_tests.py, from
the installed hydra-core) with `hydra/launcher=erun`, parametrised as Hydra's plugin repositories
do (plugins/hydra_joblib_launcher/tests). Each point's task runs in a process of its own; the
no-survivor check holds for every test. The suites' fixtures (`hydra_sweep_runner`,
`hydra_restore_singletons`) come from hydra-core's pytest plugin. Two slots keep them quick."""

from __future__ import annotations

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

