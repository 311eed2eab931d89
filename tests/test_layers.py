"""Guards the architecture (docs/ARCHITECTURE.md): who may import whom, no import loops, worker/
stays standard-library only, no module grows past a few hundred lines.

Fast and static: every module under runner/ and hydra_plugins/ is parsed with `ast`; its imports
of erun modules (module level and inside functions, `if TYPE_CHECKING:` blocks skipped) are
checked against the table below. One subprocess checks what `import runner` really loads.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOTS = ("runner", "hydra_plugins")
MAX_LINES = 450
ANY = "*"

# The layers. `where`: module names; "x.*" is package x and everything below it, anything else is
# exactly that module. `may_import`: the other layers it may import (its own is always allowed).
# A new package is one line here; a module that matches no line fails the tests.
#
#   layer         where                                    may_import
LAYERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "worker":     (("runner.worker.*",),                   ()),
    "foundation": (("runner.plan", "runner.state", "runner.errors", "runner.paths",
                    "runner.devices", "runner.words", "runner.overrides"), ()),
    "record":     (("runner.record.*",),                   ("foundation",)),
    "config":     (("runner.config.*",),                   ("foundation",)),
    "runtime":    (("runner.runtime.*",),                  ("foundation", "record", "worker")),
    "report":     (("runner.report.*",),                   ("foundation", "record", "cluster")),
    "cluster":    (("runner.cluster.*",),                  ("foundation", "config", "record")),
    "sweep":      (("runner.sweep.*",),                    ("foundation", "config", "runtime", "record",
                                                             "cluster")),
    # The Python API (runner.launch, runner.compose, runner.compat): an entry point like cli,
    # but the agent only ever runs in its child process (runner.api.child -> runner.app).
    "api":        (("runner.api.*", "runner.compat"),    ("foundation", "config", "runtime", "record",
                                                           "worker", "entry")),
    "entry":      (("runner", "runner.__main__", "runner.cli", "runner.app", "runner.torchrun",
                    "runner.torchrun_job",
                    "hydra_plugins.erun_launcher.*"),      (ANY,)),
}

# The only modules that may import torch, and why (the runtime's rule: torch only for rendezvous).
TORCH_ALLOWED = {
    "runner.runtime.rendezvous": "torch's rendezvous backends, for multi-node plans",
    "runner.worker.call": "torch's @record, only when the worker already imported torch",
}
HEAVY = ("torch", "hydra", "omegaconf")  # what a bare `import runner` must not load


@dataclass(frozen=True)
class Import:
    """One import statement of a module: what it names (absolute, dotted) and where."""

    importer: str
    target: str
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def erun_files() -> dict[str, Path]:
    """Every erun module by dotted name (hydra_plugins is a namespace package: no __init__)."""
    files = sorted(p for root in ROOTS for p in (REPO / root).rglob("*.py"))
    return {module_name(p): p for p in files}


MODULES = erun_files()


def is_erun(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in ROOTS)


def layer_of(module: str) -> str | None:
    for layer, (where, _) in LAYERS.items():
        for pattern in where:
            if pattern.endswith(".*"):
                package = pattern[:-2]
                if module == package or module.startswith(package + "."):
                    return layer
            elif module == pattern:
                return layer
    return None


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_nodes(body: Sequence[ast.AST]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements anywhere in `body` (functions and classes too), minus TYPE_CHECKING blocks."""
    for node in body:
        if isinstance(node, ast.If) and is_type_checking(node.test):
            yield from import_nodes(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                yield from import_nodes([c for c in children if isinstance(c, ast.AST)])


def known(name: str) -> str:
    """The erun module `import name` executes last: the longest prefix that is a file."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return name  # not a file: reported as unknown by the layer check


def resolve_from(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer.split(".") if MODULES[importer].name == "__init__.py" else importer.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def targets(importer: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """All names a statement imports (erun or not); `from p import m` counts m when m is a module."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    source = resolve_from(importer, node)
    for alias in node.names:
        submodule = f"{source}.{alias.name}"
        yield submodule if submodule in MODULES else source


def imports_of(module: str) -> list[Import]:
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    return [Import(module, target, node.lineno)
            for node in import_nodes(tree.body) for target in targets(module, node)]


ALL_IMPORTS = {module: imports_of(module) for module in MODULES}


def erun_imports(module: str) -> list[Import]:
    return [Import(i.importer, known(i.target), i.line) for i in ALL_IMPORTS[module] if is_erun(i.target)]


def where(i: Import) -> str:
    return f"{i.importer} imports {i.target} (line {i.line})"


def layer_violation(i: Import) -> str | None:
    mine, theirs = layer_of(i.importer), layer_of(i.target)
    for module, layer in ((i.importer, mine), (i.target, theirs)):
        if layer is None:
            return (f"{where(i)}: {module} is in no layer; add its package to LAYERS in "
                    f"tests/test_layers.py (and its rule to docs/ARCHITECTURE.md)")
    assert mine is not None and theirs is not None
    allowed = LAYERS[mine][1]
    if mine == theirs or ANY in allowed or theirs in allowed:
        return None
    rule = f"only {', '.join(allowed)}" if allowed else "nothing of erun"
    return f"{where(i)}: {mine} -> {theirs} breaks the rule '{mine} may import {rule}'"


def test_every_module_is_in_a_layer() -> None:
    unknown = [m for m in MODULES if layer_of(m) is None]
    assert not unknown, "\n".join(
        f"{m} is in no layer: add its package to LAYERS in tests/test_layers.py" for m in unknown)


def test_imports_follow_the_layers() -> None:
    found = [v for m in MODULES for i in erun_imports(m) if (v := layer_violation(i))]
    assert not found, "imports against the layers:\n  " + "\n  ".join(found)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def shortest_cycle(graph: dict[str, set[str]], start: str, members: set[str]) -> list[str]:
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    return paths[node] + [start]
                if child not in paths:
                    paths[child] = paths[node] + [child]
                    following.append(child)
        frontier = following
    return [start]


def test_no_import_cycles() -> None:
    graph = {m: {i.target for i in erun_imports(m) if i.target in MODULES} for m in MODULES}
    cycles = [shortest_cycle(graph, c[0], set(c)) for c in strongly_connected(graph)
              if len(c) > 1 or c[0] in graph[c[0]]]
    assert not cycles, "import cycles (module-level and function-level imports):\n  " + "\n  ".join(
        " -> ".join(cycle) for cycle in cycles)


def test_worker_imports_only_the_standard_library() -> None:
    found = []
    for module in (m for m in MODULES if layer_of(m) == "worker"):
        for i in ALL_IMPORTS[module]:
            top = i.target.split(".")[0]
            if is_erun(i.target):
                found.append(f"{where(i)}: worker/ runs inside worker processes and imports nothing of erun")
            elif top not in sys.stdlib_module_names and not (top == "torch" and module in TORCH_ALLOWED):
                found.append(f"{where(i)}: worker/ is standard library only")
    assert not found, "\n".join(found)


def test_torch_is_imported_only_where_allowed() -> None:
    found = [f"{where(i)}: only {', '.join(TORCH_ALLOWED)} may import torch"
             for m in MODULES if m not in TORCH_ALLOWED
             for i in ALL_IMPORTS[m] if i.target.split(".")[0] == "torch"]
    assert not found, "\n".join(found)


PROBE = f"""
import json, sys
import runner
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})
import runner.worker.call, runner.worker.liveness
erun = sorted(m for m in sys.modules if m == 'runner' or m.startswith('runner.'))
print(json.dumps({{"heavy": heavy, "erun": erun}}))
"""


def test_importing_runner_and_the_worker_api_loads_nothing_else() -> None:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["heavy"] == [], f"`import runner` loads {loaded['heavy']}: workers would pay for them"
    worker_api = ("runner", "runner.worker")
    extra = [m for m in loaded["erun"] if m not in worker_api and not m.startswith("runner.worker.")]
    assert extra == [], f"runner.worker.call and runner.worker.liveness load other erun modules: {extra}"


def test_no_module_is_too_long() -> None:
    long = {m: n for m, p in MODULES.items() if m.startswith("runner")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, "\n".join(
        f"{m} has {n} lines (at most {MAX_LINES}): split it by concern" for m, n in sorted(long.items()))
