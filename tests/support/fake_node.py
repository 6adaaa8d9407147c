"""Fake nodes in CPython: one sans-IO core and the two ways the tests drive it.

`FakeNode` is a node's protocol state without I/O: identity, key, boot and sequence
counters, the frames it would send (``frame``, ``hello``, ``data``) and the frames it reads
from the gateway's bytes (``feed``). The adapters only move bytes:

* `PtyNode` — a provisioned node on a `PtyPort`, on the test's asyncio loop: the gateway tests
  write its uplinks and wait for its downlinks (ACKs, TIME, commands);
* `ProvisioningNode` — a node on a PTY master in a thread that follows the provisioning
  exchange (SPEC §6.6) by itself, for the technician tools' tests: HELLO (resent until acked),
  the factory CONFIG answered by a RESULT signed with the new key and new id, a reset into
  the provisioned state, TIME, one DATA; a provisioned node takes a signed COMMAND
  ``factory_reset``. Its HELLO names the kind it was built or last provisioned as ("" after
  a fresh flash).

The end-to-end tests with the real firmware use ``streetsense.hil.node.EmulatedNode``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from streetsense.hil.keys import numbered_key
from streetsense.hil.pty import PtyPort
from streetsense.protocol import FLAG_ACK_REQ, Deframer, Frame, ProtocolError, parse_frame
from streetsense.protocol import messages as m

__all__ = ["FakeNode", "ProvisioningNode", "PtyNode"]


class FakeNode:
    """A node's protocol state, sans I/O: builds its signed frames, reads the gateway's."""

    def __init__(self, node_id: int, *, key: bytes | None, boot: int = 1) -> None:
        self.node_id = node_id
        self.key = key
        self.boot = boot
        self.seq = 0
        self._deframer = Deframer()

    def reboot(self) -> None:
        self.boot += 1
        self.seq = 0

    def frame(self, mtype: int, body: Any, *, seq: int | None = None, boot: int | None = None,
              ack: bool = True, key: bytes | None = None) -> tuple[bytes, int]:
        """(wire bytes, seq) of a new uplink; the node's seq advances unless ``seq`` is given."""
        if seq is None:
            seq = self.seq
            self.seq += 1
        flags = FLAG_ACK_REQ if ack else 0
        frame = Frame(mtype, self.node_id, self.boot if boot is None else boot, seq, body, flags)
        return frame.encode(key if key is not None else self.key), seq

    def hello(self, uptime_ms: int = 1500) -> tuple[bytes, int]:
        return self.frame(m.HELLO, {1: "streetsense-node", 2: "0.1.0", 3: [1, 0],
                                    4: ["pms5003", "scd41"], 5: 1, 6: self.boot, 8: uptime_ms})

    def data(self, pm2_5_tenths: int, ts: int = 1_764_115_200, clock: int = 0
             ) -> tuple[bytes, int]:
        return self.frame(m.DATA, {1: ts, 2: clock, 3: 60,
                                   4: [[2, -1, pm2_5_tenths, pm2_5_tenths - 5,
                                        pm2_5_tenths + 5, 12], [4, 0, 415]]})

    def restart_reading(self) -> None:
        """Forget a partial frame (a new cable, a reset)."""
        self._deframer = Deframer()

    def feed(self, data: bytes) -> Iterator[Frame | ProtocolError]:
        """The frames in ``data`` from the gateway, each parsed with the node's key as it is
        when that frame comes up (a frame can change the key), or the error it raised."""
        for item in self._deframer.feed(data):
            if isinstance(item, ProtocolError):
                yield item
                continue
            try:
                yield parse_frame(bytes(item), self.key)
            except ProtocolError as exc:
                yield exc


class PtyNode(FakeNode):
    """A provisioned `FakeNode` on a `PtyPort`, read on the running asyncio loop."""

    def __init__(self, port: PtyPort, node_id: int, *, boot: int = 1,
                 key: bytes | None = None) -> None:
        super().__init__(node_id, key=key if key is not None else numbered_key(node_id),
                         boot=boot)
        self.port = port
        self.downlinks: list[Frame] = []
        self.errors: list[ProtocolError] = []
        self._changed = asyncio.Condition()
        self._reading_fd = -1

    def attach(self) -> None:
        """Start reading downlinks from the port's current PTY."""
        self._reading_fd = self.port.master
        self.restart_reading()
        asyncio.get_running_loop().add_reader(self._reading_fd, self._readable)

    def detach(self) -> None:
        if self._reading_fd >= 0:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._reading_fd)
        self._reading_fd = -1

    def _readable(self) -> None:
        try:
            data = os.read(self._reading_fd, 4096)
        except OSError:
            self.detach()
            return
        for item in self.feed(data):
            if isinstance(item, ProtocolError):
                self.errors.append(item)
            else:
                self.downlinks.append(item)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.port.master, view)
            view = view[written:]

    async def wait_for(self, predicate: Callable[[Frame], bool], timeout: float = 5.0) -> Frame:
        """The first downlink received that matches ``predicate`` (waits for it)."""
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for frame in self.downlinks:
                    if predicate(frame):
                        return frame
                await self._changed.wait()

    async def wait_count(self, predicate: Callable[[Frame], bool], count: int,
                         timeout: float = 5.0) -> list[Frame]:
        """Until ``count`` downlinks match ``predicate``; returns them."""
        async with asyncio.timeout(timeout), self._changed:
            while True:
                found = [frame for frame in self.downlinks if predicate(frame)]
                if len(found) >= count:
                    return found
                await self._changed.wait()

    async def wait_ack(self, seq: int, *, boot: int | None = None, timeout: float = 5.0) -> Frame:
        boot = self.boot if boot is None else boot
        return await self.wait_for(
            lambda f: f.type == m.ACK and f.body[1] == boot and f.body[2] >= seq, timeout)

    async def send(self, wire_and_seq: tuple[bytes, int], *, boot: int | None = None,
                   timeout: float = 5.0, retry_s: float = 1.0) -> int:
        """Stop-and-wait: write, retransmit the same bytes until ACKed; returns the seq."""
        wire, seq = wire_and_seq
        async with asyncio.timeout(timeout):
            while True:
                self.write(wire)
                with contextlib.suppress(TimeoutError):
                    await self.wait_ack(seq, boot=boot, timeout=retry_s)
                    return seq


RESEND_S = 0.2  # the node's retransmission timer (a protocol timer, not test synchronisation)
READING = [m.channel(2), -1, 312, 250, 400, 12]  # PM2.5 31.2 µg/m³


class ProvisioningNode(FakeNode, threading.Thread):
    """A `FakeNode` on a PTY master that runs the provisioning exchange in its own thread."""

    def __init__(self, master: int, *, node_id: int = 0, key: bytes | None = None,
                 kind: str = "", refuse: str | None = None, silent: bool = False,
                 running: bool = False, reboots: bool = True,
                 on_config: Callable[[dict[str, Any]], None] | None = None) -> None:
        threading.Thread.__init__(self, daemon=True)
        FakeNode.__init__(self, node_id, key=key)
        self.master = master
        self.kind = kind
        self.refuse = refuse  # a RESULT BAD_ARGS message for the provisioning CONFIG
        self.silent = silent  # never says anything (an unflashed or unpowered node)
        self.running = running  # said its HELLO long ago: only its unacked DATA is resent
        self.reboots = reboots  # False: silent after the reset that follows provisioning
        self.on_config = on_config  # called with the provisioning settings it takes
        self.downlink_seq = 0
        self.time_ms: int | None = None
        self.got_time = threading.Event()  # set when a TIME was applied
        self.configs: list[dict[str, Any]] = []
        self.outbox: list[tuple[int, dict[int, Any]]] = []  # queued uplinks, stop-and-wait
        self.pending: bytes | None = None  # the unacked frame, resent every RESEND_S
        self.reset_as: tuple[int, bytes | None] | None = None  # identity after the next reset
        self.reset_seq = -1
        self.stopped = threading.Event()
        self._boot()

    def _boot(self) -> None:
        self.seq, self.downlink_seq, self.time_ms, self.pending = 0, 0, None, None
        caps = ["time", "config", "factory_reset"] if self.key else ["factory"]
        self.outbox = [(m.HELLO, {1: self.kind, 2: "0.1.0", 3: [1, 0],
                                  4: ["pms5003"], 5: 1, 6: self.boot, 7: caps})]
        if self.running:
            self.outbox, self.seq, self.running = [], 5, False
        if self.key:  # a provisioned node reports as soon as its sensor has a sample
            self.outbox.append((m.DATA, {1: 40, 2: m.CLOCK_UPTIME, 3: 60, 4: [READING]}))

    def run(self) -> None:
        resend_at = 0.0
        while not self.stopped.is_set():
            if self.pending is None and self.outbox and not self.silent:
                mtype, body = self.outbox.pop(0)
                if mtype == m.RESULT and self.reset_as is not None:
                    self.reset_seq = self.seq  # the reset follows the ACK of this RESULT
                self.pending, _ = self.frame(mtype, body, seq=self.seq)
                resend_at = 0.0
            if self.pending is not None and time.monotonic() >= resend_at and not self.silent:
                os.write(self.master, self.pending)
                resend_at = time.monotonic() + RESEND_S
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if ready:
                for item in self.feed(os.read(self.master, 4096)):
                    if isinstance(item, Frame):
                        self._on_frame(item)

    def _on_frame(self, frame: Frame) -> None:
        if frame.node_id != self.node_id or (self.key is None and frame.signed):
            return
        if frame.type == m.ACK:
            if self.pending is not None and (frame.body[1], frame.body[2]) == (self.boot,
                                                                               self.seq):
                self.pending = None
                self.seq += 1
                if self.reset_as is not None and self.reset_seq == self.seq - 1:
                    (self.node_id, self.key), self.reset_as = self.reset_as, None
                    self.boot += 1
                    self._boot()
                    self.silent = self.silent or (self.key is not None and not self.reboots)
            return
        if frame.boot != self.boot or frame.seq <= self.downlink_seq:
            return
        self.downlink_seq = frame.seq
        if frame.type == m.TIME:
            self.time_ms = frame.body[1]
            self.got_time.set()
        elif frame.type == m.CONFIG and self.key is None:
            self._provision(frame.body[1], frame.body[2])
        elif frame.type == m.COMMAND and frame.body[2] == "factory_reset":
            self.outbox.append((m.RESULT, {1: frame.body[1], 2: m.RESULT_OK}))
            self.reset_as = (0, None)

    def _provision(self, request: int, settings: dict[str, Any]) -> None:
        self.configs.append(settings)
        if self.refuse:
            self.outbox.append((m.RESULT, {1: request, 2: m.RESULT_BAD_ARGS, 3: self.refuse}))
            return
        self.node_id, self.key = settings["node_id"], bytes.fromhex(settings["key"])
        self.kind = settings["kind"]
        if self.on_config is not None:
            self.on_config(settings)
        self.outbox, self.pending = [], None  # the factory node's frames can never be acked
        self.outbox.append((m.RESULT, {1: request, 2: m.RESULT_OK}))
        self.reset_as = (self.node_id, self.key)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)
