"""Pseudo-terminals as serial cables: the one PTY helper of the rig and the tests.

`PtyPair` is a raw pair (no echo, no line discipline: bytes as on a wire): a program (the
gateway, a tool, the emulated board) opens ``path``; the rig holds the ``master`` fd. The slave
fd stays open as long as the pair, so the master never sees EIO between two openers.
`PtyPort` is a pair behind a fixed symlink (as ``/dev/serial/by-id/...``), so a test can
unplug the cable and plug a new pair in at the same path.
"""

from __future__ import annotations

import contextlib
import os
import tty
from pathlib import Path

from .lifecycle import Managed

__all__ = ["PtyPair", "PtyPort"]


class PtyPair(Managed):
    """A raw PTY pair; ``nonblocking`` makes reads and writes on the master not wait."""

    def __init__(self, *, nonblocking: bool = False) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        if nonblocking:
            os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)

    def write(self, data: bytes) -> None:
        """Write all of ``data`` on the master (towards whoever opened ``path``)."""
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view):]

    def close(self) -> None:
        """Close both ends (the opener's reads fail, as when a cable is pulled)."""
        for fd in (self.master, self.slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self.slave = -1


class PtyPort(Managed):
    """A `PtyPair` whose slave is opened through the symlink ``path``; replug = a new pair."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pair: PtyPair | None = None
        self.plug()

    @property
    def master(self) -> int:
        """The current pair's master fd (-1 while unplugged)."""
        return self.pair.master if self.pair is not None else -1

    def plug(self) -> None:
        """A new pair behind ``path`` (the link goes up again at the same path)."""
        self.pair = PtyPair()
        staging = self.path.with_suffix(".new")
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        staging.symlink_to(self.pair.path)
        staging.replace(self.path)

    def unplug(self) -> None:
        """Close both ends (the gateway's reads fail) and remove the path."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.close()

    def close(self) -> None:
        if self.pair is not None:
            self.pair.close()
        self.pair = None
