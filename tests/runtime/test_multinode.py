"""Several nodes on this machine: one agent subprocess per node, meeting through torch's real
rendezvous backends on loopback, with real workers doing a gloo all_reduce across the nodes.

Rendezvous timeouts are small so the file stays fast on two cores: a round completes 1 s after
its minimum of nodes came, a node without heartbeat for 4 s is dead (torch sends one every 1 to 2
keep-alive intervals, so fewer than 3 attempts lets a busy live node look dead).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, WORKERS, AgentProcess, Erun, read_events, read_summary, subprocess_env, wait_for
from etcd import EtcdServer

from runner.plan import RdzvPlan
from runner.runtime.membership import free_port

pytestmark = [pytest.mark.usefixtures("no_survivors"), pytest.mark.slow]

WORKER = "elastic_allreduce.py"
SETTINGS: dict[str, Any] = {
    "join_timeout": 20, "last_call_timeout": 1, "close_timeout": 5, "keep_alive_interval": 1,
    "keep_alive_max_attempt": 4, "read_timeout": 10, "local_addr": "127.0.0.1", "exit_barrier_timeout": 30,
}
# Variables that say where a rank sits; torchrun and erun must agree on all of them.
LAYOUT_VARS = ("RANK", "LOCAL_RANK", "GROUP_RANK", "ROLE_RANK", "LOCAL_WORLD_SIZE", "WORLD_SIZE",
               "GROUP_WORLD_SIZE", "ROLE_WORLD_SIZE")


@dataclass
class Job:
    """The nodes of one multi-node job: same rdzv id and endpoint, one run dir each."""

    erun: Erun
    backend: str = "c10d"
    nnodes: tuple[int, int] = (2, 2)
    endpoint: str = field(default_factory=lambda: f"127.0.0.1:{free_port('127.0.0.1')}")
    rdzv_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    nodes: list[AgentProcess] = field(default_factory=list)

    @property
    def out(self) -> Path:
        return self.erun.markers

    def start(self, *args: object, nproc: int = 1, max_restarts: int = 0, **settings: Any) -> AgentProcess:
        rdzv = RdzvPlan(self.backend, self.endpoint, self.rdzv_id, *self.nnodes, {**SETTINGS, **settings})
        plan = self.erun.plan(WORKER, self.out, *args, nproc=nproc, max_restarts=max_restarts, rdzv=rdzv)
        node = self.erun.start(plan)
        self.nodes.append(node)
        return node

    def finish(self, timeout: float = 90.0) -> list[tuple[int, str]]:
        """Every node's exit status and stderr (all nodes are waited for, even after a failure)."""
        return [(code, err) for code, _, err in (n.finish(timeout) for n in self.nodes)]

    def results(self, world: int, restarts: int = 0) -> list[dict[str, Any]]:
        """The workers' reports of the round with `world` ranks, by rank."""
        files = [self.out / f"w{world}_r{rank}_c{restarts}.json" for rank in range(world)]
        return [json.loads(f.read_text()) for f in files]

    def wait_results(self, world: int, restarts: int = 0, timeout: float = 60.0) -> None:
        wait_for(lambda: all((self.out / f"w{world}_r{r}_c{restarts}.json").exists() for r in range(world)),
                 timeout, f"all {world} ranks of the round with world {world}")


@pytest.fixture
def job(erun: Erun) -> Iterator[Job]:
    job = Job(erun)
    yield job
    for node in job.nodes:  # a failed assertion must not leave agents behind
        if node.popen.poll() is None:
            node.popen.kill()
            node.popen.communicate()


def assert_succeeded(outcomes: list[tuple[int, str]]) -> None:
    assert [code for code, _ in outcomes] == [0] * len(outcomes), "\n---\n".join(err for _, err in outcomes)


def layout(results: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    return {tuple(str(r["env"][k]) for k in LAYOUT_VARS) for r in results}


def torchrun_layout(group_nproc: list[int]) -> set[tuple[str, ...]]:
    """What torchrun gives: nodes in group-rank order, each node's ranks consecutive."""
    world, rows, offset = sum(group_nproc), set(), 0
    for group_rank, nproc in enumerate(group_nproc):
        for local in range(nproc):
            rank = offset + local
            values = (rank, local, group_rank, rank, nproc, world, len(group_nproc), world)
            rows.add(tuple(str(v) for v in values))
        offset += nproc
    return rows


def group_order(results: list[dict[str, Any]]) -> list[int]:
    """Each node's nproc, in group-rank order, as the workers saw it."""
    by_group = {int(r["env"]["GROUP_RANK"]): int(r["env"]["LOCAL_WORLD_SIZE"]) for r in results}
    return [by_group[g] for g in sorted(by_group)]


def wait_listening(endpoint: str, timeout: float = 30.0) -> None:
    """Until the first node hosts the c10d store (so the test knows which node that is)."""
    host, port = endpoint.rsplit(":", 1)

    def listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex((host, int(port))) == 0

    wait_for(listening, timeout, f"the c10d store on {endpoint}")


# -- forming a group -------------------------------------------------------------------------


@pytest.mark.parametrize("nodes", [2, 4])
def test_c10d_nodes_all_reduce_across_nodes(job: Job, nodes: int) -> None:
    job.nnodes = (nodes, nodes)
    for _ in range(nodes):
        job.start()
    assert_succeeded(job.finish())
    results = job.results(nodes)
    assert {r["sum"] for r in results} == {nodes * (nodes + 1) / 2}
    assert layout(results) == torchrun_layout([1] * nodes)
    ports = {r["env"]["MASTER_PORT"] for r in results}
    assert len(ports) == 1 and {r["env"]["MASTER_ADDR"] for r in results} == {"127.0.0.1"}
    assert {r["env"]["TORCHELASTIC_RESTART_COUNT"] for r in results} == {"0"}


def test_static_two_nodes(job: Job) -> None:
    job.backend = "static"
    job.start(rank=0)
    job.start(rank=1)
    assert_succeeded(job.finish())
    results = job.results(2)
    assert {r["sum"] for r in results} == {3.0}
    assert layout(results) == torchrun_layout([1, 1])
    # Static: node 0 (the endpoint's host) is group rank 0, and MASTER_ADDR is that host.
    assert {r["env"]["MASTER_ADDR"] for r in results} == {"127.0.0.1"}


def test_static_restart_re_forms_every_node(job: Job) -> None:
    """Static membership: the node whose rank fails restarts; the other node sees the new
    generation in the store and re-forms too, with the same restart count."""
    job.backend = "static"
    job.start("fail0", max_restarts=1, rank=0)
    job.start("fail0", max_restarts=1, rank=1)
    outcomes = job.finish()
    assert [code for code, _ in outcomes] == [1, 1], outcomes
    for restarts in range(2):
        results = job.results(2, restarts)
        assert {r["env"]["TORCHELASTIC_RESTART_COUNT"] for r in results} == {str(restarts)}


@pytest.fixture(scope="module")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    if EtcdServer.binary() is None:
        pytest.skip("the etcd binary is not installed (apt-get install etcd-server; CI installs it)")
    server = EtcdServer(tmp_path_factory.mktemp("etcd") / "data")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("backend", ["etcd-v2", "etcd"])
def test_etcd_two_nodes(job: Job, etcd_server: EtcdServer, backend: str) -> None:
    job.backend, job.endpoint = backend, etcd_server.endpoint
    job.start()
    job.start()
    assert_succeeded(job.finish())
    results = job.results(2)
    assert {r["sum"] for r in results} == {3.0}
    assert layout(results) == torchrun_layout([1, 1])


def test_heterogeneous_nproc_matches_torchrun(job: Job) -> None:
    """Nodes with 1 and 3 workers: the same rank variables as two torchrun agents give."""
    job.start(nproc=1)
    job.start(nproc=3)
    theirs = job.out / "torchrun"
    theirs.mkdir()
    torchruns = [start_torchrun(theirs, nproc) for nproc in (1, 3)]
    assert_succeeded(job.finish())
    for proc in torchruns:
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err[-3000:]
    ours = job.results(4)
    assert {r["sum"] for r in ours} == {10.0}
    assert layout(ours) == torchrun_layout(group_order(ours))
    torchrun_results = [json.loads(p.read_text()) for p in sorted(theirs.glob("w4_r*_c0.json"))]
    assert layout(torchrun_results) == torchrun_layout(group_order(torchrun_results))


def start_torchrun(out: Path, nproc: int) -> subprocess.Popen[str]:
    port = getattr(start_torchrun, "port", None) or free_port("127.0.0.1")
    start_torchrun.port = port  # type: ignore[attr-defined]
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", str(nproc),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "hetero",
            "--rdzv-conf", "last_call_timeout=1,join_timeout=30", "--local-addr", "127.0.0.1",
            str(WORKERS / WORKER), str(out)]
    return subprocess.Popen(argv, cwd=REPO, env=subprocess_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# -- membership changes ----------------------------------------------------------------------


def test_scale_up_absorbs_a_late_joiner_without_spending_budget(job: Job) -> None:
    """nnodes=1:2, the second agent starts late: in torch 2.13 torchrun deadlocks here until a
    60 s timeout (the joiner waits for MASTER_ADDR in a round store nobody writes)."""
    job.nnodes = (1, 2)
    first = job.start("1")
    job.wait_results(1)
    joined = time.monotonic()
    job.start("1")
    job.wait_results(2, timeout=50)  # torchrun waits out its 60 s timeout here
    absorbed = time.monotonic() - joined
    assert_succeeded(job.finish())
    assert absorbed < 60, f"absorbing the late joiner took {absorbed:.1f} s"
    results = job.results(2)
    assert {r["sum"] for r in results} == {3.0}
    assert {r["env"]["TORCHELASTIC_RESTART_COUNT"] for r in results} == {"0"}
    notes = [e["message"] for e in read_events(first.run_dir) if e["event"] == "note"]
    assert any("no restart spent" in n for n in notes), notes


def test_scale_down_survivor_continues_with_the_smaller_world(job: Job) -> None:
    """SIGKILL one agent: its workers die with it, the survivor's all_reduce fails, and it
    restarts alone (its restart budget pays, as with torchrun)."""
    job.nnodes = (1, 2)
    # The first round waits for both (a busy machine may start the victim seconds late): with
    # the default 1 s last call the survivor could form a world of 1 alone and succeed.
    survivor = job.start("2", max_restarts=1, last_call_timeout=10)
    wait_listening(job.endpoint)  # the survivor hosts the c10d store
    victim = job.start("2", max_restarts=1, last_call_timeout=10)
    job.wait_results(2)
    victim.popen.send_signal(signal.SIGKILL)
    code, _, err = survivor.finish(90)
    assert code == 0, err
    victim.finish()
    (alone,) = job.results(1, restarts=1)
    assert alone["sum"] == 1.0 and alone["env"]["GROUP_WORLD_SIZE"] == "1"
    assert read_summary(survivor.run_dir)["state"] == "SUCCEEDED"


def test_restart_budget_is_the_jobs_not_each_nodes(job: Job) -> None:
    """Global rank 0 fails every attempt; the other node's worker never fails, is re-formed
    each time without spending, yet sees the job's restart count; after max_restarts the job
    ends on both nodes."""
    for _ in range(2):
        job.start("fail0", max_restarts=2)
    outcomes = job.finish()
    assert [code for code, _ in outcomes] == [1, 1], outcomes
    for restarts in range(3):
        results = job.results(2, restarts)
        assert {r["env"]["TORCHELASTIC_RESTART_COUNT"] for r in results} == {str(restarts)}
    assert not list(job.out.glob("w*_c3.json"))
    gave_up = [err for _, err in outcomes if "restart budget spent (2 of 2)" in err]
    assert len(gave_up) >= 1, outcomes
    # The node that did not give up itself learns that the job is over from the rendezvous.
    for _, err in outcomes:
        if err not in gave_up:
            assert "rendezvous" in err.strip().splitlines()[-1], err


# -- rendezvous errors -----------------------------------------------------------------------


def test_join_timeout_says_how_many_nodes_came(job: Job) -> None:
    node = job.start(join_timeout=2)
    code, _, err = node.finish()
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("erun: error: rendezvous") and "timed out after 2 s: 1 of 2 nodes joined" in line
    assert "Traceback" not in err


def test_unreachable_endpoint_names_backend_and_address(job: Job) -> None:
    node = job.start(is_host=False, read_timeout=1)
    code, _, err = node.finish()
    assert code == 1 and "Traceback" not in err and "frame #" not in err
    assert f"cannot reach the c10d rendezvous at {job.endpoint}" in err


def test_address_already_in_use(job: Job) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        job.backend, job.endpoint = "static", f"127.0.0.1:{taken.getsockname()[1]}"
        code, _, err = job.start(rank=0).finish()
    assert code == 1
    assert f"static rendezvous on {job.endpoint}: address already in use" in err


def test_stop_signal_while_waiting_for_nodes_ends_at_once(job: Job) -> None:
    node = job.start()
    wait_listening(job.endpoint)
    time.sleep(0.5)
    node.popen.send_signal(signal.SIGTERM)
    began = time.monotonic()
    code, _, err = node.finish()
    assert code == 128 + signal.SIGTERM, (code, err)
    assert time.monotonic() - began < 5
