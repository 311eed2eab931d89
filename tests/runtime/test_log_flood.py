"""Floods of output: a line without a newline costs linear time, console lines are capped (split
and marked, as container log drivers do), log files stay byte-exact, and a chatty rank never
delays the agent's answer to a signal."""

from __future__ import annotations

import os
import select
import sys
import time
from pathlib import Path

from conftest import Erun, assert_sigterm_answered, wait_for

from runner.plan import EntrypointPlan, LogsPlan
from runner.runtime.logs import CONTINUED, LINE_MAX, OutputStream

MB = 1_000_000


class Recorder:
    """A console that keeps what it was given."""

    def __init__(self) -> None:
        self.data = bytearray()  # appended in place: `bytes +=` would make this test quadratic

    def write(self, stream: str, data: bytes) -> None:
        self.data += data


def _stream(tmp_path: Path) -> tuple[int, OutputStream, Recorder]:
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    console = Recorder()
    stream = OutputStream(read_fd, tmp_path / "out.log", console, b"[0]: ")  # type: ignore[arg-type]
    return write_fd, stream, console


def _feed(write_fd: int, stream: OutputStream, data: bytes) -> None:
    for at in range(0, len(data), 50_000):  # under a pipe's capacity: never blocks
        os.write(write_fd, data[at:at + 50_000])
        while _waiting(stream.fd) and stream.pump():
            pass


def _waiting(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_long_lines_are_split_on_the_console_and_exact_in_the_file(tmp_path: Path) -> None:
    write_fd, stream, console = _stream(tmp_path)
    data = b"short\n" + b"a" * (2 * LINE_MAX + 5) + b"\n" + b"b" * LINE_MAX + b"\nend"
    _feed(write_fd, stream, data)
    os.close(write_fd)
    assert not stream.pump()
    assert (tmp_path / "out.log").read_bytes() == data
    lines = console.data.split(b"\n")[:-1]
    assert all(line.startswith(b"[0]: ") and len(line) <= len(b"[0]: ") + len(CONTINUED) + LINE_MAX
               for line in lines)
    assert lines == [b"[0]: short", b"[0]: " + b"a" * LINE_MAX, b"[0]: " + CONTINUED + b"a" * LINE_MAX,
                     b"[0]: " + CONTINUED + b"aaaaa", b"[0]: " + b"b" * LINE_MAX, b"[0]: end"]


def test_a_huge_unterminated_line_is_linear_and_bounded(tmp_path: Path) -> None:
    write_fd, stream, console = _stream(tmp_path)
    chunk = b"z" * 50_000
    began = time.perf_counter()
    for _ in range(400):  # 20 MB, no newline
        _feed(write_fd, stream, chunk)
        assert len(stream._lines.partial) < LINE_MAX  # bounded memory per stream
    assert time.perf_counter() - began < 10
    os.close(write_fd)
    stream.pump()
    assert (tmp_path / "out.log").stat().st_size == 20 * MB


def _writer(endless: bool) -> EntrypointPlan:
    code = ("import os\nchunk = b'y' * 1048576\n"
            + ("while True:\n    os.write(1, chunk)\n" if endless else
               "for _ in range(50):\n    os.write(1, chunk)\n"))
    return EntrypointPlan("exec", sys.executable, ("-c", code))


def test_fifty_megabytes_without_a_newline_finish_in_seconds(erun: Erun, no_survivors: str) -> None:
    agent = erun.start(erun.plan("", nproc=1, entrypoint=_writer(endless=False)))
    began = time.monotonic()
    code, out, err = agent.finish(timeout=60)
    assert code == 0, err
    assert time.monotonic() - began < 30
    log = agent.run_dir / "attempt_0" / "rank_0" / "stdout.log"
    assert log.read_bytes() == b"y" * (50 * 1048576)
    assert max(len(line) for line in out.splitlines()) <= LINE_MAX + 20


def test_sigterm_is_answered_promptly_while_a_rank_floods(erun: Erun, no_survivors: str) -> None:
    plan = erun.plan("", nproc=2, entrypoint=_writer(endless=True), logs=LogsPlan(console=False))
    agent = erun.start(plan)
    logs = [agent.run_dir / "attempt_0" / f"rank_{r}" / "stdout.log" for r in (0, 1)]
    wait_for(lambda: all(p.exists() and p.stat().st_size > 20 * MB for p in logs), timeout=60,
             what="both ranks to write 20 MB")
    assert_sigterm_answered(agent, finish_timeout=60)
    for path in logs:
        with open(path, "rb") as f:
            assert all(set(block) == {ord("y")} for block in iter(lambda: f.read(1 << 20), b""))
