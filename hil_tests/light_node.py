"""A light node in CPython: the real protocol on a PTY, cheap enough to run a thousand at once.

`LightNode` builds its frames with ``streetsense.protocol`` (signed with its key, ACK
requested) and writes them to the master side of a PTY whose slave a gateway opens as a
serial port, like a node's link UART. Like the firmware it works stop-and-wait (SPEC §6.1):
frames queue, the oldest is sent and sent again every ``retry_s`` until the gateway ACKs it,
and only then the next (a higher seq sent earlier would make the gateway refuse the lost
one as a replay). So a gateway that dies or a broker that is lost costs no frame. It records
when each frame was made, for the node-to-database latency. No sensors, no clock drift, no
MicroPython: for fleet tests and the fleet benchmark, where the real firmware is not the
subject.

Writes are non-blocking: bytes a full PTY buffer cannot take are dropped, as a UART without
flow control drops them; the retransmission recovers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Hashable
from typing import Any

from streetsense.protocol import FLAG_ACK_REQ, Deframer, Frame, ProtocolError, names, parse_frame
from streetsense.protocol.messages import (
    ACK,
    CLOCK_UTC,
    DATA,
    EVENT,
    EVENT_VEHICLE,
    HELLO,
    STATUS,
)

from .pty import PtyPair

__all__ = ["LightNode", "StopAndWaitNode"]


class StopAndWaitNode:
    """The protocol side of a light node, whatever its link: ``transmit(wire)`` puts bytes on
    the link, ``feed(data, link)`` takes what came down it (a deframer per link; ACKs are
    counted per link too). ``run()`` is the retransmission timer."""

    def __init__(self, node_id: int, key: bytes, *, transmit: Callable[[bytes], None],
                 boot: int = 1, retry_s: float = 2.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.node_id = node_id
        self.key = key
        self.boot = boot
        self.retry_s = retry_s
        self.transmit = transmit
        self._clock = clock
        self.seq = 0
        self.unacked: dict[int, bytes] = {}  # seq -> wire bytes, queued until ACKed, in order
        self.sent_frames: dict[int, bytes] = {}  # seq -> wire bytes (for replay attempts)
        self.sent_at: dict[int, float] = {}  # seq -> when the frame was made (UNIX time)
        self.kinds: dict[int, str] = {}  # seq -> "data", "event", "status" (HELLO: none)
        self.acked = asyncio.Event()  # set whenever nothing is left unacknowledged
        self.acked.set()
        self.acks: dict[Hashable, int] = {}  # link -> ACK frames that came down it
        self.downlinks: list[Frame] = []
        self.errors: list[ProtocolError] = []
        self.retransmissions = 0
        self._deframers: dict[Hashable, Deframer] = {}
        self._progress = asyncio.Event()  # set when the head of the queue was ACKed

    # ---- uplink -------------------------------------------------------------------------

    def hello(self) -> int:
        """The node's birth (at boot)."""
        return self._send(HELLO, {
            names.HELLO_KIND: "streetsense-node", names.HELLO_FIRMWARE: "0.1.0",
            names.HELLO_PROTOCOL: [1, 0], names.HELLO_SENSORS: ["pms5003"],
            names.HELLO_RESET_CAUSE: 1, names.HELLO_BOOT: self.boot,
            names.HELLO_UPTIME_MS: 1500}, None)

    def data(self, pm2_5_tenths: int = 312) -> int:
        """A DATA frame with one PM2.5 reading (fixed point, tenths of µg/m³); its seq."""
        return self._send(DATA, {
            names.DATA_TS: int(self._clock()), names.DATA_CLOCK: CLOCK_UTC,
            names.DATA_INTERVAL_S: 10, names.DATA_READINGS: [[2, -1, pm2_5_tenths]]}, "data")

    def event(self, lane: int = 1) -> int:
        """An EVENT frame: a motorbike passing in ``lane``; its seq."""
        return self._send(EVENT, {
            names.EVENT_TS: int(self._clock()), names.EVENT_CLOCK: CLOCK_UTC,
            names.EVENT_CODE: EVENT_VEHICLE,
            names.EVENT_ARGS: {"lane": lane, "dir": 1, "speed_dkmh": 325, "length_cm": 180,
                               "class": names.VEHICLE_MOTORBIKE}}, "event")

    def status(self) -> int:
        """A STATUS frame; its seq."""
        return self._send(STATUS, {
            names.STATUS_UPTIME_S: 60, names.STATUS_FREE_HEAP: 48000,
            names.STATUS_LINK: {"queued": len(self.unacked)},
            names.STATUS_TS: int(self._clock()), names.STATUS_CLOCK: CLOCK_UTC}, "status")

    def _send(self, mtype: int, body: dict[int, Any], kind: str | None) -> int:
        seq = self.seq
        self.seq += 1
        wire = Frame(mtype, self.node_id, self.boot, seq, body, FLAG_ACK_REQ).encode(self.key)
        self.unacked[seq] = wire
        self.sent_frames[seq] = wire
        self.sent_at[seq] = self._clock()
        if kind is not None:
            self.kinds[seq] = kind
        self.acked.clear()
        if len(self.unacked) == 1:  # nothing outstanding: send it now
            self.transmit(wire)
        return seq

    async def run(self) -> None:
        """The retransmission timer: the oldest unACKed frame again every ``retry_s``."""
        while True:
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), self.retry_s)
            except TimeoutError:
                if self.unacked:
                    self.retransmissions += 1
                    self.transmit(next(iter(self.unacked.values())))

    # ---- downlink -----------------------------------------------------------------------

    def feed(self, data: bytes, link: Hashable = None) -> None:
        """Bytes that came down ``link``: ACKs move the queue on."""
        deframer = self._deframers.setdefault(link, Deframer())
        for item in deframer.feed(data):
            if isinstance(item, ProtocolError):
                self.errors.append(item)
                continue
            try:
                frame = parse_frame(bytes(item), self.key)
            except ProtocolError as exc:
                self.errors.append(exc)
                continue
            self.downlinks.append(frame)
            if frame.type == ACK and frame.body[names.ACK_BOOT] == self.boot:
                self.acks[link] = self.acks.get(link, 0) + 1
                self._acked(frame.body[names.ACK_SEQ])

    def forget_link(self, link: Hashable) -> None:
        """``link`` is gone: a half-received frame on it is dropped."""
        self._deframers.pop(link, None)

    def _acked(self, seq: int) -> None:
        done = [s for s in self.unacked if s <= seq]
        for s in done:
            del self.unacked[s]
        if done:
            self._progress.set()
            if self.unacked:
                self.transmit(next(iter(self.unacked.values())))
            else:
                self.acked.set()


class LightNode(StopAndWaitNode):
    """A `StopAndWaitNode` on a PTY: ``path`` is what the gateway opens; ``start()`` on the
    running loop, ``close()`` at the end."""

    def __init__(self, node_id: int, key: bytes, *, boot: int = 1, retry_s: float = 2.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(node_id, key, transmit=self._write, boot=boot, retry_s=retry_s,
                         clock=clock)
        self._pty = PtyPair(nonblocking=True)
        self.master, self.path = self._pty.master, self._pty.path  # the gateway opens path
        self.dropped_bytes = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Read downlinks and retransmit, on the running loop, until ``close()``."""
        loop = asyncio.get_running_loop()
        loop.add_reader(self.master, self._readable)
        self._task = loop.create_task(self.run(), name=f"light-node:{self.node_id}")

    async def close(self) -> None:
        """Stop, and close both ends of the PTY."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.master)
        self._pty.close()

    def replay(self, wire: bytes) -> None:
        """Write captured frame bytes on this node's link (an attacker's replay)."""
        self._write(wire)

    def _write(self, wire: bytes) -> None:
        try:
            written = os.write(self.master, wire)
        except OSError:  # a full buffer (EAGAIN), or the gateway's side gone for now
            written = 0
        self.dropped_bytes += len(wire) - written

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except OSError:
            return  # nothing to read, or EIO while no one holds the slave
        self.feed(data)
