"""MkDocs hooks: pages made at build time from files that already say it, so nothing is written twice.

- `reference.md`, the job file reference, is rendered from schemas/job.schema.json (itself generated
  from runner/config/schema.py; a test keeps the two in step).
- `benchmark-results.md` is bench/RESULTS.md, as `python -m bench --save` last wrote it.

`python docs/hooks.py` prints the reference page (to read it without building the site).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schemas" / "job.schema.json"
RESULTS = ROOT / "bench" / "RESULTS.md"

INTRO = """# Job file reference

Every key of a job file, its type, default and meaning. This page is generated at build time from
`schemas/job.schema.json` (which `python -m runner.config.schema_json` writes from
`runner/config/schema.py`, the one place the keys are defined); `erun --help` prints the same keys.

Exactly one of `entrypoint`, `module`, `exec` and `call` is set. New keys under `params`, `env` and
`rdzv.settings` can be added from the command line as they are
(`params.warmup=100`); elsewhere a key that the schema does not know is an error with a suggestion
(`nprc=8`: "did you mean `nproc`?"). A job file may also hold a Hydra `defaults:` list (to pick
presets) and a `hydra:` node (e.g. `hydra.run.dir`). Numbers and booleans may also be
interpolations (`${...}`).

| key | type | default | meaning |
|---|---|---|---|
"""


def type_of(node: dict[str, Any], defs: dict[str, Any]) -> str:
    """The type of one schema node, in words: `int`, `str | null`, `flags | overrides | env`."""
    if "$ref" in node:
        return "mapping"
    if "const" in node:
        return f"`{node['const']}`"
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if "anyOf" in node:
        parts = [type_of(n, defs) for n in node["anyOf"] if not _is_interpolation(n)]
        return " \\| ".join(dict.fromkeys(p for p in parts if p))
    kind = node.get("type")
    if kind == "array":
        items = node.get("items", {})
        inner = type_of(items, defs) if items else "any"
        return f"list[{inner}]"
    if kind == "object":
        value = node.get("additionalProperties")
        return f"mapping str → {type_of(value, defs)}" if isinstance(value, dict) and value else "mapping"
    names = {"integer": "int", "number": "float", "string": "str", "boolean": "bool", "null": "null"}
    return names.get(str(kind), str(kind or "any"))


def _is_interpolation(node: dict[str, Any]) -> bool:
    return node.get("type") == "string" and node.get("pattern") == "^\\$\\{.*\\}$"


def default_of(node: dict[str, Any]) -> str:
    if "default" not in node:
        return ""
    value = node["default"]
    return "null" if value is None else f"`{json.dumps(value)}`"


def rows(props: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> list[str]:
    """One table row per key, nested mappings (`restart.backoff.kind`) flattened in schema order."""
    out: list[str] = []
    for name, node in props.items():
        key = prefix + name
        target = _resolve(node, defs)
        if target is not None and "properties" in target:
            out.append(_row(key, "mapping", "", target.get("description", node.get("description", ""))))
            out.extend(rows(target["properties"], defs, key + "."))
            continue
        out.append(_row(key, type_of(node, defs), default_of(node), node.get("description", "")))
        item = _resolve(node.get("items", {}), defs) if node.get("type") == "array" else None
        if item is not None and "properties" in item:
            out.extend(rows(item["properties"], defs, key + "[]."))
    return out


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any] | None:
    if "$ref" in node:
        return defs[node["$ref"].rsplit("/", 1)[-1]]
    return None


def _row(key: str, kind: str, default: str, text: str) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return f"| `{key}` | {kind} | {default} | {text} |"


def reference_page(schema_path: Path = SCHEMA) -> str:
    schema = json.loads(schema_path.read_text())
    defs = schema.get("$defs", {})
    body = "\n".join(rows(schema["properties"], defs))
    return INTRO + body + "\n"


def on_files(files: Any, config: Any) -> Any:
    """Adds the generated pages to the site (MkDocs calls this before reading the pages)."""
    from mkdocs.structure.files import File

    generated = {"reference.md": reference_page(), "benchmark-results.md": _results_page()}
    for path, text in generated.items():
        files.append(File.generated(config, path, content=text))
    return files


def _results_page() -> str:
    # The bench writes links relative to bench/; on the site they would point nowhere.
    return RESULTS.read_text().replace("](bench/README.md)", "](benchmarks.md)")


if __name__ == "__main__":
    print(reference_page(), end="")
