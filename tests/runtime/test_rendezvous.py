"""runner.runtime.rendezvous without processes: rank layout, torch parameters, the per-round exchange
(over an in-memory store and a fake handler, one thread per node) and the error lines."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from torch.distributed import HashStore, PrefixStore, Store
from torch.distributed.elastic.rendezvous import (
    RendezvousClosedError,
    RendezvousHandler,
    RendezvousInfo,
    RendezvousParameters,
    RendezvousStoreInfo,
    RendezvousTimeoutError,
)

from runner.errors import ConfigError, RendezvousError
from runner.plan import EntrypointPlan, JobPlan, RdzvPlan, RestartPlan
from runner.runtime import restart
from runner.runtime.env import RankLayout
from runner.runtime.membership import Round
from runner.runtime.rendezvous import NodeInfo, TorchMembership, explained, layout_for, torch_parameters
from runner.state import AttemptResult, ExitInfo, Failure, WorkerState


def test_layout_ranks_are_consecutive_per_node_in_group_order() -> None:
    nodes = [NodeInfo(3, "a", 0, 0), NodeInfo(1, "a", 0, 0), NodeInfo(2, "a", 0, 0)]
    assert layout_for(1, nodes) == RankLayout(1, 3, 3, 6, 3, 6)
    assert layout_for(2, nodes) == RankLayout(2, 3, 4, 6, 4, 6)


def test_layout_role_ranks_count_only_the_same_role() -> None:
    nodes = [NodeInfo(2, "trainer", 0, 0), NodeInfo(1, "reader", 0, 0), NodeInfo(2, "trainer", 0, 0)]
    assert layout_for(2, nodes) == RankLayout(2, 3, 3, 5, 2, 4)
    assert layout_for(1, nodes) == RankLayout(1, 3, 2, 5, 0, 1)


def rdzv(backend: str = "c10d", endpoint: str = "node0:29400", **settings: Any) -> RdzvPlan:
    return RdzvPlan(backend, endpoint, "job", 1, 4, settings)


def test_parameters_map_erun_settings_to_torch() -> None:
    params = torch_parameters(rdzv(join_timeout=2.5, last_call_timeout=1, local_addr="10.0.0.1",
                                   exit_barrier_timeout=9))
    assert (params.backend, params.endpoint, params.run_id, params.min_nodes, params.max_nodes) == (
        "c10d", "node0:29400", "job", 1, 4)
    assert params.get("join_timeout") == 3 and params.get("last_call_timeout") == 1
    assert params.local_addr == "10.0.0.1"
    assert params.get("exit_barrier_timeout") is None and params.get("local_addr") is None


def test_parameters_join_timeout_is_timeout_for_static_and_etcd() -> None:
    assert torch_parameters(rdzv("static", join_timeout=7, rank=0)).get("timeout") == 7
    assert torch_parameters(rdzv("etcd", "etcd0")).get("timeout") == 600
    assert torch_parameters(rdzv("etcd", "etcd0")).endpoint == "etcd0:2379"


# -- the per-round exchange ------------------------------------------------------------------


class FakeHandler(RendezvousHandler):
    """One node's view of a round of `world` nodes over a shared in-memory store."""

    def __init__(self, store: Store, rank: int, world: int) -> None:
        self.store, self.rank, self.world = store, rank, world
        self.waiting, self.closed, self.shut = 0, False, False

    def get_backend(self) -> str:
        return "c10d"

    def next_rendezvous(self) -> RendezvousInfo:
        return RendezvousInfo(PrefixStore("round1", self.store), self.rank, self.world,
                              RendezvousStoreInfo("agent-host", 4242))

    def is_closed(self) -> bool:
        return self.closed

    def set_closed(self) -> None:
        self.closed = True

    def num_nodes_waiting(self) -> int:
        return self.waiting

    def get_run_id(self) -> str:
        return "job"

    def shutdown(self) -> bool:
        self.shut = True
        return True


def node_plan(tmp_path: Any, nproc: int, **settings: Any) -> JobPlan:
    return JobPlan(EntrypointPlan("script", "train.py"), nproc, str(tmp_path / f"run{nproc}"), "r",
                   restart=RestartPlan(max_restarts=3),
                   rdzv=RdzvPlan("c10d", "127.0.0.1:1", "job", 1, 2, {"local_addr": "10.1.1.1", **settings}))


def form_round(tmp_path: Any, views: list[tuple[int, int, int]]) -> tuple[list[Round], list[FakeHandler]]:
    """Nodes (nproc, restart_count, spent) meet in one round, each in a thread of its own."""
    store = HashStore()
    handlers = [FakeHandler(store, rank, len(views)) for rank in range(len(views))]
    members = [TorchMembership(node_plan(tmp_path, nproc), lambda _, h=h: h)
               for (nproc, _, _), h in zip(views, handlers, strict=True)]
    rounds: list[Round | None] = [None] * len(views)

    def join(i: int) -> None:
        rounds[i] = members[i].next_round(views[i][1], views[i][2])

    threads = [threading.Thread(target=join, args=(i,), daemon=True) for i in range(len(views))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert all(r is not None for r in rounds)
    return [r for r in rounds if r is not None], handlers


def test_round_agrees_on_master_and_the_jobs_restart_count(tmp_path: Any) -> None:
    rounds, _ = form_round(tmp_path, [(2, 1, 1), (3, 4, 2)])
    assert len({(r.master_addr, r.master_port) for r in rounds}) == 1
    assert rounds[0].master_addr == "10.1.1.1"
    assert [r.restart_count for r in rounds] == [4, 4] and [r.spent for r in rounds] == [2, 2]
    assert [r.layout for r in rounds] == [RankLayout(0, 2, 0, 5, 0, 5), RankLayout(1, 2, 2, 5, 2, 5)]
    assert [r.nodes for r in rounds] == [2, 2]


def test_group_rank_0_writes_torchs_master_keys_for_late_joiners(tmp_path: Any) -> None:
    """torch 2.13's late joiner blocks on these keys of the new round (the scale-up deadlock)."""
    _, handlers = form_round(tmp_path, [(1, 0, 0), (1, 0, 0)])
    round_store = handlers[0].next_rendezvous().store
    assert round_store.get(RendezvousStoreInfo.MASTER_ADDR_KEY) == b"agent-host"
    assert round_store.get(RendezvousStoreInfo.MASTER_PORT_KEY) == b"4242"


def test_changed_when_nodes_wait_or_the_job_closed(tmp_path: Any) -> None:
    handler = FakeHandler(HashStore(), 0, 1)
    member = TorchMembership(node_plan(tmp_path, 1), lambda _: handler)
    member.next_round(0)
    assert not member.changed()
    handler.waiting = 1
    assert member.changed()
    handler.waiting, handler.closed = 0, True
    assert member.changed()


def test_finish_waits_for_the_others_then_closes(tmp_path: Any) -> None:
    handler = FakeHandler(HashStore(), 0, 1)
    member = TorchMembership(node_plan(tmp_path, 1), lambda _: handler)
    member.next_round(0)
    member.finish(succeeded=True)
    assert handler.shut


def test_leave_does_not_close_the_rendezvous(tmp_path: Any) -> None:
    handler = FakeHandler(HashStore(), 0, 1)
    member = TorchMembership(node_plan(tmp_path, 1), lambda _: handler)
    member.next_round(0)
    member.leave()
    assert not handler.shut and not handler.closed


# -- errors ----------------------------------------------------------------------------------


def explain(error: Exception, plan: RdzvPlan | None = None, joined: int | None = None) -> str:
    with pytest.raises((RendezvousError, ConfigError)) as caught:
        with explained(plan or RdzvPlan("c10d", "node0:29400", "job", 2, 4, {"join_timeout": 20}),
                       lambda: joined):
            raise error
    return str(caught.value)


def test_join_timeout_line_counts_nodes() -> None:
    line = explain(RendezvousTimeoutError(), joined=1)
    assert line == ("erun: error: rendezvous 'job' (c10d at node0:29400) timed out after 20 s: 1 of at least "
                    "2 nodes joined (nnodes=2:4); start the other nodes with the same rdzv.id and endpoint, "
                    "or raise rdzv.settings.join_timeout")


def test_closed_and_connection_lines() -> None:
    assert "is closed: the job already ended on another node" in explain(RendezvousClosedError())
    refused = explain(RuntimeError("connect() failed: Connection refused"))
    assert refused.startswith("erun: error: cannot reach the c10d rendezvous at node0:29400 "
                              "(connection refused)")
    in_use = explain(RuntimeError("The server socket has failed to listen: EADDRINUSE"))
    assert "address already in use" in in_use
    assert isinstance(_config_error(ValueError("bad")), ConfigError)


def _config_error(error: Exception) -> Exception:
    try:
        with explained(RdzvPlan("c10d", "x:1", "job", 1, 1, {}), lambda: None):
            raise error
    except ConfigError as e:
        return e
    raise AssertionError("no ConfigError")


def test_parameters_are_torchs_type() -> None:
    assert isinstance(torch_parameters(rdzv()), RendezvousParameters)


# -- the job's restart budget ----------------------------------------------------------------


def failed(attempt: int) -> AttemptResult:
    result = AttemptResult(attempt=attempt, master_port=1, start=0.0, end=1.0)
    result.state = WorkerState.FAILED
    result.failures = [Failure(rank=0, local_rank=0, attempt=attempt, time=1.0, exit=ExitInfo(1))]
    return result


def test_shared_budget_counts_restarts_other_nodes_spent() -> None:
    """This node failed once, but the job already spent 2 of 2 restarts on other nodes."""
    policy = RestartPlan(max_restarts=2)
    assert restart.decide(policy, [failed(0)]).restart
    decision = restart.decide(policy, [failed(0)], shared_spent=2)
    assert not decision.restart and decision.reason == "restart budget spent (2 of 2)"
    assert restart.decide(policy, [failed(0)], shared_spent=1).spent == 2


# -- torch internals erun tunes (fail here first when torch changes them) --------------------


def test_sync_tuning_reaches_torchs_dynamic_rendezvous(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.distributed.elastic.rendezvous import dynamic_rendezvous
    from torch.distributed.elastic.rendezvous.c10d_rendezvous_backend import C10dRendezvousBackend

    from runner.runtime import rendezvous
    monkeypatch.setattr(dynamic_rendezvous, "_delay", dynamic_rendezvous._delay)  # restored after
    params = RendezvousParameters("c10d", "127.0.0.1:1", "job", 1, 2)
    store = HashStore()
    handler = dynamic_rendezvous.create_handler(store, C10dRendezvousBackend(store, "job"), params)
    rendezvous._tune_sync(handler, rendezvous.sync_interval(rdzv()))
    assert handler._state_holder._cache_duration == 0.1  # type: ignore[attr-defined]
    assert dynamic_rendezvous._delay is rendezvous.PACER and rendezvous.PACER.scale == 0.1


def test_sync_interval_grows_with_the_job_to_torchs_second() -> None:
    from runner.runtime.rendezvous import sync_interval

    assert sync_interval(RdzvPlan("c10d", "h:1", "j", 1, 4)) == 0.1
    assert sync_interval(RdzvPlan("c10d", "h:1", "j", 1, 50)) == 0.5
    assert sync_interval(RdzvPlan("c10d", "h:1", "j", 1, 1000)) == 1.0
    assert sync_interval(RdzvPlan("c10d", "h:1", "j", 1, 4, {"sync_interval": 1})) == 1.0


class PythonStore(Store):
    """A store written in Python, as torch's EtcdStore is: a PrefixStore over it only points to it."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, bytes] = {}

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value.encode() if isinstance(value, str) else bytes(value)

    def get(self, key: str) -> bytes:
        return self.data[key]

    def add(self, key: str, amount: int) -> int:
        value = int(self.data.get(key, b"0")) + amount
        self.data[key] = str(value).encode()
        return value

    def check(self, keys: list[str]) -> bool:
        return all(k in self.data for k in keys)

    def wait(self, keys: list[str], timeout: Any = None) -> None:
        assert self.check(keys)


class FreshStoreHandler(FakeHandler):
    """torch's etcd handler: a new Python store object for every round, held by nobody else."""

    def next_rendezvous(self) -> RendezvousInfo:
        return RendezvousInfo(PythonStore(), 0, 1, RendezvousStoreInfo("agent-host", 4242))


def test_round_store_outlives_the_round_info_regression_etcd(tmp_path: Any) -> None:
    """With etcd, the exit barrier failed with `pure virtual function ::c10d::Store::add` once the
    round's Python store was collected, and a node closed the job before the others finished."""
    import gc

    member = TorchMembership(node_plan(tmp_path, 1), lambda _: FreshStoreHandler(HashStore(), 0, 1))
    member.next_round(0)
    gc.collect()
    assert member._store is not None
    assert member._store.add("exit", 1) == 1


def test_torchs_event_names_come_without_inspect_stack() -> None:
    """The agent names the caller of each rendezvous event as torch's get_method_name does."""
    import inspect

    from torch.distributed.elastic.rendezvous import dynamic_rendezvous

    from runner.runtime.rendezvous import method_name

    def torchs(depth: int = 2) -> str:  # torch 2.13's get_method_name
        return inspect.stack()[depth].function if len(inspect.stack()) > depth else "no_method_name"

    def record_event() -> tuple[str, str, str]:
        return dynamic_rendezvous.get_method_name(), torchs(), method_name(1)

    def sync_round() -> tuple[str, str, str]:
        return record_event()

    ours, theirs, caller = sync_round()
    assert ours == theirs == "sync_round" and caller == "record_event"
    assert method_name(10_000) == torchs(10_000) == "no_method_name"
