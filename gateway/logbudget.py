"""Log lines on a budget: a flood of bad input must not become a flood of log lines."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["LogBudget"]


class LogBudget:
    """Lines of one kind: ``burst`` at once, then ``per_minute`` a minute (a token bucket).
    Lines held back are counted; the next line that goes out says how many there were."""

    def __init__(self, logger: logging.Logger, *, burst: int = 10, per_minute: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._burst = burst
        self._per_s = per_minute / 60
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()
        self.held = 0  # lines held back since the last one logged

    def log(self, level: int, message: str, *args: object) -> bool:
        """Log the line if the budget allows (True), else count it as held back."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._per_s)
        self._at = now
        if self._tokens < 1:
            self.held += 1
            return False
        self._tokens -= 1
        if self.held:
            message += f" ({self.held} more like it not logged)"
            self.held = 0
        self._logger.log(level, message, *args)
        return True
