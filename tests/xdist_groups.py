"""Two pytest workers (scripts/test.sh: pytest-xdist, `--dist loadgroup`): which tests go to one
worker together, and which the workers take first.

Tests that share a module- or session-scoped fixture (a Slurm cluster, an etcd server, the
bench's smoke run) form a group that one worker runs, so the fixture starts once. xdist's own
loadgroup marks each test of a group by renaming its id (`id@group`); pytest 9 ignores that
rename, so nothing was grouped and such fixtures started on both workers (the bench's 40 s smoke
run twice). Here each worker writes the groups to a file while it collects (both collect the
same tests), and the controller's scheduler, xdist's LoadScopeScheduling with the group as the
scope, reads them when it splits the work.

Order: the workers take the groups first (the biggest first, as xdist does), then the tests
marked slow, then the rest in collection order, so that no long test starts while the other
worker runs out of work.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

GROUPS_VAR = "ERUN_TEST_GROUPS_DIR"  # set by the controller, read by its workers
PER_WORKER_FIXTURES = frozenset({"_runs_index", "tmp_path_factory", "pytestconfig", "worker_id",
                                 "testrun_uid"})
SHARED_SCOPES = ("session", "package", "module")


def group_of(item: pytest.Item) -> str | None:
    """The module- and session-scoped fixtures the test uses, joined; None if it uses none."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    shared = sorted(name for name, defs in info.name2fixturedefs.items()
                    if name not in PER_WORKER_FIXTURES and defs[-1].scope in SHARED_SCOPES)
    return "+".join(shared) or None


def heavy_first(items: list[pytest.Item]) -> None:
    """Grouped tests and tests marked slow before the others (a stable sort: a group's tests
    stay together, in their order)."""
    items.sort(key=lambda item: group_of(item) is None and item.get_closest_marker("slow") is None)


def configure(config: pytest.Config) -> None:
    """In the controller of an xdist run: a folder for the workers' groups."""
    if hasattr(config, "workerinput") or config.getoption("dist", "no") == "no":
        return
    folder = tempfile.mkdtemp(prefix="erun-test-groups-")
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
    os.environ[GROUPS_VAR] = folder  # the workers start after this and inherit it
    config.add_cleanup(lambda: os.environ.pop(GROUPS_VAR, None))


def record(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a worker: write each grouped test's group for the controller."""
    folder = os.environ.get(GROUPS_VAR)
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if folder is None or workerinput is None:
        return
    groups = {item.nodeid: group for item in items if (group := group_of(item))}
    path = Path(folder) / f"{workerinput['workerid']}.json"
    path.with_suffix(".tmp").write_text(json.dumps(groups))
    os.replace(path.with_suffix(".tmp"), path)


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        """xdist's scope scheduling, the scope being the test's group (else the test itself).
        It splits the work only once every worker has collected, so the files are there."""

        _groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self._groups is None:
                self._groups = {}
                for path in sorted(Path(os.environ[GROUPS_VAR]).glob("*.json")):
                    self._groups.update(json.loads(path.read_text()))
            return self._groups.get(nodeid, nodeid)

    return GroupScheduling(config, log)
