"""NUMA binding (`numa_binding`, torchrun's `--numa-binding`): which CPUs each local rank gets.

The same choice as torch 2.13's torch/numa/binding.py, keyed, as there, on the GPU whose index
is the worker's local rank, but read from /sys alone (no torch in the agent):

- node: every allowed CPU of the GPU's NUMA node;
- socket: every allowed CPU of all NUMA nodes of the socket holding the GPU's node;
- exclusive: the GPU's node's physical cores split evenly between the node's GPUs (the lowest
  GPUs get one extra core when it does not divide), with all hyperthreads of each core;
- core-complex: one group of CPUs sharing the last-level cache per GPU, the largest groups
  first, round robin when the node has more GPUs than groups.

"Allowed" is the agent's own affinity (a container's or taskset's limit). torch finds a GPU's
PCI address through CUDA; here the NVIDIA display devices in /sys/bus/pci/devices, in PCI
order (nvidia-smi's order; CUDA's too with CUDA_DEVICE_ORDER=PCI_BUS_ID), narrowed by numeric
CUDA_VISIBLE_DEVICES. Like torch, only CPUs are bound (torch wraps with `numactl
--physcpubind`); memory follows by first touch. `ERUN_SYS_ROOT` (tests only) moves /sys.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.plan import NUMA_MODES

__all__ = ["NUMA_MODES", "NumaError", "Topology", "binding", "cpus_for"]

SYS_ROOT_VAR = "ERUN_SYS_ROOT"  # for tests: a fake /sys tree
NVIDIA = "0x10de"
GPU_CLASSES = ("0x0300", "0x0302")  # VGA and 3D controllers


class NumaError(Exception):
    """This machine cannot be bound as asked (no GPU for a rank, no NUMA information)."""


def parse_ranges(text: str) -> set[int]:
    """`0-2,4,6-7` (a sysfs list) -> {0, 1, 2, 4, 6, 7}."""
    out: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        start, _, end = part.partition("-")
        out.update(range(int(start), int(end or start) + 1))
    return out


def format_ranges(ints: Iterable[int]) -> str:
    """{0, 1, 2, 4} -> `0-2,4` (taskset's and numactl's list syntax)."""
    runs: list[list[int]] = []
    for n in sorted(ints):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


@dataclass(frozen=True)
class Topology:
    """/sys as seen from `root`, and the CPUs this process may use."""

    root: Path
    allowed: frozenset[int]

    @classmethod
    def detect(cls, environ: Mapping[str, str]) -> Topology:
        return cls(Path(environ.get(SYS_ROOT_VAR) or "/sys"), frozenset(os.sched_getaffinity(0)))

    def _read(self, path: str) -> str:
        try:
            return (self.root / path).read_text().strip()
        except OSError as e:
            raise NumaError(f"cannot read /{path} ({e.strerror})") from None

    def gpus(self) -> list[str]:
        """PCI addresses of the NVIDIA GPUs, in PCI order."""
        found = []
        pci = self.root / "bus/pci/devices"
        for dev in sorted(pci.iterdir()) if pci.is_dir() else []:
            try:
                vendor, cls = (dev / "vendor").read_text().strip(), (dev / "class").read_text().strip()
            except OSError:
                continue
            if vendor == NVIDIA and cls.startswith(GPU_CLASSES):
                found.append(dev.name)
        return found

    def gpu_node(self, address: str) -> int:
        return max(int(self._read(f"bus/pci/devices/{address}/numa_node")), 0)  # -1: one node

    def node_cpus(self, node: int) -> set[int]:
        return parse_ranges(self._read(f"devices/system/node/node{node}/cpulist")) & self.allowed

    def nodes(self) -> set[int]:
        return parse_ranges(self._read("devices/system/node/possible"))

    def socket(self, cpu: int) -> int:
        return int(self._read(f"devices/system/cpu/cpu{cpu}/topology/physical_package_id"))

    def core(self, cpu: int) -> int:
        """A physical core, named by its lowest logical CPU."""
        return min(parse_ranges(self._read(f"devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")))

    def last_cache(self, cpu: int) -> int:
        """The highest-level data or unified cache, named by its lowest sharing CPU."""
        best, shared = -1, {cpu}
        base = f"devices/system/cpu/cpu{cpu}/cache"
        for entry in sorted(os.listdir(self.root / base)) if (self.root / base).is_dir() else []:
            if not (entry.startswith("index") and entry[5:].isdecimal()):
                continue
            if self._read(f"{base}/{entry}/type") not in ("Unified", "Data"):
                continue
            level = int(self._read(f"{base}/{entry}/level"))
            if level > best:
                best, shared = level, parse_ranges(self._read(f"{base}/{entry}/shared_cpu_list"))
        return min(shared)


def cpus_for(mode: str, gpu: int, gpus: list[str], topo: Topology) -> frozenset[int]:
    """The CPUs of the worker using GPU number `gpu` of `gpus` (PCI addresses), as torch chooses."""
    node = topo.gpu_node(gpus[gpu])
    if mode == "node":
        cpus = topo.node_cpus(node)
    elif mode == "socket":
        socket = topo.socket(min(_nonempty(topo.node_cpus(node), node)))
        cpus = set().union(*(topo.node_cpus(n) for n in topo.nodes()
                             if topo.node_cpus(n) and topo.socket(min(topo.node_cpus(n))) == socket))
    else:
        peers = sorted(i for i, address in enumerate(gpus) if topo.gpu_node(address) == node)
        share = _exclusive if mode == "exclusive" else _core_complex
        cpus = share(topo, node, peers.index(gpu), len(peers))
    return frozenset(_nonempty(cpus, node))


def _exclusive(topo: Topology, node: int, index: int, peers: int) -> set[int]:
    cores = _group(topo.node_cpus(node), topo.core)
    groups = [cores[k] for k in sorted(cores)]
    each, extra = divmod(len(groups), peers)
    if each < 1:
        raise NumaError(f"NUMA node {node} has {len(groups)} physical cores for {peers} GPUs")
    start = index * each + min(index, extra)
    return set().union(*groups[start:start + each + (index < extra)])


def _core_complex(topo: Topology, node: int, index: int, peers: int) -> set[int]:
    caches = _group(topo.node_cpus(node), topo.last_cache)
    groups = [cpus for _, cpus in sorted(caches.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    return groups[index % len(groups)] if groups else set()


def _group(cpus: Iterable[int], key: Callable[[int], int]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for cpu in cpus:
        out.setdefault(key(cpu), set()).add(cpu)
    return out


def _nonempty(cpus: set[int], node: int) -> set[int]:
    if not cpus:
        raise NumaError(f"NUMA node {node} has no CPU this agent may use")
    return cpus


def visible(gpus: list[str], environ: Mapping[str, str]) -> list[str]:
    """The GPUs CUDA would number 0, 1, ...: CUDA_VISIBLE_DEVICES's numeric ids, up to the first
    other entry (a UUID or MIG id cannot be placed without the driver: NumaError)."""
    text = environ.get("CUDA_VISIBLE_DEVICES")
    if text is None:
        return gpus
    out = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry.isdigit():
            if entry and not entry.startswith("-"):
                raise NumaError(f"CUDA_VISIBLE_DEVICES entry `{entry}` is not a device number")
            break
        if int(entry) >= len(gpus):
            break
        out.append(gpus[int(entry)])
    return out


def binding(mode: str | None, nproc: int, environ: Mapping[str, str],
            topo: Topology | None = None) -> tuple[dict[int, frozenset[int]], str | None]:
    """Each local rank's CPUs, and one line for people: what was bound, or why nothing was
    (torchrun fails to start its workers there; erun runs them unbound)."""
    if mode is None:
        return {}, None
    topo = topo or Topology.detect(environ)
    try:
        gpus = visible(topo.gpus(), environ)
        if len(gpus) < nproc:
            raise NumaError(f"{len(gpus)} GPU(s) visible for {nproc} local ranks")
        cpus = {rank: cpus_for(mode, rank, gpus, topo) for rank in range(nproc)}
    except (NumaError, ValueError) as e:
        return {}, f"numa_binding={mode} not applied, workers run unbound: {e}"
    shown = "; ".join(f"{r}: {format_ranges(c)}" for r, c in cpus.items())
    return cpus, f"numa_binding={mode}: local rank CPUs {shown}"
