"""Slots: what a sweep packs its points onto, and the packing itself (pure, no processes).

A node offers slots of one kind: its GPUs when it has any (a slot is a CUDA device id, so two
points never share a device), else its CPU cores (a slot is a number, 0..N-1). A point needs
as many slots as it has workers (its `nproc`). Points start in their order, first fit: each
pending point that fits into the free slots starts now, on the lowest free slots; a point that
does not fit waits for slots to come back, while later, smaller points may start before it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from runner.devices import HostInfo
from runner.errors import ConfigError

SLOTS_KEY = "hydra.launcher.slots"
PACK_KEY = "hydra.launcher.pack"


class SlotKind(str, enum.Enum):
    GPU = "gpu"
    CPU = "cpu"


@dataclass(frozen=True)
class SlotPool:
    """The node's slots for one sweep: their kind and ids (GPU ids, or "0".."N-1" for CPUs)."""

    kind: SlotKind
    ids: tuple[str, ...]
    cpus: int  # usable cores of the node, whatever the kind

    def __len__(self) -> int:
        return len(self.ids)

    def describe(self, ids: Sequence[str] | None = None) -> str:
        """`gpu 2,3` / `cpu slots 0,1`, or the whole pool (`4 cpu slots`)."""
        if ids is None:
            return f"{len(self.ids)} {self.kind.value} slot{'s' if len(self.ids) != 1 else ''}"
        name = "gpu" if self.kind is SlotKind.GPU else "cpu slot"
        return f"{name}{'s' if len(ids) != 1 else ''} {','.join(ids)}"

    def host(self) -> HostInfo:
        """The host a point is compiled against: `nproc=gpu` means every GPU of the pool."""
        gpus = self.ids if self.kind is SlotKind.GPU else ()
        return HostInfo(cpus=self.cpus, gpus=gpus, gpu_source=f"the sweep's {self.describe()}")

    def environ(self, given: Sequence[str], nproc: int, environ: dict[str, str]) -> dict[str, str]:
        """What a point's agent gets on top of erun's environment: its GPUs (as
        CUDA_VISIBLE_DEVICES), or on CPUs a fair OMP_NUM_THREADS when none is set."""
        if self.kind is SlotKind.GPU:
            return {"CUDA_VISIBLE_DEVICES": ",".join(given)}
        if "OMP_NUM_THREADS" in environ:
            return {}
        share = max(1, self.cpus * len(given) // max(1, len(self.ids)) // max(1, nproc))
        return {"OMP_NUM_THREADS": str(share)}


def slot_pool(host: HostInfo, slots: int | None, pack: str) -> SlotPool:
    """The pool for `hydra.launcher.slots` (None: every GPU, else every usable core) and
    `hydra.launcher.pack` (auto: GPUs when visible, else CPUs)."""
    if pack not in ("auto", "gpu", "cpu"):
        raise ConfigError(PACK_KEY, f"is `{pack}`", "use auto, gpu or cpu")
    if slots is not None and slots < 1:
        raise ConfigError(SLOTS_KEY, f"is {slots}", "use 1 or more (or null: every GPU, else every core)")
    use_gpus = pack == "gpu" or (pack == "auto" and bool(host.gpus))
    if not use_gpus:
        count = slots if slots is not None else host.cpus
        return SlotPool(SlotKind.CPU, tuple(str(i) for i in range(count)), host.cpus)
    if not host.gpus:
        raise ConfigError(PACK_KEY, f"is gpu, but no CUDA device is visible ({host.gpu_source})",
                          "use hydra.launcher.pack=cpu (or auto) on this machine")
    if slots is not None and slots > len(host.gpus):
        raise ConfigError(SLOTS_KEY, f"is {slots}, but {len(host.gpus)} GPU(s) are visible",
                          f"use at most {len(host.gpus)}, or hydra.launcher.pack=cpu")
    return SlotPool(SlotKind.GPU, host.gpus[:slots] if slots is not None else host.gpus, host.cpus)


def first_fit(free: Sequence[str], demands: Sequence[tuple[int, int]]) -> list[tuple[int, tuple[str, ...]]]:
    """Which of the pending points (key, slots needed), in order, start now and on which slots.

    `free` is in the pool's order; every point gets the lowest free slots, so assignments are
    disjoint and repeatable. A point that does not fit is passed over (first fit)."""
    left = list(free)
    started: list[tuple[int, tuple[str, ...]]] = []
    for key, need in demands:
        if 0 < need <= len(left):
            started.append((key, tuple(left[:need])))
            del left[:need]
    return started


def too_big(pool: SlotPool, demands: Sequence[tuple[int, int]]) -> tuple[int, int] | None:
    """The first point (key, need) that could never run on the pool, if any."""
    return next(((key, need) for key, need in demands if need > len(pool)), None)
