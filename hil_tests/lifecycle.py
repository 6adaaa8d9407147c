"""The lifecycle every managed part of the rig shares (servers, processes, PTYs, threads).

A `Managed` part is started with ``start()`` (most start when made: the default does nothing)
and released with ``close()``. Used as ``with``, it is started on entry, closed again at once
if starting fails (``__exit__`` would not run), and closed on exit.
"""

from __future__ import annotations

from typing import Self

__all__ = ["Managed"]


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
