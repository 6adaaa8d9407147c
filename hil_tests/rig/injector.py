"""A frame injector: a serial port of the gateway's that the test writes crafted frames into.

`FrameInjector` opens a PTY pair; the gateway is configured with ``port`` (the PTY's slave
path) as one more serial port. The test then plays nodes that do not exist, nodes with a
wrong key, replays and duplicates, byte for byte, and reads what the gateway answers (ACKs)
from the same PTY. A `ScriptedNode` numbers and signs frames as a node would (SPEC §6.1).
"""

from __future__ import annotations

import os
import select
import time
from dataclasses import dataclass, field
from typing import Any

from streetsense.protocol import FLAG_ACK_REQ, Deframer, Frame, ProtocolError, names, parse_frame
from streetsense.protocol.messages import ACK, CLOCK_UTC, DATA, HELLO

from ..pty import PtyPair

__all__ = ["FrameInjector", "ScriptedNode"]


@dataclass
class ScriptedNode:
    """A node played by the test: id, key, boot counter; ``seq`` is the next sequence number."""

    node_id: int
    key: bytes = field(repr=False)
    boot: int = 1
    seq: int = 0
    sent: list[bytes] = field(default_factory=list)

    def frame(self, mtype: int, body: dict[int, Any], *, key: bytes | None = None,
              seq: int | None = None) -> bytes:
        """The wire bytes of the next frame (ACK_REQ, signed with ``key`` or the node's)."""
        if seq is None:
            seq, self.seq = self.seq, self.seq + 1
        wire: bytes = Frame(mtype, self.node_id, self.boot, seq, body,
                            flags=FLAG_ACK_REQ).encode(key or self.key)
        self.sent.append(wire)
        return wire

    def hello(self, **kwargs: Any) -> bytes:
        """A HELLO for this boot."""
        return self.frame(HELLO, {
            names.HELLO_KIND: "streetsense-node", names.HELLO_FIRMWARE: "scripted",
            names.HELLO_PROTOCOL: [1, 0], names.HELLO_SENSORS: ["pms5003"],
            names.HELLO_RESET_CAUSE: 1, names.HELLO_BOOT: self.boot}, **kwargs)

    def data(self, pm2_5_tenths: int, ts: int, **kwargs: Any) -> bytes:
        """A DATA with one PM2.5 sample (``pm2_5_tenths`` * 0.1 ug/m3) at Unix time ``ts``."""
        return self.frame(DATA, {
            names.DATA_TS: ts, names.DATA_CLOCK: CLOCK_UTC, names.DATA_INTERVAL_S: 60,
            names.DATA_READINGS: [[2, -1, pm2_5_tenths]]}, **kwargs)


class FrameInjector(PtyPair):
    """One PTY pair: the gateway reads the slave (``port``), the test holds the master and
    ``write``s towards the gateway."""

    def __init__(self) -> None:
        super().__init__()
        self.port = self.path
        self._deframer = Deframer()
        self.received: list[Frame] = []

    def wait_ack(self, node_id: int, boot: int, seq: int, *, timeout: float = 10.0) -> Frame:
        """Wait for an ACK covering (node_id, boot, seq); raises AssertionError on timeout."""
        found = self.wait_frame(
            lambda f: f.type == ACK and f.node_id == node_id and f.body.get(names.ACK_BOOT) == boot
            and f.body.get(names.ACK_SEQ, -1) >= seq, timeout=timeout)
        if found is None:
            raise AssertionError(f"no ACK for node {node_id} boot {boot} seq {seq} "
                                 f"within {timeout} s; got {self.received}")
        return found

    def wait_frame(self, predicate: Any, *, timeout: float) -> Frame | None:
        """The first received frame (old or new) matching ``predicate``, or None."""
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            for frame in self.received[checked:]:
                if predicate(frame):
                    return frame
            checked = len(self.received)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([self.master], [], [], remaining)
            if readable:
                self._read()

    def drain(self) -> list[Frame]:
        """Read whatever the gateway has written so far; returns all frames received."""
        while select.select([self.master], [], [], 0)[0]:
            if not self._read():
                break
        return self.received

    def _read(self) -> bool:
        try:
            chunk = os.read(self.master, 4096)
        except OSError:
            return False
        for item in self._deframer.feed(chunk):
            if not isinstance(item, ProtocolError):
                try:
                    self.received.append(parse_frame(item))
                except ProtocolError:
                    continue
        return bool(chunk)
