"""A real etcd server for the rendezvous tests: loopback only, random ports, the v2 API on,
its data in a temporary directory, killed (and reaped) at the end."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from runner.runtime.membership import free_port

START_TIMEOUT_S = 20.0


class EtcdServer:
    """`etcd --enable-v2` on 127.0.0.1; `endpoint` is host:port for rdzv.endpoint."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.client_port = free_port("127.0.0.1")
        self.peer_port = free_port("127.0.0.1")
        self.log = data_dir.with_name(data_dir.name + ".log")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @staticmethod
    def binary() -> str | None:
        return shutil.which("etcd")

    def start(self) -> None:
        client, peer = f"http://{self.endpoint}", f"http://127.0.0.1:{self.peer_port}"
        argv = [
            str(self.binary()), "--enable-v2", "--name", "erun-test", "--data-dir", str(self.data_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"erun-test={peer}",
        ]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://{self.endpoint}/v2/keys", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        log = self.log.read_text()[-2000:]
        raise RuntimeError(f"etcd did not start within {START_TIMEOUT_S:g} s:\n{log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)
