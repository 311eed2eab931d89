"""erun's TCPStore (runner.runtime.store) against torch's own, on real sockets: the same script
of operations through torch's client gives the same answers from erun's server as from torch's,
and erun's client gets from torch's server what torch's client gets. Workers of multi-node jobs
use erun's server for real (tests/runtime/test_multinode.py: gloo over it)."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from runner.runtime.store import MAGIC, PrefixStore, Query, StoreClient, StoreTimeout
from runner.runtime.store_server import StoreServer

torch_dist = pytest.importorskip("torch.distributed")
SHORT = timedelta(seconds=0.3)


def script(store: Any, waits: Callable[[Any, list[str]], None]) -> list[Any]:
    """One of each operation, with torch's corner cases (compare_set on a missing key with and
    without an expected value, add on a new key, a wait that times out, then the key arrives)."""
    out: list[Any] = []
    store.set("a", "1")
    out.append(store.get("a"))
    out.append([store.add("n", 5), store.add("n", -2), store.get("n")])
    out.append([store.compare_set("a", "1", "2"), store.compare_set("a", "x", "3"),
                store.compare_set("new", "", "made"), store.compare_set("absent", "exp", "no")])
    out.append([store.check(["a", "new"]), store.check(["a", "absent"])])
    try:
        waits(store, ["late"])
        out.append("no timeout")
    except Exception as e:  # torch: DistStoreError; erun: StoreTimeout
        out.append(f"timeout:{isinstance(e, (TimeoutError, RuntimeError))}")
    store.set("late", b"\x00\xffbytes")
    out.append(store.get("late"))
    out.append(store.multi_get(["a", "late"]))
    out.append(store.num_keys())
    out.append(store.delete_key("new"))
    out.append(store.delete_key("new"))
    out.append(store.num_keys())
    return out


def torch_waits(store: Any, keys: list[str]) -> None:
    store.wait(keys, SHORT)


@pytest.fixture
def erun_server() -> Iterator[StoreServer]:
    server = StoreServer(0)
    yield server
    server.close()


def torch_client(port: int) -> Any:
    return torch_dist.TCPStore("127.0.0.1", port, is_master=False, timeout=timedelta(seconds=10))


def test_torchs_client_gets_the_same_answers_from_eruns_server_as_torchs(erun_server: StoreServer) -> None:
    torch_server = torch_dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    expected = script(torch_client(torch_server.port), torch_waits)
    got = script(torch_client(erun_server.port), torch_waits)
    assert got == expected
    assert expected[0] == b"1" and expected[2] == [b"2", b"2", b"made", b"exp"]


def test_eruns_client_gets_from_torchs_server_what_torchs_client_gets() -> None:
    server = torch_dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    expected = script(torch_client(server.port), torch_waits)
    server2 = torch_dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    got = script(StoreClient("127.0.0.1", server2.port, timedelta(seconds=10)), torch_waits)
    assert got == expected


def test_both_clients_see_the_same_keys_and_prefixes(erun_server: StoreServer) -> None:
    theirs = torch_dist.PrefixStore("round.3", torch_client(erun_server.port))
    ours = PrefixStore("round.3", StoreClient("127.0.0.1", erun_server.port))
    theirs.set("MASTER_ADDR", "node0")
    ours.set("MASTER_PORT", "29500")
    assert ours.get("MASTER_ADDR") == b"node0" and theirs.get("MASTER_PORT") == b"29500"
    assert {"/round.3/MASTER_ADDR", "/round.3/MASTER_PORT"} <= set(erun_server.data)


def test_a_wait_answers_when_another_client_sets_the_last_key(erun_server: StoreServer) -> None:
    waiter = StoreClient("127.0.0.1", erun_server.port)
    done = threading.Event()

    def wait() -> None:
        waiter.wait(["x", "y"], timedelta(seconds=20))
        done.set()

    thread = threading.Thread(target=wait)
    thread.start()
    setter = torch_client(erun_server.port)
    setter.set("x", "1")
    assert not done.wait(0.2)
    setter.set("y", "2")
    thread.join(20)
    assert done.is_set()


def test_a_timed_out_wait_leaves_the_connection_usable(erun_server: StoreServer) -> None:
    client = StoreClient("127.0.0.1", erun_server.port)
    with pytest.raises(StoreTimeout):
        client.wait(["never"], SHORT)
    client.set("after", "ok")
    assert client.get("after") == b"ok" and client.add("count", 1) == 1


def test_a_client_that_does_not_validate_is_dropped_and_the_server_serves_the_others(
        erun_server: StoreServer) -> None:
    with socket.create_connection(("127.0.0.1", erun_server.port), timeout=5) as rogue:
        rogue.sendall(bytes([Query.SET]) + struct.pack("<Q", 1) + b"k" + struct.pack("<Q", 1) + b"v")
        assert rogue.recv(1) == b""  # closed by the server
    with socket.create_connection(("127.0.0.1", erun_server.port), timeout=5) as bad:
        bad.sendall(bytes([Query.VALIDATE]) + struct.pack("<I", MAGIC) + bytes([200]))
        assert bad.recv(1) == b""  # an unknown query closes that connection only
    assert "k" not in erun_server.data and "/k" not in erun_server.data
    client = StoreClient("127.0.0.1", erun_server.port)
    client.set("fine", "1")
    assert client.get("fine") == b"1"


def test_closing_the_server_ends_its_clients_requests(erun_server: StoreServer) -> None:
    client = StoreClient("127.0.0.1", erun_server.port, timedelta(seconds=10))
    client.set("k", "v")
    erun_server.close()
    with pytest.raises((ConnectionError, OSError)):
        client.wait(["never"], timedelta(seconds=5))


def test_a_client_waits_for_a_server_that_starts_later() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: result.update(client=StoreClient("127.0.0.1", port, timedelta(seconds=20))))
    thread.start()
    server = StoreServer(port)
    try:
        thread.join(20)
        result["client"].set("k", "v")
        assert result["client"].get("k") == b"v" and "/k" in server.data
    finally:
        server.close()


def test_connecting_to_nobody_fails_after_the_timeout() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StoreTimeout, match=f"127.0.0.1:{port}"):
        StoreClient("127.0.0.1", port, timedelta(seconds=0.3))


def test_a_peer_that_is_not_a_store_is_named_as_such() -> None:
    """A web server (or a proxy that accepts every connection) on the endpoint: one line, as
    torch's client fails its ping, not a hang or a huge read."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def answer_http() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(64)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        thread = threading.Thread(target=answer_http, daemon=True)
        thread.start()
        with pytest.raises(ConnectionError, match=f"127.0.0.1:{port} does not answer as a TCPStore"):
            StoreClient("127.0.0.1", port, timedelta(seconds=5))
        thread.join(5)


QUEUE_CLIENT = """
import sys, datetime, torch.distributed as d
c = d.TCPStore("127.0.0.1", int(sys.argv[1]), is_master=False, timeout=datetime.timedelta(seconds=10))
c.set("k", "v")
c.queue_push("q", "a")
c.queue_push("q", b"b")
out = [c.queue_len("q"), c.queue_pop("q"), c.queue_pop("q", block=False)]
try:
    c.queue_pop("q", block=False)
except Exception as e:
    out.append(type(e).__name__)
out += [c.queue_len("q"), c.queue_len("none"), sorted(c.list_keys())]
print(repr(out))
"""


def run_queue_client(port: int) -> str:
    """torch's client in its own process: its queue calls hold the GIL, which a server thread of
    this process would need."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", QUEUE_CLIENT, str(port)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_torchs_queue_and_list_keys_calls_get_the_same_answers(erun_server: StoreServer) -> None:
    torch_server = torch_dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    expected = run_queue_client(torch_server.port)
    assert expected == "[2, b'a', b'b', 'QueueEmptyError', 0, 0, ['k']]"
    assert run_queue_client(erun_server.port) == expected
