"""The entrypoint keys (entrypoint, module, exec, call) compiled into an `EntrypointPlan`, checked
as the worker would find them (a script next to the job file, a module on the worker's path, an
executable on PATH, a `pkg.mod:fn` call target) without importing or running anything."""

from __future__ import annotations

import keyword
import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.config import params as params_mod
from runner.config.calltarget import check_call_target, locate
from runner.config.keys import did_you_mean
from runner.config.schema import PARAMS_AS
from runner.config.sources import CompileContext
from runner.errors import ConfigError
from runner.plan import EntrypointKind, EntrypointPlan
from runner.words import display_path

ENTRYPOINT_KEYS = {"entrypoint": EntrypointKind.SCRIPT, "module": EntrypointKind.MODULE,
                   "exec": EntrypointKind.EXEC, "call": EntrypointKind.CALL}
CALL_TARGET = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def entrypoint_plan(c: dict[str, Any], ctx: CompileContext, workdir: str | None) -> EntrypointPlan:
    chosen = [k for k in ENTRYPOINT_KEYS if c.get(k) not in (None, "")]
    if not chosen:
        raise ConfigError("entrypoint", "is not set: nothing to run",
                          "set one of entrypoint (script), module, exec or call, e.g. +job=train.yaml")
    if len(chosen) > 1:
        raise ConfigError(chosen[1], f"and `{chosen[0]}` are both set",
                          f"keep one (set {chosen[1]}=null or {chosen[0]}=null)")
    key = chosen[0]
    kind, target = ENTRYPOINT_KEYS[key], str(c[key])
    style = _params_as(c.get("params_as", "flags"))
    params = c.get("params") or {}
    args = [str(a) for a in c.get("args") or []]
    if kind is EntrypointKind.CALL:
        _check_call(target, params, workdir or ctx.cwd)
    else:
        args += params_mod.render(params, style)
    if kind is EntrypointKind.SCRIPT:
        target = _script(target, ctx, workdir)
    elif kind is EntrypointKind.MODULE:
        _check_module("module", target, workdir or ctx.cwd)
    elif kind is EntrypointKind.EXEC:
        target = _executable(target, c.get("env") or {}, ctx, workdir)
    return EntrypointPlan(kind=kind, target=target, args=tuple(args), python=sys.executable)


def _script(value: str, ctx: CompileContext, workdir: str | None) -> str:
    return str(_find_file("entrypoint", value, ctx, workdir))


def _find_file(key: str, value: str, ctx: CompileContext, workdir: str | None) -> Path:
    bases = ctx.sources.base_dirs(key, ctx.cwd)
    if workdir and workdir not in bases:
        bases.insert(-1, workdir)
    candidates = [Path(value)] if os.path.isabs(value) else [Path(b) / value for b in bases]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    if any(p.is_dir() for p in candidates):
        raise ConfigError(key, f"is {value}, a directory",
                          "name a file in it, or use module=... for a package")
    where = ", ".join(display_path(str(p.parent)) or "." for p in candidates)
    raise ConfigError(key, f"{value} does not exist (looked in {where})",
                      "check the path (relative paths start at the job file's folder, "
                      "then the working directory)")


def _executable(value: str, env: Mapping[str, str], ctx: CompileContext, workdir: str | None) -> str:
    if "/" in value:
        path = _find_file("exec", value, ctx, workdir)
        if not os.access(path, os.X_OK):
            raise ConfigError("exec", f"{value} is not executable", f"chmod +x {value}")
        return str(path)
    found = shutil.which(value, path=env.get("PATH", os.environ.get("PATH")))
    if found is None:
        raise ConfigError("exec", f"{value} is not on PATH", "give its path, or install it")
    return value


def _check_call(target: str, params: Mapping[str, Any], search_dir: str) -> None:
    if not CALL_TARGET.match(target):
        raise ConfigError("call", f"is {target!r}, not `package.module:function`",
                          "write it as call=mypkg.train:main")
    _check_module("call", target.split(":")[0], search_dir)
    check_call_target(target, [search_dir, *sys.path])
    bad = [k for k in params if not str(k).isidentifier() or keyword.iskeyword(str(k))]
    if bad:
        raise ConfigError(f"params.{bad[0]}", "is not a Python identifier, so not a keyword argument",
                          "rename it (call passes params as fn(**params))")


def _check_module(key: str, dotted: str, search_dir: str) -> None:
    """Find `dotted` as the worker's `python -m` would (its cwd first), without importing it."""
    if not re.match(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$", dotted):
        raise ConfigError(key, f"is {dotted!r}, not a module name", "write it as package.module")
    if not _module_exists(dotted, [search_dir, *sys.path]):
        where = display_path(search_dir) or "."
        raise ConfigError(key, f"names module {dotted}, which is not importable from {where}",
                          "check the spelling, install the package, or set cwd to its parent folder")


def _module_exists(dotted: str, path: list[str]) -> bool:
    if dotted in sys.modules:  # os.path: importable, though os is no package to find it in
        return True
    try:
        return locate(dotted, path) is not None
    except (ImportError, ValueError):
        return True  # cannot tell without importing; let the worker report it


def _params_as(value: Any) -> str:
    if value not in PARAMS_AS:
        hint = did_you_mean(str(value), PARAMS_AS)
        raise ConfigError("params_as", f"is {value!r}", hint or f"use one of {', '.join(PARAMS_AS)}")
    return str(value)


def default_name(entrypoint: EntrypointPlan) -> str:
    target = entrypoint.target.split(":")[-1]
    return Path(target).stem if entrypoint.kind is not EntrypointKind.MODULE else target.split(".")[-1]
