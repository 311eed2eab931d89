"""What this host offers a job: CPUs and visible CUDA devices, found without importing torch.

`HostInfo.detect(environ)` is the only place that looks; the compiler takes a `HostInfo`, so
`nproc=gpu` is testable anywhere. GPUs are found, in order:

1. `ERUN_FAKE_GPU_COUNT=N` (tests, dry runs on a laptop): N devices, ids 0..N-1;
2. `CUDA_VISIBLE_DEVICES` when set: its comma-separated entries (ids, GPU-UUIDs or MIG ids),
   up to the first invalid one as CUDA does; "" or "-1" hides every device;
3. otherwise the devices the NVIDIA driver lists in /proc/driver/nvidia/gpus, else `nvidia-smi -L`.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner.errors import ConfigError

FAKE_GPU_VAR = "ERUN_FAKE_GPU_COUNT"
# Descriptors the agent holds per worker: its pidfd, two pipes and two log files; or, when the
# open-file limit cannot hold those, only its pidfd (its ranks then write straight to their log
# files: runner.runtime.processes.pipes_fit). And what the agent holds for itself (events,
# selector, signal and guard pipes, torch's store sockets), with room to spare.
FDS_PER_PIPED_WORKER = 5
FDS_PER_WORKER = 1
FDS_RESERVED = 40
DRIVER_GPUS = Path("/proc/driver/nvidia/gpus")


@dataclass(frozen=True)
class Capacity:
    """How many workers one agent can hold on this machine, and what bounds it, in words."""

    workers: int
    bound: str


def worker_capacity() -> Capacity:
    """The open-file hard limit (the agent raises its soft limit to it) and the pids the
    kernel can still hand out bound the workers of one agent; the smaller bound wins."""
    hard = nofile_ceiling()
    pid_max = _read_int("/proc/sys/kernel/pid_max", 32768)
    running = sum(1 for name in os.listdir("/proc") if name.isdigit())
    bounds = [
        Capacity(max(1, (hard - FDS_RESERVED) // FDS_PER_WORKER),
                 f"the open-file limit is {hard} (ulimit -Hn), at least {FDS_PER_WORKER} per worker"),
        Capacity(max(1, pid_max - running), f"pid_max is {pid_max}, {running} processes running"),
    ]
    soft_nproc, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    if soft_nproc != resource.RLIM_INFINITY and os.geteuid() != 0:  # root is not held to it
        bounds.append(Capacity(max(1, soft_nproc - running),
                               f"the process limit is {soft_nproc} (ulimit -u)"))
    return min(bounds, key=lambda c: c.workers)


@dataclass(frozen=True)
class HostInfo:
    """CPUs this process may run on, and the CUDA devices it sees (as CUDA_VISIBLE_DEVICES ids)."""

    cpus: int
    gpus: tuple[str, ...]
    gpu_source: str  # how the GPUs were found, for error messages
    # How many workers an agent can hold here (open-file and pid limits).
    capacity: Capacity = field(default_factory=worker_capacity)
    cuda_visible: str | None = None  # CUDA_VISIBLE_DEVICES as set (virtual_local_rank maps it as torch)

    @classmethod
    def detect(cls, environ: Mapping[str, str]) -> HostInfo:
        gpus, source = visible_gpus(environ)
        return cls(cpus=usable_cpus(), gpus=gpus, gpu_source=source,
                   cuda_visible=environ.get("CUDA_VISIBLE_DEVICES"))


def virtual_devices(visible: str | None, nproc: int) -> tuple[str, ...]:
    """Each local rank's CUDA_VISIBLE_DEVICES under torchrun's --virtual-local-rank (torch 2.13's
    LocalElasticAgent._set_local_rank_env): the i-th comma-separated entry of the agent's
    CUDA_VISIBLE_DEVICES, stripped; unset: i itself, whatever devices exist."""
    if visible is None:
        return tuple(str(i) for i in range(nproc))
    entries = visible.split(",")
    if nproc > len(entries):
        raise ConfigError("virtual_local_rank", f"needs one CUDA_VISIBLE_DEVICES entry per worker: "
                          f"nproc={nproc}, CUDA_VISIBLE_DEVICES={visible!r}",
                          "list a device per worker in CUDA_VISIBLE_DEVICES, or lower nproc")
    return tuple(e.strip() for e in entries[:nproc])


def usable_cpus() -> int:
    """CPUs in this process's affinity mask (a container's or taskset's limit), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def visible_gpus(environ: Mapping[str, str]) -> tuple[tuple[str, ...], str]:
    fake = environ.get(FAKE_GPU_VAR)
    if fake is not None and fake.strip().isdigit():
        return tuple(str(i) for i in range(int(fake))), f"{FAKE_GPU_VAR}={fake}"
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return parse_visible_devices(visible), f"CUDA_VISIBLE_DEVICES={visible!r} hides the rest"
    count = driver_gpu_count()
    return tuple(str(i) for i in range(count)), "the NVIDIA driver and nvidia-smi list none"


def parse_visible_devices(value: str) -> tuple[str, ...]:
    """CUDA's reading of CUDA_VISIBLE_DEVICES: entries up to the first invalid one (e.g. -1)."""
    devices: list[str] = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry or entry.startswith("-"):
            break
        devices.append(entry)
    return tuple(devices)


def driver_gpu_count() -> int:
    if DRIVER_GPUS.is_dir():
        return sum(1 for _ in DRIVER_GPUS.iterdir())
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def nofile_ceiling() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return _read_int("/proc/sys/fs/nr_open", 1 << 20)
    return hard


def _read_int(path: str, default: int) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return default
