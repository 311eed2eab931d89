"""JSON Schema of the job file, generated from `runner.config.schema` for editors' YAML language servers.

    python -m runner.config.schema_json            # rewrite schemas/job.schema.json
    python -m runner.config.schema_json --check    # exit 1 if the file is stale (CI)

Types follow the dataclasses; a field's `json` metadata replaces the generated schema where the
Python type is looser than the accepted values (nproc: N or cpu/gpu/auto). Numbers and booleans
also accept a `${...}` interpolation string, as Hydra does.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

from runner.config.schema import JobConf

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "job.schema.json"
INTERPOLATION = {"type": "string", "pattern": r"^\$\{.*\}$"}
PRIMITIVES = {int: "integer", float: "number", bool: "boolean", str: "string"}


def job_schema() -> dict[str, Any]:
    """The schema of a job file: JobConf's keys plus Hydra's `defaults` list and `hydra` node."""
    defs: dict[str, Any] = {}
    root = _object(JobConf, defs)
    root["properties"]["defaults"] = {
        "type": "array", "description": "Hydra defaults list, e.g. [override /restart: on_failure, _self_].",
    }
    root["properties"]["hydra"] = {"type": "object", "description": "Hydra's own settings, e.g. run.dir."}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "erun job file",
        "description": (JobConf.__doc__ or "").strip(),
        **root,
        "$defs": dict(sorted(defs.items())),
    }


def _object(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props = {}
    for f in dataclasses.fields(cls):
        prop = dict(f.metadata.get("json") or _type(hints[f.name], defs))
        if f.metadata.get("help"):
            prop["description"] = f.metadata["help"]
        default = _default(f)
        if default is not dataclasses.MISSING:
            prop["default"] = default
        props[f.name] = prop
    return {"type": "object", "properties": props, "additionalProperties": False}


def _type(hint: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [_type(a, defs) for a in args]
        return {"anyOf": options}
    if hint is type(None):
        return {"type": "null"}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        name = hint.__name__
        if name not in defs:
            defs[name] = {}  # placeholder: stops recursion
            body = _object(hint, defs)
            defs[name] = {"description": (hint.__doc__ or "").strip(), **body}
        return {"$ref": f"#/$defs/{name}"}
    if origin is list:
        return {"type": "array", "items": _type(args[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type(args[1], defs)}
    if hint in PRIMITIVES:
        primitive = {"type": PRIMITIVES[hint]}
        return primitive if hint is str else {"anyOf": [primitive, INTERPOLATION]}
    return {}


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return dataclasses.MISSING if dataclasses.is_dataclass(value) else value
    return dataclasses.MISSING


def render() -> str:
    return json.dumps(job_schema(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        stale = not SCHEMA_FILE.is_file() or SCHEMA_FILE.read_text() != text
        if stale:
            print(f"{SCHEMA_FILE.name} is stale: run python -m runner.config.schema_json", file=sys.stderr)
        return 1 if stale else 0
    SCHEMA_FILE.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_FILE.write_text(text)
    print(f"wrote {SCHEMA_FILE.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
