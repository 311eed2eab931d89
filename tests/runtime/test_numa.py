"""numa_binding (`erun torchrun --numa-binding`): torch 2.13's choice of CPUs per local rank, from a
fake /sys tree (ERUN_SYS_ROOT), and a real worker bound to them."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from compiling import compile_
from conftest import Erun
from erun_cli import erun

from runner.config.dryrun import describe
from runner.errors import ConfigError
from runner.plan import JobPlan, PrewarmPlan
from runner.runtime import processes
from runner.runtime.numa import SYS_ROOT_VAR, Topology, binding, format_ranges, parse_ranges
from runner.state import JobState
from runner.torchrun import parser

ALL = frozenset(range(64))


def fake_sys(root: Path, nodes: dict[int, str], gpus: dict[str, int], sockets: dict[int, int] | None = None,
             smt: int = 1, l3: int = 0) -> Path:
    """A /sys tree: NUMA node -> cpulist, GPU PCI address -> node, CPU -> socket (default 0);
    `smt` threads per core (siblings n, n+1..), `l3` CPUs per last-level cache (0: one per node)."""
    def put(path: str, text: str) -> None:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text + "\n")
    put("devices/system/node/possible", format_ranges(nodes))
    for node, cpulist in nodes.items():
        put(f"devices/system/node/node{node}/cpulist", cpulist)
        cpus = sorted(parse_ranges(cpulist))
        for cpu in cpus:
            base = f"devices/system/cpu/cpu{cpu}"
            put(f"{base}/topology/physical_package_id", str((sockets or {}).get(cpu, 0)))
            first = cpu - (cpu - cpus[0]) % smt
            put(f"{base}/topology/thread_siblings_list", format_ranges(range(first, first + smt)))
            size = l3 or len(cpus)
            start = cpus[0] + (cpu - cpus[0]) // size * size
            for index, (kind, level, shared) in enumerate([("Data", 1, {cpu}), ("Instruction", 1, {cpu}),
                                                           ("Unified", 3, set(range(start, start + size)))]):
                put(f"{base}/cache/index{index}/type", kind)
                put(f"{base}/cache/index{index}/level", str(level))
                put(f"{base}/cache/index{index}/shared_cpu_list", format_ranges(shared))
    put("bus/pci/devices/0000:00:1f.0/vendor", "0x8086")  # not a GPU
    put("bus/pci/devices/0000:00:1f.0/class", "0x030000")
    for address, node in gpus.items():
        put(f"bus/pci/devices/{address}/vendor", "0x10de")
        put(f"bus/pci/devices/{address}/class", "0x030200")
        put(f"bus/pci/devices/{address}/numa_node", str(node))
    return root


def bound(root: Path, mode: str, nproc: int, environ: dict[str, str] | None = None,
          allowed: frozenset[int] = ALL) -> dict[int, str]:
    cpus, note = binding(mode, nproc, environ or {}, Topology(root, allowed))
    assert note and ("not applied" not in note), note
    return {rank: format_ranges(c) for rank, c in cpus.items()}


# Two sockets, two NUMA nodes each; four GPUs in PCI order, two on node 1, one on 2, one on 3.
NODES = {0: "0-7", 1: "8-15", 2: "16-23", 3: "24-31"}
GPUS = {"0000:1b:00.0": 1, "0000:2c:00.0": 1, "0000:9d:00.0": 2, "0000:ae:00.0": 3}
SOCKETS = {cpu: cpu // 16 for cpu in range(32)}


def test_node_binds_each_rank_to_its_gpus_numa_node(tmp_path: Path) -> None:
    root = fake_sys(tmp_path, NODES, GPUS, SOCKETS)
    assert bound(root, "node", 4) == {0: "8-15", 1: "8-15", 2: "16-23", 3: "24-31"}
    assert bound(root, "node", 2, allowed=frozenset(range(10))) == {0: "8-9", 1: "8-9"}  # the agent's mask


def test_socket_binds_every_node_of_the_gpus_socket(tmp_path: Path) -> None:
    root = fake_sys(tmp_path, NODES, GPUS, SOCKETS)
    assert bound(root, "socket", 4) == {0: "0-15", 1: "0-15", 2: "16-31", 3: "16-31"}


def test_exclusive_splits_physical_cores_between_the_nodes_gpus(tmp_path: Path) -> None:
    # node 1: 5 cores of 2 threads (8-17); the first GPU gets the extra core, threads stay together
    root = fake_sys(tmp_path, {0: "0-7", 1: "8-17"}, {"0000:1b:00.0": 1, "0000:2c:00.0": 1}, smt=2)
    assert bound(root, "exclusive", 2) == {0: "8-13", 1: "14-17"}


def test_core_complex_gives_each_gpu_its_own_last_level_cache(tmp_path: Path) -> None:
    root = fake_sys(tmp_path, {0: "0-15"}, {f"0000:{b}:00.0": 0 for b in ("1b", "2c", "3d")}, l3=8)
    assert bound(root, "core-complex", 3) == {0: "0-7", 1: "8-15", 2: "0-7"}  # round robin past the caches


def test_gpu_numbers_follow_cuda_visible_devices_and_one_node_machines(tmp_path: Path) -> None:
    root = fake_sys(tmp_path, NODES, GPUS, SOCKETS)
    assert bound(root, "node", 2, {"CUDA_VISIBLE_DEVICES": "3,0"}) == {0: "24-31", 1: "8-15"}
    one = fake_sys(tmp_path / "one", {0: "0-3"}, {"0000:1b:00.0": -1})  # -1: a one-node machine
    assert bound(one, "node", 1) == {0: "0-3"}


@pytest.mark.parametrize(("gpus", "environ", "why"), [
    ({}, {}, "0 GPU(s) visible for 2 local ranks"),
    (GPUS, {"CUDA_VISIBLE_DEVICES": "GPU-1234"},
     "CUDA_VISIBLE_DEVICES entry `GPU-1234` is not a device number"),
])
def test_a_machine_that_cannot_be_bound_runs_unbound_with_one_note(
        tmp_path: Path, gpus: dict[str, int], environ: dict[str, str], why: str) -> None:
    cpus, note = binding("node", 2, environ, Topology(fake_sys(tmp_path, NODES, gpus), ALL))
    assert cpus == {}
    assert note == f"numa_binding=node not applied, workers run unbound: {why}"
    assert binding(None, 2, {}) == ({}, None)


AFFINITY = '''\
import json, os, sys
with open(os.path.join(sys.argv[1], f"cpus_{os.environ['LOCAL_RANK']}.json"), "w") as f:
    json.dump(sorted(os.sched_getaffinity(0)), f)
'''


@pytest.mark.usefixtures("no_survivors", "private_tmpdir")
@pytest.mark.skipif(not {0, 1} <= os.sched_getaffinity(0), reason="needs CPUs 0 and 1")
def test_erun_torchrun_numa_binding_binds_real_workers(tmp_path: Path) -> None:
    root = fake_sys(tmp_path / "sys", {0: "0", 1: "1"}, {"0000:1b:00.0": 1, "0000:2c:00.0": 0})
    (tmp_path / "affinity.py").write_text(AFFINITY)
    flags = ["--numa-binding", "node", "--nproc-per-node", "2"]
    result = erun(["torchrun", *flags, "affinity.py", str(tmp_path)], tmp_path, {"ERUN_SYS_ROOT": str(root)})
    assert result.returncode == 0, result.stderr
    assert "erun: numa_binding=node: local rank CPUs 0: 1; 1: 0" in result.stderr
    assert [json.loads((tmp_path / f"cpus_{r}.json").read_text()) for r in (0, 1)] == [[1], [0]]


@pytest.mark.usefixtures("no_survivors", "private_tmpdir")
def test_without_gpus_torchrun_numa_binding_notes_once_and_runs(tmp_path: Path) -> None:
    (tmp_path / "affinity.py").write_text(AFFINITY)
    result = erun(["torchrun", "--numa-binding", "socket", "affinity.py", str(tmp_path)], tmp_path,
                  {"ERUN_SYS_ROOT": str(tmp_path / "empty")})
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("numa_binding=socket not applied, workers run unbound: 0 GPU(s)") == 1
    assert json.loads((tmp_path / "cpus_0.json").read_text()) == sorted(os.sched_getaffinity(0))


def test_numa_binding_and_log_layout_are_checked_job_keys(tmp_path: Path) -> None:
    plan = compile_(tmp_path, numa_binding="core-complex", logs={"layout": "torchrun"})
    assert (plan.numa_binding, plan.logs.layout) == ("core-complex", "torchrun")
    assert JobPlan.from_dict(json.loads(plan.to_json())) == plan
    bad: list[tuple[dict[str, Any], str]] = [({"numa_binding": "nodes"}, "numa_binding"),
                                             ({"logs": {"layout": "flat"}}, "logs.layout")]
    for keys, key in bad:
        with pytest.raises(ConfigError) as e:
            compile_(tmp_path, **keys)
        assert e.value.key == key
    shown = describe(plan)
    assert "numa_binding=core-complex" in shown and "attempt_N/<local_rank>/" in shown
    with pytest.raises(ConfigError, match="--numa-binding"):
        parser().parse_args(["--numa-binding", "nodes", "t.py"])


@pytest.mark.usefixtures("no_survivors")
@pytest.mark.parametrize("taskset", [True, False], ids=["taskset", "in-the-child"])
@pytest.mark.skipif(not {0, 1} <= os.sched_getaffinity(0), reason="needs CPUs 0 and 1")
def test_spawn_binds_before_the_worker_runs(monkeypatch: pytest.MonkeyPatch, taskset: bool) -> None:
    if not taskset:  # no taskset: the fork path binds between fork and exec
        monkeypatch.setattr(processes, "TASKSET", None)
    code = "import os; print(sorted(os.sched_getaffinity(0)))"
    proc = processes.spawn([sys.executable, "-c", code], os.environ, None, cpus=frozenset({1}))
    try:
        assert proc.popen.wait(timeout=30) == 0
        os.set_blocking(proc.stdout_fd, True)
        assert os.read(proc.stdout_fd, 100) == b"[1]\n"
    finally:
        proc.close()


def test_a_warm_spare_is_bound_when_it_takes_a_rank(
        erun: Erun, no_survivors: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if not {0, 1} <= os.sched_getaffinity(0):
        pytest.skip("needs CPUs 0 and 1")
    root = fake_sys(tmp_path / "sys", {0: "0", 1: "1"}, {"0000:1b:00.0": 1, "0000:2c:00.0": 0})
    monkeypatch.setenv(SYS_ROOT_VAR, str(root))
    plan = erun.plan("warm.py", erun.markers, max_restarts=1)
    restart = dataclasses.replace(plan.restart, prewarm=PrewarmPlan(modules=("tomllib",), after_s=0.1))
    plan = dataclasses.replace(plan, numa_binding="node", restart=restart)
    assert erun.run(plan).state is JobState.SUCCEEDED
    for attempt in (0, 1):  # cold, then warm
        seen = [json.loads((erun.markers / f"warm_a{attempt}_r{r}.json").read_text()) for r in (0, 1)]
        assert [s["cpus"] for s in seen] == [[1], [0]], attempt
        assert all(s["preloaded"] for s in seen) == (attempt == 1)
