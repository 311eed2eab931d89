"""Slurm's compressed host lists, expanded without scontrol."""

from __future__ import annotations

import pytest

from runner.cluster import hostlist


@pytest.mark.parametrize(("text", "hosts"), [
    ("n1", ["n1"]),
    ("n[1-2,5]", ["n1", "n2", "n5"]),
    ("gpu-[01-03]", ["gpu-01", "gpu-02", "gpu-03"]),
    ("gpu-[09-11]", ["gpu-09", "gpu-10", "gpu-11"]),
    ("a[1-2],login1,b[7]", ["a1", "a2", "login1", "b7"]),
    ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
    ("node[3-4]-ib", ["node3-ib", "node4-ib"]),
])
def test_expand(text: str, hosts: list[str]) -> None:
    assert hostlist.expand(text) == hosts


def test_first_is_the_rendezvous_host() -> None:
    assert hostlist.first("gpu-[07-09],cpu1") == "gpu-07"


@pytest.mark.parametrize("text", ["n[1-2", "n[a-b]", ""])
def test_bad_lists_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        hostlist.first(text)
