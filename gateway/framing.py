"""Framing: bytes from the links in, verified frames out (SPEC §1.2 and §3).

One ``Deframer`` per link (a link that comes back starts clean, so half a frame from before
costs nothing); every frame is parsed with the registry's key lookup, so frames of unknown or
disabled nodes and frames with a wrong tag never get further. Whatever fails is counted by
reason (also in the metrics) and logged at most once per minute per reason and source, and
within an overall budget of lines: a noisy line or a flood of made-up node ids costs
constant time per frame and bounded memory, and cannot flood the log. Nothing rejected is
ACKed or published.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable

from streetsense.protocol import Deframer, Frame, ProtocolError, UnknownNode, parse_frame
from streetsense.protocol.messages import DOWNLINK_TYPES

from .logbudget import LogBudget
from .metrics import Metrics
from .registry import NodeInfo
from .transports.base import Link

__all__ = ["LOG_EVERY_S", "Framing", "Rejections"]

log = logging.getLogger("streetsense.gateway.framing")

LOG_EVERY_S = 60.0  # a repeated rejection (same reason, same node or link) is logged this often
LOGGED_MAX = 1024  # rejection sources remembered for that
LOG_BURST, LOG_PER_MINUTE = 20, 60  # rejection lines overall, whatever their sources

FrameHandler = Callable[[Link, Frame, NodeInfo], None]


class Rejections:
    """Rejected frames: counted by reason, logged once per ``LOG_EVERY_S`` per source and
    within an overall budget; constant time per frame, bounded memory."""

    def __init__(self, metrics: Metrics, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.counts: Counter[str] = Counter()
        self._clock = clock
        self._logged: OrderedDict[tuple[str, object], float] = OrderedDict()  # oldest first
        self._budget = LogBudget(log, burst=LOG_BURST, per_minute=LOG_PER_MINUTE, clock=clock)

    @property
    def sources(self) -> int:
        """Rejection sources remembered now (at most ``LOGGED_MAX``)."""
        return len(self._logged)

    def __call__(self, reason: str, about: tuple[str, object], text: str) -> None:
        self.counts[reason] += 1
        self.metrics.rejected(reason)
        key = (reason, about)
        now = self._clock()
        last = self._logged.get(key)
        if last is not None and now - last < LOG_EVERY_S:
            return
        self._logged[key] = now
        self._logged.move_to_end(key)
        # Forget the sources logged longest ago: expired ones, and any beyond LOGGED_MAX (a
        # flood of made-up node ids). Each entry is removed once: O(1) per frame, amortized.
        logged = self._logged
        while len(logged) > LOGGED_MAX or now - next(iter(logged.values())) >= LOG_EVERY_S:
            logged.popitem(last=False)
        self._budget.log(logging.WARNING, "rejected frame (%s) %s; %d %s frames so far",
                         reason, text, self.counts[reason], reason)


class Framing:
    """The transports' ``LinkCallbacks``: deframes, verifies, hands frames to ``on_frame``."""

    def __init__(self, *, lookup: Callable[[int], NodeInfo | None], on_frame: FrameHandler,
                 rejections: Rejections) -> None:
        self._lookup = lookup
        self._on_frame = on_frame
        self.rejections = rejections
        self._deframers: dict[str, Deframer] = {}
        self._links_up: dict[str, asyncio.Event] = {}
        self._link_waiters: dict[str, list[asyncio.Future[bool]]] = {}

    def on_link_state(self, link: Link, up: bool) -> None:
        self._deframers.pop(link.name, None)
        self.rejections.metrics.set_port(link.name, up)
        event = self._links_up.setdefault(link.name, asyncio.Event())
        if up:
            event.set()
        else:
            event.clear()
        for waiter in self._link_waiters.pop(link.name, []):
            if not waiter.done():
                waiter.set_result(up)

    async def wait_link(self, name: str) -> None:
        """Until the link called ``name`` is up."""
        await self._links_up.setdefault(name, asyncio.Event()).wait()

    async def wait_link_change(self, name: str) -> bool:
        """Until the link called ``name`` goes up or down; returns whether it is up."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._link_waiters.setdefault(name, []).append(waiter)
        return await waiter

    def on_bytes(self, link: Link, data: bytes) -> None:
        deframer = self._deframers.get(link.name)
        if deframer is None:
            deframer = self._deframers[link.name] = Deframer()
        for item in deframer.feed(data):
            if isinstance(item, ProtocolError):
                self.rejections(item.reason, ("link", link.name), f"on {link.name}: {item}")
            else:
                self._verify(link, bytes(item))

    def _key(self, node_id: int) -> bytes | None:
        info = self._lookup(node_id)
        return info.key if info is not None and info.enabled else None

    def _verify(self, link: Link, raw: bytes) -> None:
        try:
            frame = parse_frame(raw, self._key)
        except UnknownNode as exc:
            info = self._lookup(exc.value)
            if info is None:
                self.rejections.metrics.unknown_node(exc.value)
                self.rejections(exc.reason, ("node", exc.value),
                                f"node {exc.value} on {link.name} is not in the registry")
            else:
                self.rejections("disabled_node", ("node", exc.value),
                                f"node {exc.value} is disabled in the registry")
            return
        except ProtocolError as exc:
            self.rejections(exc.reason, ("link", link.name), f"on {link.name}: {exc}")
            return
        if frame.type in DOWNLINK_TYPES:
            self.rejections("unexpected_downlink", ("node", frame.node_id),
                            f"node {frame.node_id} sent a downlink type {frame.type}")
            return
        info = self._lookup(frame.node_id)
        assert info is not None  # parse_frame found its key
        self._on_frame(link, frame, info)
