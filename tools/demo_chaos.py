"""``streetsense demo --chaos``: faults at seeded random moments, and the count that proves
nothing is lost.

`Tally` counts by (node, boot, seq), the identity of a frame (docs/mqtt.md):

* **sent**: every DATA, EVENT, STATUS and LOG frame a node put on its link (read on the
  link itself, before the gateway: each emulated board's relay tap);
* **published**: every message of those frames that the broker acknowledged (PUBACK, read on
  the broker's connections: `demo_broker.EmbeddedBroker`);
* **missing**: sent but not (yet) published; at the end, after the gateway caught up, it
  must be 0;
* **duplicates**: a frame published more than once. At-least-once allows it only across a
  fault: the gateway killed between the broker's PUBACK and writing "delivered", or a PUBACK
  lost with the connection. So a duplicate counts as *explained* when a fault overlapped the
  time between its two copies, and as *unexplained* otherwise (a bug).

`Chaos` restarts the embedded broker (down 1-4 s) and SIGKILLs the gateway (started again
after 0.5-3 s, same journal) every 5-12 s, in an order and at moments drawn from the seed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from streetsense.protocol import Deframer, ProtocolError, parse_frame
from streetsense.protocol import messages as m

__all__ = ["Chaos", "Counts", "Tally"]

PUBLISHED_TYPES = {m.DATA: "data", m.EVENT: "event", m.STATUS: "status", m.LOG: "log"}
EVERY_S = (5.0, 12.0)  # time between two faults
BROKER_DOWN_S = (1.0, 4.0)
GATEWAY_DOWN_S = (0.5, 3.0)

Key = tuple[int, int, int]  # (node id, boot, seq)


@dataclass(frozen=True)
class Counts:
    """The tally at one moment."""

    sent: int
    published: int
    missing: int
    duplicates: int
    unexplained: int
    broker_restarts: int
    gateway_kills: int

    def line(self) -> str:
        """``sent 131  published 128  missing 3  duplicates 1  | faults: ...``."""
        extra = f" ({self.unexplained} with no fault between the copies)" \
            if self.unexplained else ""
        return (f"frames sent by the nodes {self.sent}  published {self.published}  "
                f"missing {self.missing}  duplicates {self.duplicates}{extra}  | "
                f"broker restarts {self.broker_restarts}, gateway kills {self.gateway_kills}")


@dataclass
class Tally:
    """Frames sent and messages acknowledged, by (node, boot, seq); thread-safe (the link
    taps call it from the relays' threads)."""

    clock: Callable[[], float] = time.monotonic
    sent: dict[Key, float] = field(default_factory=dict)  # first time on the link
    published: dict[Key, list[float]] = field(default_factory=dict)  # PUBACK times
    faults: list[tuple[str, float, float]] = field(default_factory=list)  # kind, start, end
    changed: Callable[[], None] = lambda: None  # called after every new count
    closed: bool = False  # no frame sent from now on is counted (`close`)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        """Count no more frames sent: what was sent until now is what must be published."""
        with self._lock:
            self.closed = True

    def link_tap(self) -> Callable[[str, bytes], None]:
        """A tap for one node's link relay: it counts the frames going up."""
        deframer = Deframer()

        def tap(direction: str, data: bytes) -> None:
            if direction != "up":
                return
            for item in deframer.feed(data):
                if isinstance(item, ProtocolError):
                    continue
                try:
                    frame = parse_frame(item)
                except ProtocolError:
                    continue
                if frame.type in PUBLISHED_TYPES and not self.closed:
                    with self._lock:
                        self.sent.setdefault((frame.node_id, frame.boot, frame.seq),
                                             self.clock())
            self.changed()

        return tap

    def acknowledged(self, topic: str, payload: bytes) -> None:
        """A message the broker acknowledged: counted if it is one of a node's frames."""
        if topic.rsplit("/", 1)[-1] not in PUBLISHED_TYPES.values():
            return
        try:
            body = json.loads(payload)
            key = (int(body["node_id"]), int(body["boot"]), int(body["seq"]))
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            self.published.setdefault(key, []).append(self.clock())
        self.changed()

    def fault(self, kind: str) -> Callable[[], None]:
        """Record a fault starting now; call the result when it is over."""
        start = self.clock()

        def over() -> None:
            with self._lock:
                self.faults.append((kind, start, self.clock()))

        return over

    def missing(self) -> set[Key]:
        """What was sent and is not published yet."""
        with self._lock:
            return set(self.sent) - set(self.published)

    def counts(self) -> Counts:
        with self._lock:
            copies = {key: times for key, times in self.published.items() if key in self.sent}
            faults = list(self.faults)
            missing = len(set(self.sent) - set(self.published))
            sent = len(self.sent)
        duplicates = sum(len(times) - 1 for times in copies.values())
        unexplained = sum(
            1 for times in copies.values() for first, again in itertools.pairwise(times)
            if not any(start <= again and end >= first for _, start, end in faults))
        kinds = [kind for kind, _, _ in faults]
        return Counts(sent, len(copies), missing, duplicates, unexplained,
                      kinds.count("broker restart"), kinds.count("gateway kill"))


class Restartable(Protocol):
    """The embedded broker, as chaos sees it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Killable(Protocol):
    """The gateway process, as chaos sees it (blocking calls: run off the event loop)."""

    def kill(self) -> None: ...

    def start(self) -> None: ...


class Chaos:
    """Seeded faults against the embedded broker and the gateway, until `run` is cancelled
    or its end; ``down`` says which part is down now (for the live line)."""

    def __init__(self, seed: int, broker: Restartable, gateway: Killable, tally: Tally,
                 say: Callable[[str], None]) -> None:
        self.rng = random.Random(f"streetsense-chaos:{seed}")
        self.broker, self.gateway, self.tally, self.say = broker, gateway, tally, say
        self.down = ""

    async def run(self, until: float) -> None:
        """Faults until the event loop's time ``until``; returns with everything up."""
        loop = asyncio.get_running_loop()
        while (wait := self.rng.uniform(*EVERY_S)) < until - loop.time():
            await asyncio.sleep(wait)  # the fault schedule itself, not a synchronisation
            if self.rng.random() < 0.5:
                await self._broker_restart(self.rng.uniform(*BROKER_DOWN_S))
            else:
                await self._gateway_kill(self.rng.uniform(*GATEWAY_DOWN_S))

    async def _broker_restart(self, down_s: float) -> None:
        over = self.tally.fault("broker restart")
        self.down = "broker down"
        self.say(f"chaos: broker restart (down {down_s:.1f} s)")
        try:
            await self.broker.stop()
            await asyncio.sleep(down_s)
        finally:
            await self.broker.start()
            self.down = ""
            over()

    async def _gateway_kill(self, down_s: float) -> None:
        over = self.tally.fault("gateway kill")
        self.down = "gateway killed"
        self.say(f"chaos: gateway SIGKILL (restarted after {down_s:.1f} s, same journal)")
        try:
            await asyncio.to_thread(self.gateway.kill)
            await asyncio.sleep(down_s)
        finally:
            await asyncio.to_thread(self.gateway.start)
            self.down = ""
            over()
