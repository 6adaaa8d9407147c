"""The uplink queue: frames wait here, already encoded, until the gateway acknowledges them.

Order of delivery: this boot's HELLO first (the gateway learns of the new boot and can send
TIME at once), then the flash spool (frames of this or earlier boots that did not fit in RAM
or waited out a reset), then RAM. The spool only ever holds frames older than those in RAM:
when RAM is full, all of it moves to the end of the spool in one write. So every boot's frames
go out in seq order, oldest first.
"""

from collections import deque

from micropython import const

RAM_FRAMES = const(32)


class UplinkQueue:
    def __init__(self, spool, ram_frames=RAM_FRAMES):
        self._spool = spool
        # MicroPython's deque takes maxlen positionally only.
        self._ram = deque((), ram_frames)  # type: deque  # noqa: RUF037
        self._ram_max = ram_frames
        self._first = None  # this boot's HELLO until acknowledged

    def push(self, boot, seq, wire, first=False):
        """Queue a frame; `first` marks this boot's HELLO (seq 0), sent before all others."""
        if first:
            self._first = (boot, seq, wire)
            return
        if len(self._ram) >= self._ram_max:
            self._spill()
        self._ram.append((boot, seq, wire))

    def head(self):
        """(boot, seq, wire) of the frame to send now, or None."""
        if self._first is not None:
            return self._first
        spooled = self._spool.head()
        if spooled is not None:
            return spooled
        return self._ram[0] if self._ram else None

    def ack(self, boot, seq):
        """Drop the frames an ACK of (boot, seq) covers; returns True if the head went."""
        popped = False
        while True:
            head = self.head()
            if head is None or head[0] != boot or head[1] > seq:
                return popped
            if self._first is not None:
                self._first = None
            elif self._spool.head() is not None:
                self._spool.delivered()
            else:
                self._ram.popleft()
            popped = True

    def _spill(self):
        if self._ram:
            frames = []
            while self._ram:
                frames.append(self._ram.popleft())
            self._spool.append(frames)

    def flush(self):
        """Before a controlled reset: RAM to flash. An unacknowledged HELLO is dropped: the
        next boot sends its own, and spooled behind later frames of its boot it would come
        out of seq order (and be rejected as a replay forever)."""
        self._first = None
        self._spill()

    def clear(self):
        self._first = None
        while self._ram:
            self._ram.popleft()
        self._spool.clear()

    def pressure(self):
        """RAM fill 0..1; 1 while frames wait in flash (the link is not keeping up)."""
        if self._spool.head() is not None:
            return 1.0
        return len(self._ram) / self._ram_max

    def counts(self):
        """(frames in RAM, bytes in flash, frames lost to a full spool)."""
        return len(self._ram), self._spool.bytes, self._spool.lost
