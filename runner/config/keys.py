"""The job file's key space, read from the schema: which dotted keys exist, and near misses.

Used to check a job file before Hydra sees it (so errors name the file) and to add "did you
mean" to Hydra's own errors. Keys under free mappings (params, env, rdzv.settings) are the
user's: anything goes there.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from runner.config.schema import JobConf

# Keys a job file may hold besides the schema's: Hydra's defaults list and Hydra's own settings.
HYDRA_KEYS = ("defaults", "hydra")


@cache
def schema_keys(cls: type = JobConf, prefix: str = "") -> dict[str, bool]:
    """Every dotted key of `cls`, mapped to True where it is a free mapping (its keys are open)."""
    keys: dict[str, bool] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            keys[name] = False
            keys.update(schema_keys(typing.cast(type, hint), f"{name}."))
        else:
            keys[name] = typing.get_origin(hint) is dict
    return keys


def unknown_keys(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys in `data` (a job file's content) that the schema does not know."""
    known = schema_keys()
    unknown: list[str] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if not prefix and key in HYDRA_KEYS:
            continue
        if name not in known:
            unknown.append(name)
        elif not known[name] and isinstance(value, Mapping):
            unknown += unknown_keys(value, f"{name}.")
    return unknown


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """' did you mean `x`?' for the closest candidate, or '' when none is close."""
    import difflib  # only a mistake needs it

    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{matches[0]}`?" if matches else ""


def suggest_key(dotted: str) -> str:
    """A fix for an unknown dotted key: the nearest known key, else where to put own values."""
    leaf = dotted.rsplit(".", 1)[-1]  # the right name at the wrong place: `restart.max_restarts`
    hint = next((f"did you mean `{k}`?" for k in schema_keys() if k.rsplit(".", 1)[-1] == leaf), "")
    if not hint:  # a typo keeps the nesting: compared with the keys at the same depth only
        hint = did_you_mean(dotted, [k for k in schema_keys() if k.count(".") == dotted.count(".")])
    if not hint and "." in dotted:
        parent, leaf = dotted.rsplit(".", 1)
        siblings = [k.rsplit(".", 1)[1] for k in schema_keys() if k.startswith(parent + ".")]
        leaf_hint = did_you_mean(leaf, siblings)
        hint = leaf_hint.replace("`", f"`{parent}.", 1) if leaf_hint else ""
    if hint:
        return hint
    return "your own values belong under `params` (e.g. params.lr=1e-3); see schemas/job.schema.json"
