"""Check a `call=pkg.module:function` target before any worker starts, without running user code.

The module is found as the worker's import would find it (its cwd first). Then:
- a module the agent has already imported from that same file (os, json, ...) is asked
  directly: the attribute must exist and be callable;
- a module with Python source is read, not imported: its top level must define the name
  (def, class, assignment, import), and a name bound only to a literal (`sep = "/"`) is no
  callable. A module with `__getattr__` or `from x import *` can define anything: accepted;
- anything else (an extension module, a namespace package) is left for the worker to report.
Importing the module here would run user code in the agent (and could import torch), so no.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

from runner.config.keys import did_you_mean
from runner.errors import ConfigError

# A module file larger than this is not parsed (the worker will say what is wrong).
MAX_SOURCE_BYTES = 4 * 1024 * 1024
# The name is bound by something that may be callable; or the module can bind any name.
MAYBE, ANY_NAME = "maybe", "any"


def check_call_target(target: str, search_path: list[str]) -> None:
    """ConfigError("call", ...) when `target`'s attribute surely is missing or not callable."""
    module_name, _, attr_path = target.partition(":")
    spec = find_spec(module_name, search_path)
    loaded = sys.modules.get(module_name)
    if spec is None and loaded is None:
        return
    if loaded is not None and (spec is None or _same_origin(loaded, spec)):
        _check_object(target, loaded, attr_path)
    elif spec is not None and spec.origin and spec.origin.endswith(".py"):
        _check_source(target, Path(spec.origin), attr_path.split(".")[0])


def find_spec(dotted: str, path: list[str]) -> ModuleSpec | None:
    """The spec the worker's import would use, found without importing (None: not found, or
    not to be told without importing)."""
    try:
        return locate(dotted, path)
    except (ImportError, ValueError):
        return None


def locate(dotted: str, path: list[str]) -> ModuleSpec | None:
    """`find_spec`, raising ImportError or ValueError where only an import could tell (a parent
    package whose import fails, a module without a spec)."""
    parts = dotted.split(".")
    spec = importlib.machinery.PathFinder.find_spec(parts[0], path) or importlib.util.find_spec(parts[0])
    for i in range(1, len(parts)):
        locations = spec.submodule_search_locations if spec else None
        if not locations:
            return None
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), list(locations))
    return spec


def _same_origin(module: Any, spec: ModuleSpec) -> bool:
    """Whether the imported module came from the file the worker would import (a frozen
    stdlib module's spec says "frozen", its __file__ names the source)."""
    loaded = getattr(module, "__spec__", None)
    origins = {getattr(loaded, "origin", None), getattr(module, "__file__", None)}
    return spec.origin is not None and spec.origin in origins


def _check_object(target: str, module: Any, attr_path: str) -> None:
    obj = module
    for attr in attr_path.split("."):
        if not hasattr(obj, attr):
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise ConfigError("call", f"is {target}, but {attr} does not exist there",
                              did_you_mean(attr, names) or "name a function the module defines")
        obj = getattr(obj, attr)
    if not callable(obj):
        raise ConfigError("call", f"is {target}, a {type(obj).__name__}, not a function",
                          "name a function (or a class) to call")


def _check_source(target: str, path: Path, name: str) -> None:
    bindings = _top_level_bindings(path)
    if bindings is None or bindings.get("") == ANY_NAME:
        return
    kind = bindings.get(name)
    if kind is None:
        raise ConfigError("call", f"is {target}, but {path.name} defines no {name}",
                          did_you_mean(name, sorted(k for k in bindings if k)) or
                          "name a function the module defines at its top level")
    if kind not in (MAYBE, "def"):
        raise ConfigError("call", f"is {target}, but {name} is a {kind} in {path.name}, not a function",
                          "name a function (or a class) to call")


def _top_level_bindings(path: Path) -> dict[str, str] | None:
    """Names the module's top level binds: "def", MAYBE, or a literal's type name. The key ""
    is ANY_NAME when the module can bind names it does not spell out. None: cannot tell."""
    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            return None
        tree = ast.parse(path.read_bytes(), str(path))
    except (OSError, SyntaxError, ValueError, RecursionError):
        return None  # the worker will report it, with its traceback
    found: dict[str, str] = {}
    _collect(tree.body, found)
    if any(_binds_dynamically(node) for node in ast.walk(tree)):
        found[""] = ANY_NAME
    return found


def _binds_dynamically(node: ast.AST) -> bool:
    """`global x` in a function, a walrus, globals()/setattr()/exec(): names we cannot list."""
    if isinstance(node, (ast.Global, ast.NamedExpr)):
        return True
    return isinstance(node, ast.Name) and node.id in ("globals", "setattr", "exec", "vars")


def _collect(body: list[ast.stmt], found: dict[str, str]) -> None:
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found[stmt.name] = "def"
            if stmt.name == "__getattr__":
                found[""] = ANY_NAME
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for alias in stmt.names:
                if alias.name == "*":
                    found[""] = ANY_NAME
                found[(alias.asname or alias.name).split(".")[0]] = MAYBE
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            _collect_assign(stmt, found)
        elif isinstance(stmt, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for part in ("body", "orelse", "finalbody"):
                _collect(getattr(stmt, part, []), found)
            for handler in getattr(stmt, "handlers", []):
                _collect(handler.body, found)


def _collect_assign(stmt: ast.Assign | ast.AnnAssign | ast.AugAssign, found: dict[str, str]) -> None:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    literal = _literal_type(stmt.value)
    for target in targets:
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                previous = found.get(node.id)
                # A name bound twice, once to something callable, may be callable.
                single = isinstance(target, ast.Name) and literal and previous in (None, literal)
                found[node.id] = literal if single and literal else MAYBE


def _literal_type(value: ast.expr | None) -> str | None:
    """The type name of a literal value (`"/"`, `3`, `[...]`), else None."""
    if isinstance(value, ast.Constant):
        return type(value.value).__name__
    kinds = {ast.List: "list", ast.Dict: "dict", ast.Set: "set", ast.Tuple: "tuple", ast.JoinedStr: "str"}
    return next((name for kind, name in kinds.items() if isinstance(value, kind)), None)
