"""Hourly means from per-interval DATA statistics, with a completeness rule.

A DATA message's ``ts`` is the end of its interval (SPEC §5.3), so a reading covers
``[ts - interval_s, ts)``. Each reading's mean is spread over the clock hours that interval
overlaps, weighted by the seconds of overlap; an hour's mean is valid when the readings cover at
least ``min_coverage`` of it (default 75 %, i.e. 45 minutes: the share EPA asks of an hour and
of a day, 40 CFR 50 App. N; Decision 1459 sets no figure of its own).

Messages arrive in order per node (the journal drains them so), so an hour is complete as soon
as a reading starts at or after its end; the hours between are closed too (as gaps). A reading
that ends in an hour already closed is late and is dropped (counted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["HOUR_S", "HourlyMeans"]

HOUR_S = 3600


def _floor_hour(ts: float) -> int:
    return int(ts // HOUR_S) * HOUR_S


class HourlyMeans:
    """Hourly means of some quantities, the last ``keep_hours`` of them kept, JSON-able state."""

    def __init__(
        self,
        quantities: Sequence[str],
        *,
        min_coverage: float = 0.75,
        keep_hours: int = 24,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self.quantities = tuple(quantities)
        self.min_coverage = min_coverage
        self.keep_hours = keep_hours
        # hour start → quantity → [value * seconds, seconds] for the hours still open
        self._open: dict[int, dict[str, list[float]]] = {}
        # quantity → hour start → [mean or None, seconds covered] for closed hours
        self._closed: dict[str, dict[int, list[Any]]] = {q: {} for q in self.quantities}
        self.closed_until: int | None = None  # every hour before this is closed
        self.late = 0
        if state:
            self._load(state)

    def add(self, end_ts: float, interval_s: float, values: Mapping[str, float]) -> list[int]:
        """Book one reading; return the starts of the hours this closes, oldest first."""
        start = end_ts - interval_s
        if interval_s <= 0 or (self.closed_until is not None and end_ts <= self.closed_until):
            self.late += 1
            return []
        since = _floor_hour(start) if self.closed_until is None else self.closed_until
        closed = self._close(since, _floor_hour(start))
        t = max(start, since)
        while t < end_ts:
            hour = _floor_hour(t)
            seconds = min(end_ts, hour + HOUR_S) - t
            acc = self._open.setdefault(hour, {})
            for q, v in values.items():
                if q in self._closed:
                    cell = acc.setdefault(q, [0.0, 0.0])
                    cell[0] += v * seconds
                    cell[1] += seconds
            t = hour + HOUR_S
        return closed

    def _close(self, since: int, hour: int) -> list[int]:
        """Close the hours from ``since`` up to (not including) ``hour``."""
        first = max(since, hour - self.keep_hours * HOUR_S)
        closed = list(range(first, hour, HOUR_S))
        for h in closed:
            acc = self._open.pop(h, {})
            for q in self.quantities:
                total, seconds = acc.get(q, (0.0, 0.0))
                valid = seconds >= self.min_coverage * HOUR_S
                self._closed[q][h] = [total / seconds if valid else None, seconds]
        for h in [h for h in self._open if h < hour]:  # older than the kept window
            del self._open[h]
        self.closed_until = max(since, hour)
        oldest = self.closed_until - self.keep_hours * HOUR_S
        for by_hour in self._closed.values():
            for h in [h for h in by_hour if h < oldest]:
                del by_hour[h]
        return closed

    def mean(self, quantity: str, hour: int) -> float | None:
        """The valid mean of a closed hour, or None (gap, too little coverage, not kept)."""
        cell = self._closed[quantity].get(hour)
        return None if cell is None else cell[0]

    def coverage(self, quantity: str, hour: int) -> float:
        """Share of the hour (0..1) the readings covered."""
        cell = self._closed[quantity].get(hour)
        return 0.0 if cell is None else min(cell[1] / HOUR_S, 1.0)

    def recent(self, quantity: str, hour: int, n: int) -> list[float | None]:
        """[mean of ``hour``, of the hour before, …], ``n`` entries."""
        return [self.mean(quantity, hour - i * HOUR_S) for i in range(n)]

    def state(self) -> dict[str, Any]:
        """JSON-able state (keys are strings) for ``journal.save_state``."""
        return {
            "closed_until": self.closed_until,
            "late": self.late,
            "open": {str(h): acc for h, acc in self._open.items()},
            "closed": {q: {str(h): c for h, c in by.items()} for q, by in self._closed.items()},
        }

    def _load(self, state: Mapping[str, Any]) -> None:
        self.closed_until = state["closed_until"]
        self.late = state.get("late", 0)
        self._open = {int(h): {q: list(c) for q, c in acc.items()}
                      for h, acc in state["open"].items()}
        for q, by in state["closed"].items():
            if q in self._closed:
                self._closed[q] = {int(h): list(c) for h, c in by.items()}
