"""A minimal gateway for the node-core tests and the node benchmark: protocol v1 on a node's port.

`MiniGateway` opens the PTY a gateway would open, deframes and parses what the node sends
(with the node's key, or unsigned for the factory node 0), applies the replay rule of SPEC.md
§6.2 per boot, ACKs new and duplicate frames while `acking` is set, and sends downlinks
signed with the node's key. It is the protocol package's view of the node, nothing more.
"""

from __future__ import annotations

import os
import threading
import time
import tty
from collections.abc import Callable
from typing import Any

from streetsense.protocol import Deframer, Frame, ProtocolError, parse_frame, peek_node_id
from streetsense.protocol import messages as m

from .keys import KEY, NODE_ID
from .lifecycle import Managed, SelectThread

__all__ = ["MiniGateway"]


class MiniGateway(Managed):
    """A gateway's replay rule and ACKs on one port, in a thread; ``close()`` ends it."""

    def __init__(self, port: str, keys: dict[int, bytes | None], *, acking: bool = True) -> None:
        self.keys = dict(keys)  # node id -> key (None: unsigned, the factory node)
        self.acking = acking
        self.raw: list[bytes] = []  # every decoded frame received, duplicates included
        self.accepted: list[Frame] = []  # frames that were new (SPEC §6.2)
        self.errors: list[ProtocolError] = []
        self.highest: dict[tuple[int, int], int] = {}  # (node, boot) -> highest seq
        self._downlink_seq: dict[tuple[int, int], int] = {}
        self._deframer = Deframer()
        self._changed = threading.Condition()
        self._fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self._fd)
        self._thread = SelectThread(self._run, "mini-gateway")
        self._thread.start()

    def close(self) -> None:
        self._thread.close()
        os.close(self._fd)

    def _run(self) -> None:
        while True:
            if self._thread.wait([self._fd]) is None:
                return
            for item in self._deframer.feed(os.read(self._fd, 4096)):
                if isinstance(item, ProtocolError):
                    self.errors.append(item)
                else:
                    self._receive(item)

    def _receive(self, raw: bytes) -> None:
        node_id = peek_node_id(raw)
        unsigned = node_id in self.keys and self.keys[node_id] is None
        try:
            frame = parse_frame(raw, None if unsigned else self.keys.get)
        except ProtocolError as exc:
            with self._changed:
                self.errors.append(exc)
                self._changed.notify_all()
            return
        with self._changed:
            self.raw.append(raw)
            at = (frame.node_id, frame.boot)
            highest = self.highest.get(at, -1)
            if frame.seq > highest:
                self.highest[at] = frame.seq
                self.accepted.append(frame)
            ack = frame.seq >= highest and self.acking
            self._changed.notify_all()
        if ack:
            self.send(m.ACK, {1: frame.boot, 2: frame.seq}, node_id=frame.node_id, seq=0,
                      key=self.keys.get(frame.node_id))

    def current_boot(self, node_id: int) -> int:
        with self._changed:
            return max(boot for node, boot in self.highest if node == node_id)

    def send(
        self,
        mtype: int,
        body: dict[int, Any],
        *,
        node_id: int = NODE_ID,
        boot: int | None = None,
        seq: int | None = None,
        key: bytes | None = KEY,
    ) -> None:
        """A downlink; by default to the node's current boot, with the next downlink seq."""
        if boot is None:
            boot = self.current_boot(node_id)
        if seq is None:
            seq = self._downlink_seq.get((node_id, boot), 0) + 1
            self._downlink_seq[(node_id, boot)] = seq
        os.write(self._fd, Frame(mtype, node_id, boot, seq, body).encode(key))

    def wait(self, predicate: Callable[[Frame], bool], timeout: float = 10.0) -> Frame:
        """The first accepted frame that satisfies `predicate` (waits for it)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for frame in self.accepted:
                    if predicate(frame):
                        return frame
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(f.type_name, f.node_id, f.boot, f.seq) for f in self.accepted]
                    raise AssertionError(f"no such frame within {timeout} s; accepted: {seen}")
                self._changed.wait(left)

    def wait_raw(self, count: int, timeout: float = 10.0) -> list[bytes]:
        """Wait until `count` frames (duplicates included) have come; returns them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.raw) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.raw)} frames of {count} in {timeout} s")
                self._changed.wait(left)
            return list(self.raw)

    def result(self, request: int, node_id: int = NODE_ID, timeout: float = 10.0) -> Frame:
        return self.wait(lambda f: f.node_id == node_id and f.type == m.RESULT
                         and f.body[1] == request, timeout)  # fmt: skip
