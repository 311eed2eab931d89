"""The cyclic garbage collector, paused while `erun` starts a job.

Importing Hydra and OmegaConf and composing the config allocate some 60,000 objects that live as
long as the process, and little garbage; yet the collector walks them about 80 times before the
first worker starts (~10 ms, a twentieth of a launch). `paused` turns it off for the start-up;
`resume`, called where the job starts (and at the latest when `paused` ends), freezes what
start-up left, so the collections of the long-running agent or sweep never walk it again, then
turns the collector back on. The price: the little garbage start-up made is never freed.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


class _Pause:
    active = False


@contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside, until `resume`; a collector already off stays off."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    _Pause.active = True
    try:
        yield
    finally:
        resume()


def resume() -> None:
    """End the pause, once: freeze the objects start-up made, then collect as usual again."""
    if _Pause.active:
        _Pause.active = False
        gc.freeze()
        gc.enable()
