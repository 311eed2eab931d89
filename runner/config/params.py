"""The params convention: how a job's hyperparameters reach its workers.

`params:` is a free mapping in the job file (`erun +job=train.yaml params.lr=1e-3` sets one).
Every worker gets all of them as JSON in ERUN_PARAMS, and, after `args`, as arguments:

- `params_as: flags` (default): `--lr=0.001 --optim.momentum=0.9` (argparse-friendly);
- `params_as: overrides`: `lr=0.001 optim.momentum=0.9` (for scripts that parse key=value);
- `params_as: env`: no arguments, ERUN_PARAMS only.

Nested mappings flatten to dotted names, sorted by key; booleans are `true`/`false`, null is
`null`, lists and empty mappings are compact JSON (`[1,2]`, `{}`). A `call` entrypoint gets
them as keyword arguments instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def render(params: Mapping[str, Any], style: str) -> list[str]:
    """The params as command-line arguments in `style` (flags, overrides, env)."""
    if style == "env":
        return []
    prefix = "--" if style == "flags" else ""
    return [f"{prefix}{key}={scalar(value)}" for key, value in flatten(params)]


def flatten(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key in sorted(params, key=str):
        value = params[key]
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            items += flatten(value, f"{name}.")
        else:
            items.append((name, value))
    return items


def scalar(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (list, tuple, Mapping)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
