"""Hydra's config folder for one invocation (erun's config and the staged job files), in the
temporary folder: never left behind.

It goes when erun ends, by SIGTERM or SIGHUP during start-up too (they end erun as
`StartupStopped`, so the `finally` runs). SIGKILL leaves no chance: each folder holds a lock
file, `flock`ed for as long as its erun lives (it gets its name only once locked), and every
erun starts by removing the folders whose lock nobody holds any more. Only this user's folders
with erun's prefix and a lock file are ever touched (one without is not known to be erun's).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

PREFIX = "erun-conf-"
LOCK = ".erun.lock"
STARTUP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class StartupStopped(BaseException):
    """A stop signal before the agent took over the signals (BaseException, as KeyboardInterrupt:
    no `except Exception` on the way swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def staging_dir(tmp: Path | None = None) -> Iterator[Path]:
    """A new locked staging folder; removed on the way out, whatever the way."""
    tmp = Path(tmp or tempfile.gettempdir())
    remove_stale(tmp)
    previous = {s: signal.getsignal(s) for s in STARTUP_SIGNALS}
    folder: Path | None = None
    lock = -1
    try:
        for signum in STARTUP_SIGNALS:  # first: a signal from here on ends in `finally`
            signal.signal(signum, _stop)
        with _held():  # a signal while the folder is made arrives once `folder` names it
            folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=tmp))
            lock = os.open(folder / f"{LOCK}.new", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(lock, fcntl.LOCK_EX)
            os.rename(folder / f"{LOCK}.new", folder / LOCK)  # no other erun sees it unlocked
        yield folder
    finally:
        try:
            with _held():  # removed whole, even when a signal comes now (it ends erun after)
                if folder is not None:
                    shutil.rmtree(folder, ignore_errors=True)
                if lock >= 0:
                    os.close(lock)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


@contextlib.contextmanager
def _held() -> Iterator[None]:
    """Hold the start-up signals back inside (they are delivered, as `StartupStopped`, after)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STARTUP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def remove_stale(tmp: Path) -> None:
    """Remove the staging folders of erun processes that are gone (killed with SIGKILL)."""
    try:
        candidates = [p for p in tmp.iterdir() if p.name.startswith(PREFIX)]
    except OSError:
        return
    for folder in candidates:
        with contextlib.suppress(OSError):
            if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
            if _abandoned(folder):
                shutil.rmtree(folder, ignore_errors=True)


def _abandoned(folder: Path) -> bool:
    try:
        fd = os.open(folder / LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # not (yet) known to be erun's
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its erun is alive
    finally:
        os.close(fd)
    return True


def _stop(signum: int, frame: FrameType | None) -> None:
    raise StartupStopped(signum)
