"""torch's TCPStore, client and server, in the standard library: the same bytes on the wire.

A multi-node agent needs a key-value store twice: to meet the other agents (c10d rendezvous)
and to hand its workers one (MASTER_ADDR:MASTER_PORT with TORCHELASTIC_USE_AGENT_STORE=True).
torch's TCPStore does both, but importing torch costs an agent over a second of CPU. This
module (and store_server.py) speaks TCPStore's protocol (torch/csrc/distributed/c10d/TCPStoreBackend.hpp), so
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
import os
import socket
import struct
import threading
import time
from collections.abc import Sequence
from datetime import timedelta

MAGIC = 0x3C85F7CE
KEY_PREFIX = "/"  # torch's client prefixes every key with it
CONNECT_RETRY_S = 0.05
MAX_KEYS = 128 * 1024  # torch's limit per CHECK/WAIT/MULTI_GET
MAX_VALUE = 256 << 20  # a longer value is not a store talking (or a hostile one)


class Query(enum.IntEnum):
    """TCPStoreBackend.hpp's QueryType (torch 2.13), in its order (14-17: the queue and
    list_keys API, read off torch 2.13's client on the wire)."""

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
    QUEUE_PUSH = 14
    QUEUE_POP = 15
    QUEUE_LEN = 16
    LIST_KEYS = 17


READY, NOT_READY = 0, 1  # CHECK's answer
STOP_WAITING, WAIT_CANCELED = 0, 1  # WAIT's answers
U64 = struct.Struct("<Q")
I64 = struct.Struct("<q")
U32 = struct.Struct("<I")


class StoreTimeout(TimeoutError):
    """A store operation did not complete within the store's timeout."""


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def string(value: str | bytes) -> bytes:
    data = _bytes(value)
    return U64.pack(len(data)) + data


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
        self._send(bytes([Query.VALIDATE]) + U32.pack(MAGIC))
        self._ping()

    def _ping(self) -> None:
        """As torch's client: a peer that does not echo the nonce is not a TCPStore."""
        nonce = U32.pack(os.getpid() & 0xFFFFFFFF)
        self._send(bytes([Query.PING]) + nonce)
        if self._read(4) != nonce:
            self.close()
            raise ConnectionError(f"{self.host}:{self.port} does not answer as a TCPStore")

    def close(self) -> None:
        self._sock.close()

    def set(self, key: str, value: str | bytes) -> None:
        with self._lock:
            self._send(bytes([Query.SET]) + string(KEY_PREFIX + key) + string(value))

    def get(self, key: str) -> bytes:
        """The value, once the key exists (waits up to the timeout, as torch's `get`)."""
        self.wait([key])
        with self._lock:
            self._send(bytes([Query.GET]) + string(KEY_PREFIX + key))
            return self._read_string()

    def add(self, key: str, amount: int) -> int:
        with self._lock:
            self._send(bytes([Query.ADD]) + string(KEY_PREFIX + key) + I64.pack(amount))
            return int(I64.unpack(self._read(8))[0])

    def compare_set(self, key: str, expected: str | bytes, desired: str | bytes) -> bytes:
        with self._lock:
            self._send(bytes([Query.COMPARE_SET]) + string(KEY_PREFIX + key) + string(expected)
                       + string(desired))
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
            self._send(bytes([Query.DELETE_KEY]) + string(KEY_PREFIX + key))
            return bool(I64.unpack(self._read(8))[0])

    def num_keys(self) -> int:
        with self._lock:
            self._send(bytes([Query.GETNUMKEYS]))
            return int(I64.unpack(self._read(8))[0])

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
                chunk = self._sock.recv(min(left, 1 << 20))
            except TimeoutError:
                raise StoreTimeout(f"store {self.host}:{self.port} did not answer") from None
            if not chunk:
                raise ConnectionError(f"store {self.host}:{self.port} closed the connection")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _read_string(self) -> bytes:
        size = int(U64.unpack(self._read(8))[0])
        if size > MAX_VALUE:
            raise ConnectionError(f"{self.host}:{self.port} does not answer as a TCPStore")
        return self._read(size)


def _keys(keys: Sequence[str]) -> bytes:
    return U64.pack(len(keys)) + b"".join(string(KEY_PREFIX + k) for k in keys)


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
