"""Slurm's compressed host lists (`n[1-2,5]`, `gpu-[01-03],login1`), expanded without scontrol.

Containers often lack scontrol, and the agents only need the first host (the rendezvous host)
and the count. Zero padding is kept (`gpu-[01-03]` gives gpu-01, gpu-02, gpu-03); several
bracket groups in one name expand as a product, as Slurm does (`r[1-2]n[1-2]`).
"""

from __future__ import annotations

import re

_GROUP = re.compile(r"\[([^\[\]]*)\]")


def expand(hostlist: str) -> list[str]:
    """Every host of `hostlist`, in Slurm's order."""
    hosts: list[str] = []
    for name in _split_top(hostlist.strip()):
        hosts += _expand_name(name)
    return hosts


def first(hostlist: str) -> str:
    """The first host of `hostlist` (ValueError when it names none)."""
    hosts = expand(hostlist)
    if not hosts:
        raise ValueError(f"empty host list {hostlist!r}")
    return hosts[0]


def _split_top(text: str) -> list[str]:
    """Split at the commas outside brackets."""
    names, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            names.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ValueError(f"unbalanced brackets in host list {text!r}")
    names.append(text[start:])
    return [n for n in names if n]


def _expand_name(name: str) -> list[str]:
    match = _GROUP.search(name)
    if match is None:
        return [name]
    head, tail = name[:match.start()], name[match.end():]
    return [head + item + rest for item in _ranges(match.group(1)) for rest in _expand_name(tail)]


def _ranges(spec: str) -> list[str]:
    """`1-3,07,09-10` as 1 2 3 07 09 10 (the width of the lower bound is kept)."""
    items: list[str] = []
    for part in spec.split(","):
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise ValueError(f"bad range {part!r} in host list")
        if not sep:
            items.append(low)
            continue
        items += [str(n).zfill(len(low)) for n in range(int(low), int(high) + 1)]
    return items
