"""torch's TCPStore server in the standard library (the protocol: runner.runtime.store).

One daemon thread, one selector: requests are parsed as their bytes arrive (a request may come
in pieces), answered in order, and a WAIT is answered when the last of its keys is set (or on
CANCEL_WAIT). A client that does not open with VALIDATE, or sends a query torch's server would
not know, is dropped; the others go on.
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections import deque
from collections.abc import Iterable

from runner.runtime.store import (
    I64,
    MAGIC,
    MAX_KEYS,
    MAX_VALUE,
    NOT_READY,
    READY,
    STOP_WAITING,
    U32,
    U64,
    WAIT_CANCELED,
    Query,
    string,
)


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
        return int(U64.unpack(self.take(8))[0])

    def string(self) -> bytes:
        size = self.u64()
        if size > MAX_VALUE:
            raise ValueError(f"a value of {size} bytes")
        return self.take(size)

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
        self._queues: dict[str, deque[bytes]] = {}
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
            if query != Query.VALIDATE or U32.unpack(r.take(4))[0] != MAGIC:
                raise ValueError("the client did not validate")
            conn.validated = True
            return
        if query == Query.SET:
            key, value = r.key(), r.string()
            self._set(key, value)
        elif query == Query.COMPARE_SET:
            key, expected, desired = r.key(), r.string(), r.string()
            self._reply(conn, string(self._compare_set(key, expected, desired)))
        elif query == Query.GET:
            self._reply(conn, string(self.data.get(r.key(), b"")))
        elif query == Query.ADD:
            key, amount = r.key(), int(I64.unpack(r.take(8))[0])
            total = int(self.data.get(key, b"0")) + amount
            self._set(key, str(total).encode())
            self._reply(conn, I64.pack(total))
        elif query == Query.CHECK:
            ready = all(self._exists(k) for k in r.keys())
            self._reply(conn, bytes([READY if ready else NOT_READY]))
        elif query == Query.WAIT:
            self._wait(conn, r.keys())
        elif query == Query.GETNUMKEYS:
            self._reply(conn, I64.pack(len(self.data)))
        elif query == Query.DELETE_KEY:
            self._reply(conn, I64.pack(1 if self.data.pop(r.key(), None) is not None else 0))
        elif query == Query.APPEND:
            key, value = r.key(), r.string()
            self._set(key, self.data.get(key, b"") + value)
        elif query == Query.MULTI_GET:
            self._reply(conn, b"".join(string(self.data.get(k, b"")) for k in r.keys()))
        elif query == Query.MULTI_SET:
            pairs = [(r.key(), r.string()) for _ in range(r.u64())]
            for key, value in pairs:
                self._set(key, value)
        elif query == Query.CANCEL_WAIT:
            self._forget_wait(conn)
            self._reply(conn, bytes([WAIT_CANCELED]))
        elif query == Query.PING:
            self._reply(conn, r.take(4))
        elif query == Query.QUEUE_PUSH:
            key, value = r.key(), r.string()
            self._queues.setdefault(key, deque()).append(value)
            self._wake(key)
        elif query == Query.QUEUE_POP:  # the queue's length before the pop, then the value if any
            queue = self._queues.get(r.key(), deque())
            self._reply(conn, I64.pack(len(queue)) + (string(queue.popleft()) if queue else b""))
        elif query == Query.QUEUE_LEN:
            self._reply(conn, I64.pack(len(self._queues.get(r.key(), ()))))
        elif query == Query.LIST_KEYS:
            self._reply(conn, I64.pack(len(self.data)) + b"".join(string(k) for k in self.data))
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

    def _exists(self, key: str) -> bool:
        """A key is there when it holds a value or a non-empty queue (a blocking queue_pop waits
        for it)."""
        return key in self.data or bool(self._queues.get(key))

    def _set(self, key: str, value: bytes) -> None:
        self.data[key] = value
        self._wake(key)

    def _wake(self, key: str) -> None:
        for conn in self._waiters.pop(key, []):
            conn.waiting.discard(key)
            if not conn.waiting:
                try:
                    self._reply(conn, bytes([STOP_WAITING]))
                except OSError:  # that waiter is gone: the request being served is not
                    self._drop(conn)

    def _wait(self, conn: _Conn, keys: Iterable[str]) -> None:
        missing = {k for k in keys if not self._exists(k)}
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
