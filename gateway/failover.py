"""Which broker to connect to next: a cluster's members in turn, backoff once all have failed.

When the member in use is lost (or refuses), the next one is tried at once; only when every
member has failed since the last good connection does the client wait, with a capped,
jittered backoff that doubles per round. With one broker that is the plain reconnect backoff.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Generic, TypeVar

__all__ = ["Failover"]

T = TypeVar("T")


class Failover(Generic[T]):
    """The member to connect to (``current``) and the pause before the next attempt."""

    def __init__(self, members: Sequence[T], *, rng: random.Random, min_s: float = 0.5,
                 max_s: float = 30.0) -> None:
        if not members:
            raise ValueError("no broker to connect to")
        self.members = list(members)
        self._rng = rng
        self._min_s = min_s
        self._max_s = max_s
        self._delay_s = min_s
        self._index = 0
        self._failed_in_round = 0

    @property
    def current(self) -> T:
        """The member to connect to now."""
        return self.members[self._index]

    def connected(self) -> None:
        """The connection to ``current`` is up: the next failure starts a new round."""
        self._failed_in_round = 0
        self._delay_s = self._min_s

    def failed(self) -> float:
        """``current`` refused or was lost: move to the next member; returns the seconds to
        wait before trying it (none while this round has members left to try)."""
        self._index = (self._index + 1) % len(self.members)
        self._failed_in_round += 1
        if self._failed_in_round < len(self.members):
            return 0.0
        self._failed_in_round = 0
        pause_s = self._delay_s * (0.5 + self._rng.random())
        self._delay_s = min(self._max_s, self._delay_s * 2)
        return pause_s
