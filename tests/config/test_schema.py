"""The editor schema is generated from the dataclasses and current; every shipped YAML file is valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from omegaconf import OmegaConf

from runner.config import schema_json
from runner.config.keys import schema_keys

jsonschema = pytest.importorskip("jsonschema")

CONF = REPO / "conf"
JOB_FILES = sorted((CONF / "job").glob("*.yaml")) + sorted((REPO / "examples").rglob("*.yaml"))
PRESETS = {"restart": "RestartConf", "rdzv": "RdzvConf", "cluster": "ClusterConf"}


def load_yaml(path: Path) -> Any:
    """As Hydra reads it (1e-3 is a float), interpolations left as `${...}` strings."""
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def validator(definition: str | None = None) -> Any:
    schema = schema_json.job_schema()
    if definition is not None:
        schema = {**schema["$defs"][definition], "$defs": schema["$defs"]}
    return jsonschema.Draft202012Validator(schema)


def test_the_committed_schema_is_current() -> None:
    """Fails when runner/schema.py changed without `python -m runner.config.schema_json`."""
    fix = "run: python -m runner.config.schema_json"
    assert schema_json.SCHEMA_FILE.read_text() == schema_json.render(), fix
    assert schema_json.main(["--check"]) == 0


def test_the_schema_is_valid_and_covers_every_key() -> None:
    schema = json.loads(schema_json.SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    top = {k for k in schema_keys() if "." not in k}
    assert top <= set(schema["properties"])
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("path", JOB_FILES, ids=lambda p: p.name)
def test_job_files_are_valid(path: Path) -> None:
    validator().validate(load_yaml(path))


@pytest.mark.parametrize("group,definition", PRESETS.items())
def test_presets_are_valid(group: str, definition: str) -> None:
    files = sorted((CONF / group).glob("*.yaml"))
    assert files
    for path in files:
        validator(definition).validate(load_yaml(path) or {})


def test_the_primary_config_is_valid() -> None:
    validator().validate(load_yaml(CONF / "config.yaml"))


def test_every_yaml_file_in_conf_and_examples_is_checked() -> None:
    every = set(CONF.rglob("*.yaml")) | set((REPO / "examples").rglob("*.yaml"))
    presets = {p for group in PRESETS for p in (CONF / group).glob("*.yaml")}
    checked = set(JOB_FILES) | {CONF / "config.yaml"} | presets
    assert every == checked


@pytest.mark.parametrize("bad", [
    {"nproc": 0}, {"nproc": "many"}, {"nporc": 2}, {"restart": {"max_restarts": "x"}},
    {"rdzv": {"backend": "zk"}}, {"call": "no_colon"}, {"params_as": "argv"}, {"nnodes": "1-2"},
])
def test_the_schema_rejects_what_the_compiler_rejects(bad: dict[str, Any]) -> None:
    assert not validator().is_valid(bad)


def test_the_schema_accepts_interpolations_for_numbers() -> None:
    validator().validate({"restart": {"max_restarts": "${oc.env:RESTARTS}"}, "nproc": "gpu", "nnodes": "1:4"})
