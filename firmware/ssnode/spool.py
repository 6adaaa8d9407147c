"""Flash part of the uplink queue: frames waiting out a gateway outage, oldest first.

Frames live in segment files `spool/00000001`, `spool/00000002`, ... appended to in batches.
Each record is `state u8 | boot u32 | seq u32 | length u16 | wire bytes` (big-endian); `state`
is 1 while the frame waits and is overwritten in place with 0 once the gateway acknowledged
it, so after a reboot no acknowledged frame is sent again (the gateway would reject it as a
replay, SPEC.md §6.2, and never ACK it). A segment is deleted when all of it is delivered.
A record cut short by a power loss ends its segment. When the spool exceeds its byte budget
the oldest segment is dropped, and its frames are counted as lost.
"""

import os
import struct

from micropython import const

_REC = ">BIIH"
_REC_LEN = const(11)
_PENDING = const(1)
_SEGMENT_BYTES = const(4096)  # one flash sector per segment, about 40 frames


class Spool:
    def __init__(self, directory="spool", max_bytes=1024 * 1024):
        self._dir = directory
        self.max_bytes = max_bytes
        self.lost = 0  # frames dropped because the spool was full
        try:
            names = os.listdir(directory)
        except OSError:
            os.mkdir(directory)
            names = []
        self._segments = sorted(int(n) for n in names if n.isdigit())
        self.bytes = 0
        for n in self._segments:
            self.bytes += self._size(n)
        self._head = None  # (offset, boot, seq, wire) of the oldest waiting frame
        self._offset = 0  # where the search for it continues in the first segment
        self._header = bytearray(_REC_LEN)

    def _path(self, n):
        return f"{self._dir}/{n:08d}"

    def _size(self, n):
        return os.stat(self._path(n))[6]

    def __bool__(self):
        return self.head() is not None

    def append(self, frames):
        """Write frames [(boot, seq, wire)] behind the others, in one write."""
        if not self._segments or self._size(self._segments[-1]) >= _SEGMENT_BYTES:
            self._segments.append(self._segments[-1] + 1 if self._segments else 1)
        with open(self._path(self._segments[-1]), "ab") as f:
            for boot, seq, wire in frames:
                f.write(struct.pack(_REC, _PENDING, boot, seq, len(wire)))
                f.write(wire)
                self.bytes += _REC_LEN + len(wire)
        while self.bytes > self.max_bytes and len(self._segments) > 1:
            self.lost += self._drop_first()

    def head(self):
        """(boot, seq, wire) of the oldest frame still waiting, or None."""
        while self._head is None and self._segments:
            self._head = self._scan()
            if self._head is None:
                self._drop_first()
        return None if self._head is None else self._head[1:]

    def _scan(self):
        """The first waiting record from `_offset` in the first segment, or None."""
        with open(self._path(self._segments[0]), "rb") as f:
            f.seek(self._offset)
            while True:
                if f.readinto(self._header) != _REC_LEN:
                    return None
                state, boot, seq, length = struct.unpack(_REC, self._header)
                wire = f.read(length)
                if len(wire) != length:
                    return None  # cut short by a power loss
                if state == _PENDING:
                    return (self._offset, boot, seq, wire)
                self._offset += _REC_LEN + length

    def delivered(self):
        """Mark the head frame (as returned by head()) delivered, in place on flash."""
        head = self._head
        if head is None:
            return
        with open(self._path(self._segments[0]), "r+b") as f:
            f.seek(head[0])
            f.write(b"\x00")
        self._offset = head[0] + _REC_LEN + len(head[3])
        self._head = None

    def _drop_first(self):
        """Delete the first segment; returns how many waiting frames it held."""
        waiting = 0
        if self._segments:
            n = self._segments[0]
            path = self._path(n)
            with open(path, "rb") as f:
                f.seek(self._offset)
                while f.readinto(self._header) == _REC_LEN:
                    state, _, _, length = struct.unpack(_REC, self._header)
                    waiting += state == _PENDING
                    f.seek(length, 1)
            self.bytes -= self._size(n)
            os.remove(path)
            self._segments.pop(0)
        self._head = None
        self._offset = 0
        return waiting

    def clear(self):
        """Forget every frame (the node's identity changed: they can never be delivered)."""
        while self._segments:
            self._drop_first()
