"""A small CPython node on a PTY master that follows the provisioning exchange (SPEC §6.6).

Enough of a node for the ``provision`` tests: HELLO (resent until acked), the factory CONFIG
answered by a RESULT signed with the new key and new id, a reset into the provisioned
state, TIME, one DATA; a provisioned node takes a signed COMMAND ``factory_reset``. Its
HELLO names the kind it was built or last provisioned as ("" after a fresh flash).
The end-to-end test with the real firmware uses ``streetsense.hil.node.EmulatedNode``.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from streetsense.protocol import FLAG_ACK_REQ, Deframer, Frame, ProtocolError, parse_frame
from streetsense.protocol import messages as m

RESEND_S = 0.2  # the node's retransmission timer (a protocol timer, not test synchronisation)
READING = [m.channel(2), -1, 312, 250, 400, 12]  # PM2.5 31.2 µg/m³


class FakeNode(threading.Thread):
    def __init__(self, master: int, *, node_id: int = 0, key: bytes | None = None,
                 kind: str = "", refuse: str | None = None, silent: bool = False,
                 running: bool = False, reboots: bool = True,
                 on_config: Callable[[dict[str, Any]], None] | None = None) -> None:
        super().__init__(daemon=True)
        self.master = master
        self.node_id, self.key, self.kind = node_id, key, kind
        self.refuse = refuse  # a RESULT BAD_ARGS message for the provisioning CONFIG
        self.silent = silent  # never says anything (an unflashed or unpowered node)
        self.running = running  # said its HELLO long ago: only its unacked DATA is resent
        self.reboots = reboots  # False: silent after the reset that follows provisioning
        self.on_config = on_config  # called with the provisioning settings it takes
        self.boot = 1
        self.seq = 0
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
        deframer = Deframer()
        resend_at = 0.0
        while not self.stopped.is_set():
            if self.pending is None and self.outbox and not self.silent:
                mtype, body = self.outbox.pop(0)
                if mtype == m.RESULT and self.reset_as is not None:
                    self.reset_seq = self.seq  # the reset follows the ACK of this RESULT
                frame = Frame(mtype, self.node_id, self.boot, self.seq, body, FLAG_ACK_REQ)
                self.pending = frame.encode(self.key)
                resend_at = 0.0
            if self.pending is not None and time.monotonic() >= resend_at and not self.silent:
                os.write(self.master, self.pending)
                resend_at = time.monotonic() + RESEND_S
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if ready:
                for item in deframer.feed(os.read(self.master, 4096)):
                    if isinstance(item, bytes):
                        self._on_frame(item)

    def _on_frame(self, raw: bytes) -> None:
        try:
            frame = parse_frame(raw, self.key)
        except ProtocolError:
            return
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
