"""erun's c10d rendezvous (runner.runtime.c10d) is torch's protocol: its state pickles as
torch's, a node running torch's own DynamicRendezvousHandler and an erun node form one round
(whichever hosts the store), and a multi-node agent on it never imports torch. The rules are
checked as pure logic; the rest on real sockets."""

from __future__ import annotations

import base64
import json
import pickle
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from conftest import REPO, subprocess_env

from runner.plan import RdzvPlan
from runner.runtime import c10d_state as rules
from runner.runtime.c10d import C10dRendezvous, RendezvousStateError, split_endpoint
from runner.runtime.c10d_state import Action, NodeDesc, RdzvState, Settings
from runner.runtime.membership import free_port

dynamic = pytest.importorskip("torch.distributed.elastic.rendezvous.dynamic_rendezvous")
A, B, C = NodeDesc("a", 1, 0), NodeDesc("b", 2, 0), NodeDesc("c", 3, 0)


def some_state() -> RdzvState:
    state = RdzvState()
    state.round, state.complete, state.deadline = 3, True, rules.now()
    state.participants = {A: 0, B: 1}
    state.wait_list, state.redundancy_list = {C}, set()
    state.last_heartbeats = {A: rules.now(), B: rules.now(), C: rules.now()}
    return state


def fields(state: Any) -> dict[str, Any]:
    as_tuples = {k: v for k, v in vars(state).items()}
    as_tuples["participants"] = {(n.addr, n.pid, n.local_id): r for n, r in state.participants.items()}
    as_tuples["wait_list"] = {(n.addr, n.pid, n.local_id) for n in state.wait_list}
    as_tuples["redundancy_list"] = {(n.addr, n.pid, n.local_id) for n in state.redundancy_list}
    as_tuples["last_heartbeats"] = {(n.addr, n.pid, n.local_id): t for n, t in state.last_heartbeats.items()}
    return as_tuples


def test_the_state_erun_writes_is_torchs_and_torchs_is_read_back() -> None:
    ours = some_state()
    theirs = pickle.loads(rules.dump_state(ours))  # what torch's state holder does with it
    assert type(theirs) is dynamic._RendezvousState
    assert all(type(n) is dynamic._NodeDesc for n in theirs.participants)
    assert fields(theirs) == fields(ours)
    back = rules.load_state(pickle.dumps(theirs))
    assert type(back) is RdzvState and fields(back) == fields(ours)


def test_a_state_naming_anything_else_is_refused() -> None:
    hostile = pickle.dumps(print)  # builtins.print: a pickle may name any callable
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        rules.load_state(hostile)


SETTINGS = Settings("job", 2, 3, last_call_s=30)


@pytest.mark.parametrize(("state", "node", "overdue", "action"), [
    (RdzvState, A, -1, Action.ADD_TO_PARTICIPANTS),
    (some_state, A, -1, Action.FINISH),  # complete, and A takes part
    (some_state, NodeDesc("d", 4, 0), -1, Action.ADD_TO_WAIT_LIST),  # complete, room left
    (some_state, C, -1, Action.SYNC),  # already waits, its heartbeat is fresh
    (some_state, NodeDesc("d", 4, 0), 2, Action.ERROR_TIMEOUT),  # past its join deadline
])
def test_join_decides_as_torch(state: Callable[[], RdzvState], node: NodeDesc, overdue: float,
                               action: Action) -> None:
    assert rules.join_op(node, state(), SETTINGS, overdue) == action


def test_min_nodes_start_the_last_call_and_max_nodes_complete_the_round() -> None:
    state = RdzvState()
    rules.apply(Action.ADD_TO_PARTICIPANTS, B, state, SETTINGS)
    assert state.deadline is None
    rules.apply(Action.ADD_TO_PARTICIPANTS, A, state, SETTINGS)
    assert state.deadline is not None and not state.complete
    rules.apply(Action.ADD_TO_PARTICIPANTS, C, state, SETTINGS)
    assert state.complete and state.deadline is None
    assert state.participants == {A: 0, B: 1, C: 2}  # ranks by sorted node


def test_a_node_without_heartbeats_is_dropped_and_an_empty_round_moves_on() -> None:
    state = some_state()
    state.wait_list = set()
    stale = rules.now() - timedelta(seconds=60)
    state.last_heartbeats = {A: stale, B: stale}
    assert sorted(rules.drop_dead(state, SETTINGS)) == [A, B]
    assert not state.participants and not state.complete and state.round == 4


def test_endpoints_parse_as_torchs() -> None:
    assert split_endpoint("node0") == ("node0", 29400)
    assert split_endpoint("node0:1234") == ("node0", 1234)
    assert split_endpoint("[::1]:1234") == ("::1", 1234)
    assert split_endpoint("[::1]") == ("::1", 29400)
    with pytest.raises(ValueError, match="port"):
        split_endpoint("node0:http")


def torch_handler(endpoint: str, run_id: str) -> Any:
    from torch.distributed.elastic.rendezvous import RendezvousParameters
    from torch.distributed.elastic.rendezvous.registry import get_rendezvous_handler

    # "localhost", not 127.0.0.1: both handlers run in this process, so their node names
    # (address, pid, counter) must differ by address.
    return get_rendezvous_handler(RendezvousParameters(
        "c10d", endpoint, run_id, 2, 2, local_addr="localhost", last_call_timeout=1, join_timeout=30))


@pytest.mark.parametrize("host", ["erun", "torch"])
def test_an_erun_node_and_a_torch_node_form_one_round(host: str) -> None:
    endpoint, run_id = f"127.0.0.1:{free_port('127.0.0.1')}", uuid.uuid4().hex[:8]
    settings = Settings(run_id, 2, 2, last_call_s=1, join_s=30)
    theirs: dict[str, Any] = {}
    if host == "torch":
        theirs["handler"] = torch_handler(endpoint, run_id)
    ours = C10dRendezvous(settings, endpoint, local_addr="127.0.0.1", sync_s=0.1)
    assert (ours.link.server is not None) == (host == "erun")
    if host == "erun":
        theirs["handler"] = torch_handler(endpoint, run_id)

    def torch_side() -> None:
        info = theirs["handler"].next_rendezvous()
        theirs.update(rank=info.rank, world=info.world_size, master=info.bootstrap_store_info)

    thread = threading.Thread(target=torch_side, daemon=True)
    thread.start()
    info = ours.next_rendezvous()
    if info.rank == 0:  # what erun's rounds write as group rank 0 (C10dBackend.publish_master)
        info.store.set("MASTER_ADDR", "127.0.0.1")
        info.store.set("MASTER_PORT", "4242")
    thread.join(30)
    assert {info.rank, theirs["rank"]} == {0, 1} and info.world_size == theirs["world"] == 2
    if info.rank == 0:
        assert (theirs["master"].master_addr, theirs["master"].master_port) == ("127.0.0.1", 4242)
    # Both see the same state; torch closing the run is seen by erun.
    theirs["handler"].shutdown()
    ours._state_holder.cache_s = 0
    assert ours.is_closed()
    ours.shutdown()
    ours.link.close()


def test_a_corrupt_state_in_the_store_is_an_error_that_says_so() -> None:
    endpoint = f"127.0.0.1:{free_port('127.0.0.1')}"
    ours = C10dRendezvous(Settings("bad", 1, 1), endpoint, local_addr="127.0.0.1", sync_s=0.1)
    ours.link.client.set("torch.rendezvous.bad", base64.b64encode(pickle.dumps(print)))
    with pytest.raises(RendezvousStateError, match="corrupt"):
        ours.next_rendezvous()
    ours.link.close()


AGENT_SCRIPT = """
import json, sys
from runner.plan import EntrypointKind, EntrypointPlan, JobPlan, RdzvPlan
from runner.runtime.registry import membership_for
rdzv = RdzvPlan("c10d", sys.argv[1], "no-torch", 1, 1, {"last_call_timeout": 1, "local_addr": "127.0.0.1"})
plan = JobPlan(EntrypointPlan(EntrypointKind.EXEC, "true", ()), 1, sys.argv[2], "no-torch", rdzv=rdzv)
member = membership_for(plan)
round = member.next_round(0)
member.finish(True)
print(json.dumps([type(member).__name__, round.layout.world_size, round.master_port > 0,
                  "torch" in sys.modules]))
"""


def test_a_multi_node_agent_on_c10d_never_imports_torch(tmp_path: Any) -> None:
    endpoint = f"127.0.0.1:{free_port('127.0.0.1')}"
    out = subprocess.run([sys.executable, "-c", AGENT_SCRIPT, endpoint, str(tmp_path / "run")], cwd=REPO,
                         env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == ["C10dMembership", 1, True, False]


def test_torchs_handler_stays_one_variable_away(tmp_path: Any) -> None:
    endpoint = f"127.0.0.1:{free_port('127.0.0.1')}"
    out = subprocess.run([sys.executable, "-c", AGENT_SCRIPT, endpoint, str(tmp_path / "run")], cwd=REPO,
                         env=subprocess_env({"ERUN_TORCH_RENDEZVOUS": "1"}), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == ["TorchMembership", 1, True, True]


def test_a_file_store_goes_to_torch() -> None:
    from runner.runtime.c10d import native_possible

    assert native_possible({}) and native_possible({"store_type": "TCP"})
    assert not native_possible({"store_type": "file"})
    assert RdzvPlan("c10d", "x:1", "id", 2, 2, {"store_type": "file"}).settings["store_type"] == "file"
