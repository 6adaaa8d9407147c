"""Waiting on state outside this process (a database, another process's log) that has no
event to wait on: the poll interval is the only sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(predicate: Callable[[], bool], *, timeout: float = 30.0,
                poll_s: float = 0.1) -> None:
    """Until ``predicate()`` holds, or TimeoutError after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(poll_s)
