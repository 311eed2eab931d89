"""`runner.config.gcpause`: the collector is off while erun starts, on again (start-up frozen) after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from runner.config import gcpause


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    """Each test starts with the collector on; the test process gets it back as it was."""
    gc.enable()
    yield
    gc.unfreeze()
    gc.enable()


def test_paused_turns_the_collector_off_until_resume_freezes_and_turns_it_on() -> None:
    frozen = gc.get_freeze_count()
    with gcpause.paused():
        assert not gc.isenabled()
        kept = [object() for _ in range(100)]
        gcpause.resume()
        assert gc.isenabled() and gc.get_freeze_count() >= frozen + len(kept)
        gcpause.resume()  # only the first call does anything
    assert gc.isenabled()


def test_the_pause_ends_with_the_block_when_nothing_resumed_it() -> None:
    with pytest.raises(RuntimeError), gcpause.paused():
        raise RuntimeError("start-up failed")
    assert gc.isenabled()


def test_a_collector_someone_else_turned_off_stays_off() -> None:
    gc.disable()
    with gcpause.paused():
        gcpause.resume()
        assert not gc.isenabled()
    assert not gc.isenabled()
