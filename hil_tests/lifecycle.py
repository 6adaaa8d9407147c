"""The lifecycle every managed part of the rig shares (servers, processes, PTYs, threads).

A `Managed` part is started with ``start()`` (most start when made: the default does nothing)
and released with ``close()``. Used as ``with``, it is started on entry, closed again at once
if starting fails (``__exit__`` would not run), and closed on exit. A `SelectThread` is the
rig's thread that waits on file descriptors (relays, the minimal gateway) and is woken to end.
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable, Sequence
from typing import Self

__all__ = ["Managed", "SelectThread"]


class Managed:
    """A part a test starts and must release; usable as ``with``."""

    def start(self) -> None:
        """Start it (a part that starts when made needs nothing more)."""

    def close(self) -> None:
        """Release what it holds (processes, threads, descriptors, temporary folders)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SelectThread(Managed):
    """A daemon thread that waits on file descriptors, and that ``close()`` wakes and ends.

    Its target loops on ``wait(fds, timeout)``: the readable ones, or None once ``close()``
    has asked it to end (a pipe in the same select wakes it; then it must return).
    """

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=target, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait(self, fds: Sequence[int], timeout: float | None = None) -> list[int] | None:
        """The readable ones of ``fds`` (none after ``timeout`` seconds); None: end now."""
        readable, _, _ = select.select([*fds, self._wake_r], [], [], timeout)
        return None if self._wake_r in readable else readable

    def close(self) -> None:
        """Wake the thread, wait for it to end (5 s at most), release the pipe."""
        if self._wake_w < 0:
            return
        if self._thread.is_alive():
            os.write(self._wake_w, b"x")
            self._thread.join(5)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._wake_r = self._wake_w = -1
