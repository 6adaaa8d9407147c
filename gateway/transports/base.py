"""The seam between a transport and the session layer above it.

A transport owns its links (one per serial port, one per BLE connection). It runs as a task
(``await transport.run()`` until cancelled) and calls ``callbacks.on_bytes(link, data)`` for
every chunk read and ``callbacks.on_link_state(link, up)`` when a link comes or goes. Chunk
boundaries mean nothing (SPEC §1): the session deframes per link.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

__all__ = ["Link", "LinkCallbacks", "Transport"]


@runtime_checkable
class Link(Protocol):
    """One byte stream to one or more nodes; ``send`` writes a downlink (COBS-framed bytes)."""

    name: str

    async def send(self, data: bytes) -> None:
        """Write ``data``; raises ``ConnectionError`` when the link is down."""


class LinkCallbacks(Protocol):
    """What a transport reports to the layer above it."""

    def on_bytes(self, link: Link, data: bytes) -> None:
        """A chunk of the stream arrived on ``link``."""

    def on_link_state(self, link: Link, up: bool) -> None:
        """``link`` came up (``up``) or went down."""


class Transport(ABC):
    """A source of links; ``run`` keeps them open (reopening lost ones) until cancelled."""

    @abstractmethod
    async def run(self) -> None:
        """Serve the links until cancelled."""

    @abstractmethod
    def stats(self) -> dict[str, dict[str, object]]:
        """Per-link counters and state, keyed by link name (for health and metrics)."""
