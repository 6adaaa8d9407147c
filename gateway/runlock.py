"""One gateway per journal: while it runs, a gateway holds an exclusive lock on
``<journal>.lock`` (``flock``; the kernel drops it when the process ends, even by SIGKILL).

A second gateway given the same journal refuses to start, and ``gateway restore`` refuses to
replace the journal of a running gateway. The file holds the holder's process id, for the
message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

__all__ = ["GatewayRunning", "RunLock", "holder"]


class GatewayRunning(Exception):
    """Another process holds the journal's run lock."""


def _lock_path(journal: Path) -> Path:
    return journal.with_name(journal.name + ".lock")


class RunLock:
    """``acquire()`` the run lock of ``journal`` (`GatewayRunning` if held), ``release()``."""

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.path = _lock_path(journal)
        self._fd = -1

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        if os.geteuid() == 0:  # a restore run as root: the gateway's user must open it too
            folder = self.path.parent.stat()
            os.fchown(fd, folder.st_uid, folder.st_gid)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise GatewayRunning(
                f"another gateway (process {holder(self.path) or 'unknown'}) is using the "
                f"journal {self.journal}: two gateways must not share one; stop "
                "the other, or give this one its own journal.path") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # drops the lock; the file stays (no race with the next)
            self._fd = -1

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(lock: Path) -> str | None:
    """The process id written in a lock file (None if none)."""
    with contextlib.suppress(OSError):
        text = lock.read_text().strip()
        return text if text.isdigit() else None
    return None
