"""erun's shipped config works installed, not only from a checkout: the conf locator finds either
layout, the wheel holds conf/ and examples/ side by side inside the package, and `erun +job=ddp`
runs from an unpacked wheel with no checkout on the path. No virtual environment is built."""

from __future__ import annotations

import json
import posixpath
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import REPO, subprocess_env

from runner.config import confdir, jobfile

SOURCES = ("pyproject.toml", "README.md", "runner", "hydra_plugins", "conf", "examples")
PATH_KEYS = ("entrypoint", "cwd")  # the keys of the shipped jobs that point into examples/


def shipped_job_paths(conf: Path) -> list[str]:
    """Each shipped job's relative entrypoint/cwd, as a path from the conf folder's parent."""
    found = []
    for job in sorted((conf / "job").glob("*.yaml")):
        data = yaml.safe_load(job.read_text())
        found += [posixpath.normpath(f"conf/job/{data[k]}") for k in PATH_KEYS if k in data]
    return found


def test_the_shipped_conf_is_found_in_the_checkout() -> None:
    assert confdir.shipped_conf() == (REPO / "conf").resolve() == jobfile.SHIPPED_CONF
    assert (jobfile.SHIPPED_CONF / "config.yaml").is_file()


def test_an_installed_conf_wins_over_the_checkout(tmp_path: Path) -> None:
    package, checkout = tmp_path / "site" / "runner", tmp_path
    for root in (package, checkout):
        (root / "conf").mkdir(parents=True)
        (root / "conf" / "config.yaml").write_text("defaults: []\n")
    assert confdir.find_conf([package, checkout]) == (package / "conf").resolve()
    assert confdir.find_conf([tmp_path / "empty", checkout]) == (checkout / "conf").resolve()


def test_the_shipped_jobs_point_into_examples_next_to_conf() -> None:
    """Paths that stay inside ROOT/examples hold wherever ROOT is: the checkout or the package."""
    paths = shipped_job_paths(REPO / "conf")
    assert paths
    for path in paths:
        assert path.startswith("examples") and (REPO / path).exists(), path


def test_every_package_is_listed_for_the_wheel() -> None:
    """pyproject.toml lists packages by hand (conf/ and examples/ are mapped): a new one must be added."""
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(d.relative_to(REPO).parts) for top in ("runner", "hydra_plugins")
             for d in [REPO / top, *(REPO / top).rglob("*")] if d.is_dir() and any(d.glob("*.py"))}
    assert found | {"hydra_plugins"} <= listed


# -- the wheel ---------------------------------------------------------------------------------


def copy_sources(dest: Path) -> Path:
    """What the wheel is built from, without __pycache__ folders."""
    dest.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """erun's wheel, built from a copy of the sources (the checkout gets no build/ folder)."""
    pytest.importorskip("setuptools", minversion="70.1")  # bdist_wheel built in; no build isolation
    tmp = tmp_path_factory.mktemp("wheel")
    src = copy_sources(tmp / "src")
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
           "--no-index", "-w", str(tmp / "dist"), str(src)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    (built,) = (tmp / "dist").glob("erun-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_ships_conf_and_examples_inside_the_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    conf = {f"runner/conf/{p.relative_to(REPO / 'conf').as_posix()}" for p in (REPO / "conf").rglob("*.yaml")}
    examples = {f"runner/examples/{p.name}" for p in (REPO / "examples").glob("*.py")}
    assert "runner/conf/config.yaml" in conf and "runner/conf/job/ddp.yaml" in conf
    assert conf | examples <= names, sorted((conf | examples) - names)
    for path in shipped_job_paths(REPO / "conf"):
        assert any(n == f"runner/{path}" or n.startswith(f"runner/{path}/") for n in names), path


@pytest.mark.slow
def test_a_shipped_job_runs_from_the_unpacked_wheel(wheel: Path, tmp_path: Path) -> None:
    site, work = tmp_path / "site", tmp_path / "work"
    zipfile.ZipFile(wheel).extractall(site)
    work.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "runner", "+job=ddp", "--dry-run=json"], cwd=work,
        env=subprocess_env({"PYTHONPATH": str(site)}), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    target = json.loads(result.stdout)["entrypoint"]["target"]
    assert target == str(site / "runner" / "examples" / "ddp_train.py")
