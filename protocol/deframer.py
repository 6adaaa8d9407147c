"""Streaming deframer: bytes in any chunking -> COBS-decoded frames or errors.

Frames are delimited by 0x00. After garbage, an oversize run or a broken COBS
block the deframer resynchronises at the next 0x00, so one bad frame never costs
the next one. ``end()`` reports what the end of the stream cut off.
"""

from . import cobs
from .errors import NeedMoreBytes, Oversize, ProtocolError
from .frame import MAX_ENCODED


class Deframer:
    """Feed it bytes; it returns the frames (bytes) and errors found so far, in order."""

    def __init__(self, max_encoded=MAX_ENCODED):
        self._max = max_encoded
        self._buf = bytearray()
        self._skipping = False  # inside an oversize run: drop bytes until the next 0x00

    def feed(self, data):
        out: list = []  # frames (bytes) and ProtocolErrors, in stream order
        start = 0
        while True:
            end = data.find(b"\x00", start)
            if end < 0:
                self._take(data[start:], out)
                return out
            self._take(data[start:end], out)
            if self._skipping:
                self._skipping = False
            elif self._buf:
                try:
                    out.append(cobs.decode(self._buf))
                except ProtocolError as exc:
                    out.append(exc)
            self._buf = bytearray()
            start = end + 1

    def _take(self, chunk, out):
        if self._skipping or not chunk:
            return
        if len(self._buf) + len(chunk) > self._max:
            out.append(Oversize("no delimiter within %d bytes" % self._max, "length",
                                len(self._buf) + len(chunk)))
            self._buf = bytearray()
            self._skipping = True
            return
        self._buf += chunk

    def end(self):
        """The stream ended (the link closed, the input ran out): the bytes since the last
        0x00 are an incomplete frame, never parsed (SPEC.md §1.2). Returns them as one
        ``NeedMoreBytes`` (field ``length``), or nothing; the deframer starts afresh."""
        out = []
        if self._buf:
            out.append(NeedMoreBytes("the stream ended inside a frame", "length", len(self._buf)))
        self._buf = bytearray()
        self._skipping = False
        return out

    @property
    def pending(self):
        """Bytes buffered towards the next frame."""
        return len(self._buf)
