"""torch's TCPStore, client and server, in the standard library: the same bytes on the wire.

A multi-node agent needs a key-value store twice: to meet the other agents (c10d rendezvous)
and to hand its workers one (MASTER_ADDR:MASTER_PORT with TORCHELASTIC_USE_AGENT_STORE=True).
torch's TCPStore does both, but importing torch costs an agent over a second of CPU. This
module speaks TCPStore's protocol (torch/csrc/distributed/c10d/TCPStoreBackend.hpp), so
torch's clients (the workers, a torchrun agent) use `StoreServer` as they use torch's server,
and `StoreClient` talks to torch's server as torch's client does.

The protocol: a client opens with VALIDATE and a magic number; each request is one query byte
then its arguments; a string or a value is a little-endian u64 length and the bytes; numbers
are little-endian (i64 for counters, u64 for key counts). torch's client puts "/" before every
key (its key prefix), so `StoreClient` does too: both see the same keys in either server.
Only WAIT answers late: when every key it names exists, or on CANCEL_WAIT.
"""

from __future__ import annotations

import enum
import selectors
import socket
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import timedelta

MAGIC = 0x3C85F7CE
KEY_PREFIX = "/"  # torch's client prefixes every key with it
CONNECT_RETRY_S = 0.05
MAX_KEYS = 128 * 1024  # torch's limit per CHECK/WAIT/MULTI_GET


class Query(enum.IntEnum):
    """TCPStoreBackend.hpp's QueryType (torch 2.13), in its order."""

    VALIDATE = 0
    SET = 1
    COMPARE_SET = 2
    GET = 3
    ADD = 4
    CHECK = 5
    WAIT = 6
    GETNUMKEYS = 7
    DELETE_KEY = 8
    APPEND = 9
    MULTI_GET = 10
    MULTI_SET = 11
    CANCEL_WAIT = 12
    PING = 13


READY, NOT_READY = 0, 1  # CHECK's answer
STOP_WAITING, WAIT_CANCELED = 0, 1  # WAIT's answers
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_U32 = struct.Struct("<I")


class StoreTimeout(TimeoutError):
    """A store operation did not complete within the store's timeout."""


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _string(value: str | bytes) -> bytes:
    data = _bytes(value)
    return _U64.pack(len(data)) + data


# -- the client -----------------------------------------------------------------------------------


class StoreClient:
    """A TCPStore client: `set/get/add/compare_set/check/wait/multi_get/delete_key/num_keys` as
    torch's, thread-safe (one request at a time on the connection, as torch's client).
    Connecting retries until `timeout` (the store's host may start after this node)."""

    def __init__(self, host: str, port: int, timeout: timedelta = timedelta(seconds=300)) -> None:
        self.host, self.port = host, port
        self.timeout_s = timeout.total_seconds()
        self._lock = threading.Lock()
        self._sock = _connect(host, port, self.timeout_s)
        self._send(bytes([Query.VALIDATE]) + _U32.pack(MAGIC))

    def close(self) -> None:
        self._sock.close()

    def set(self, key: str, value: str | bytes) -> None:
        with self._lock:
            self._send(bytes([Query.SET]) + _string(KEY_PREFIX + key) + _string(value))

    def get(self, key: str) -> bytes:
        """The value, once the key exists (waits up to the timeout, as torch's `get`)."""
        self.wait([key])
        with self._lock:
            self._send(bytes([Query.GET]) + _string(KEY_PREFIX + key))
            return self._read_string()

    def add(self, key: str, amount: int) -> int:
        with self._lock:
            self._send(bytes([Query.ADD]) + _string(KEY_PREFIX + key) + _I64.pack(amount))
            return int(_I64.unpack(self._read(8))[0])

    def compare_set(self, key: str, expected: str | bytes, desired: str | bytes) -> bytes:
        with self._lock:
            self._send(bytes([Query.COMPARE_SET]) + _string(KEY_PREFIX + key) + _string(expected)
                       + _string(desired))
            return self._read_string()

    def check(self, keys: Sequence[str]) -> bool:
        with self._lock:
            self._send(bytes([Query.CHECK]) + _keys(keys))
            return self._read(1)[0] == READY

    def multi_get(self, keys: Sequence[str]) -> list[bytes]:
        self.wait(keys)
        with self._lock:
            self._send(bytes([Query.MULTI_GET]) + _keys(keys))
            return [self._read_string() for _ in keys]

    def delete_key(self, key: str) -> bool:
        with self._lock:
            self._send(bytes([Query.DELETE_KEY]) + _string(KEY_PREFIX + key))
            return bool(_I64.unpack(self._read(8))[0])

    def num_keys(self) -> int:
        with self._lock:
            self._send(bytes([Query.GETNUMKEYS]))
            return int(_I64.unpack(self._read(8))[0])

    def wait(self, keys: Sequence[str], timeout: timedelta | None = None) -> None:
        """Until every key exists; past the timeout, cancel the wait and raise `StoreTimeout`."""
        seconds = self.timeout_s if timeout is None else timeout.total_seconds()
        with self._lock:
            self._send(bytes([Query.WAIT]) + _keys(keys))
            try:
                answer = self._read(1, seconds)
            except StoreTimeout:
                self._cancel_wait()
                raise StoreTimeout(f"wait for {', '.join(keys)} timed out after {seconds:g} s") from None
            if answer[0] != STOP_WAITING:
                raise ConnectionError(f"store {self.host}:{self.port}: unexpected answer to WAIT")

    def _cancel_wait(self) -> None:
        """The keys may have come just now: skip a STOP_WAITING that crossed the cancel."""
        self._send(bytes([Query.CANCEL_WAIT]))
        while self._read(1)[0] != WAIT_CANCELED:
            pass

    # -- bytes ------------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        self._sock.settimeout(self.timeout_s)
        self._sock.sendall(data)

    def _read(self, size: int, seconds: float | None = None) -> bytes:
        self._sock.settimeout(self.timeout_s if seconds is None else seconds)
        chunks, left = [], size
        while left:
            try:
                chunk = self._sock.recv(left)
            except TimeoutError:
                raise StoreTimeout(f"store {self.host}:{self.port} did not answer") from None
            if not chunk:
                raise ConnectionError(f"store {self.host}:{self.port} closed the connection")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _read_string(self) -> bytes:
        return self._read(int(_U64.unpack(self._read(8))[0]))


def _keys(keys: Sequence[str]) -> bytes:
    return _U64.pack(len(keys)) + b"".join(_string(KEY_PREFIX + k) for k in keys)


def _connect(host: str, port: int, timeout_s: float) -> socket.socket:
    """Connect, retrying refused connections until the timeout (the server may not be up yet)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=max(0.1, deadline - time.monotonic()))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as e:
            if time.monotonic() + CONNECT_RETRY_S > deadline or isinstance(e, socket.gaierror):
                raise StoreTimeout(f"could not connect to the store at {host}:{port}: {e}") from None
            time.sleep(CONNECT_RETRY_S)


class PrefixStore:
    """torch's PrefixStore: every key as `prefix/key` in the store below."""

    def __init__(self, prefix: str, store: StoreClient | PrefixStore) -> None:
        self.prefix, self.store = prefix, store

    def _k(self, key: str) -> str:
        return f"{self.prefix}/{key}"

    def set(self, key: str, value: str | bytes) -> None:
        self.store.set(self._k(key), value)

    def get(self, key: str) -> bytes:
        return self.store.get(self._k(key))

    def add(self, key: str, amount: int) -> int:
        return self.store.add(self._k(key), amount)

    def compare_set(self, key: str, expected: str | bytes, desired: str | bytes) -> bytes:
        return self.store.compare_set(self._k(key), expected, desired)

    def check(self, keys: Sequence[str]) -> bool:
        return self.store.check([self._k(k) for k in keys])

    def wait(self, keys: Sequence[str], timeout: timedelta | None = None) -> None:
        self.store.wait([self._k(k) for k in keys], timeout)


# -- the server -----------------------------------------------------------------------------------


class _Incomplete(Exception):
    """The request is not all here yet."""


class _Reader:
    """Parses one request from a connection's buffer; `_Incomplete` when more bytes must come."""

    def __init__(self, data: bytes | bytearray) -> None:
        self.data, self.at = data, 0

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise _Incomplete
        chunk = bytes(self.data[self.at:self.at + size])
        self.at += size
        return chunk

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def string(self) -> bytes:
        return self.take(self.u64())

    def key(self) -> str:
        return self.string().decode(errors="surrogateescape")

    def keys(self) -> list[str]:
        count = self.u64()
        if count > MAX_KEYS:
            raise ValueError(f"too many keys in one request: {count}")
        return [self.key() for _ in range(count)]


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox = bytearray()
        self.validated = False
        self.waiting: set[str] = set()  # the keys of its pending WAIT


class StoreServer:
    """A TCPStore server in a daemon thread: listens on every address (IPv6 and IPv4 where the
    host has both, as torch's) on `port` (0: a free one, then `self.port`). `close()` stops it
    and drops every connection, as when torch's store host exits."""

    def __init__(self, port: int = 0) -> None:
        if socket.has_dualstack_ipv6():
            self._listener = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True,
                                                  backlog=1024)
        else:
            self._listener = socket.create_server(("", port), backlog=1024)
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self.data: dict[str, bytes] = {}
        self._waiters: dict[str, list[_Conn]] = {}
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=f"erun-store-{self.port}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake_w.send(b"x")
        self._thread.join(5)

    # -- the loop ---------------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self._closed:
                for key, _ in self._selector.select():
                    if key.fileobj is self._listener:
                        self._accept()
                    elif key.fileobj is not self._wake_r:
                        self._receive(key.data)
        finally:
            for key in list(self._selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            self._selector.close()
            self._wake_w.close()

    def _accept(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except OSError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._selector.register(sock, selectors.EVENT_READ, _Conn(sock))

    def _receive(self, conn: _Conn) -> None:
        try:
            chunk = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(conn)
            return
        conn.inbox += chunk
        try:
            while conn.inbox:
                reader = _Reader(conn.inbox)
                try:
                    self._handle(conn, reader)
                except _Incomplete:
                    return
                del conn.inbox[:reader.at]
        except (ValueError, OSError):  # a request torch's server would refuse, or a dead peer
            self._drop(conn)

    def _drop(self, conn: _Conn) -> None:
        self._forget_wait(conn)
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    # -- requests ---------------------------------------------------------------------------

    def _handle(self, conn: _Conn, r: _Reader) -> None:
        query = r.take(1)[0]
        if not conn.validated:
            if query != Query.VALIDATE or _U32.unpack(r.take(4))[0] != MAGIC:
                raise ValueError("the client did not validate")
            conn.validated = True
            return
        if query == Query.SET:
            key, value = r.key(), r.string()
            self._set(key, value)
        elif query == Query.COMPARE_SET:
            key, expected, desired = r.key(), r.string(), r.string()
            self._reply(conn, _string(self._compare_set(key, expected, desired)))
        elif query == Query.GET:
            self._reply(conn, _string(self.data.get(r.key(), b"")))
        elif query == Query.ADD:
            key, amount = r.key(), int(_I64.unpack(r.take(8))[0])
            total = int(self.data.get(key, b"0")) + amount
            self._set(key, str(total).encode())
            self._reply(conn, _I64.pack(total))
        elif query == Query.CHECK:
            ready = all(k in self.data for k in r.keys())
            self._reply(conn, bytes([READY if ready else NOT_READY]))
        elif query == Query.WAIT:
            self._wait(conn, r.keys())
        elif query == Query.GETNUMKEYS:
            self._reply(conn, _I64.pack(len(self.data)))
        elif query == Query.DELETE_KEY:
            self._reply(conn, _I64.pack(1 if self.data.pop(r.key(), None) is not None else 0))
        elif query == Query.APPEND:
            key, value = r.key(), r.string()
            self._set(key, self.data.get(key, b"") + value)
        elif query == Query.MULTI_GET:
            self._reply(conn, b"".join(_string(self.data.get(k, b"")) for k in r.keys()))
        elif query == Query.MULTI_SET:
            pairs = [(r.key(), r.string()) for _ in range(r.u64())]
            for key, value in pairs:
                self._set(key, value)
        elif query == Query.CANCEL_WAIT:
            self._forget_wait(conn)
            self._reply(conn, bytes([WAIT_CANCELED]))
        elif query == Query.PING:
            self._reply(conn, r.take(4))
        else:
            raise ValueError(f"unknown query {query}")

    def _compare_set(self, key: str, expected: bytes, desired: bytes) -> bytes:
        """torch's rule: a missing key is set only when `expected` is empty; the answer is the
        value now stored (for a missing key and a non-empty `expected`: `expected`, as torch)."""
        current = self.data.get(key)
        if current is None:
            if expected:
                return expected
            self._set(key, desired)
            return desired
        if current == expected:
            self._set(key, desired)
            return desired
        return current

    def _set(self, key: str, value: bytes) -> None:
        self.data[key] = value
        for conn in self._waiters.pop(key, []):
            conn.waiting.discard(key)
            if not conn.waiting:
                try:
                    self._reply(conn, bytes([STOP_WAITING]))
                except OSError:  # that waiter is gone: the request being served is not
                    self._drop(conn)

    def _wait(self, conn: _Conn, keys: Iterable[str]) -> None:
        missing = {k for k in keys if k not in self.data}
        if not missing:
            self._reply(conn, bytes([STOP_WAITING]))
            return
        conn.waiting = missing
        for key in missing:
            self._waiters.setdefault(key, []).append(conn)

    def _forget_wait(self, conn: _Conn) -> None:
        for key in conn.waiting:
            waiters = self._waiters.get(key, [])
            if conn in waiters:
                waiters.remove(conn)
            if not waiters:
                self._waiters.pop(key, None)
        conn.waiting = set()

    def _reply(self, conn: _Conn, data: bytes) -> None:
        """Answers are small: a blocking send with a bound, so one stuck client cannot stall
        the others for long."""
        conn.sock.settimeout(5.0)
        try:
            conn.sock.sendall(data)
        finally:
            conn.sock.setblocking(False)
