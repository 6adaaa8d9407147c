"""GPIO lines in a socket: the detector edges an environment schedules, for the emulated board.

Detector lines are driven by *presence*: `schedule_presence()` takes +1 (something comes over
the zone) and -1 (it leaves) per pin, and the line reads 0 (occupied, active low) while the
count is above zero: the union of what is over the zone, resolved in time order as the edges
go out. Plain levels (`set`, `schedule`) are for everything else (a stuck line, a fault).

The board's `machine.Pin` (hil_tests/board/machine.py) connects once per process. Each edge
goes to it AHEAD_S before it is due, with the time it is due; the board's reader thread holds
it until then and changes the level and runs the Pin IRQ handlers at that time. So the edge's
timing is kept by the board process (MicroPython threads have no GIL), not by this process,
whose threads share one GIL with everything else a test runs; and the board never holds more
than AHEAD_S of edges (an hour of traffic would not fit a node's heap). Both sides read
CLOCK_MONOTONIC: CPython's `time.monotonic()` and the unix port's `time.ticks_us()`.

Records on the TCP stream, integers big-endian:

    server -> board:  pin (1) | level (1) | due (u64, µs of CLOCK_MONOTONIC; 0 = now)
                      on connect: the current level of every driven pin and the edges still
                      to come, then the record pin FF (end of that snapshot)
    board  -> server: pin (1) | level (1)      the board drives an output pin (the LED)
                      pin (1) | ARMED (2)      the board attached an IRQ handler to that pin
"""

from __future__ import annotations

import heapq
import itertools
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable

ARMED = 2
EDGE = struct.Struct(">BBQ")
SNAPSHOT_END = EDGE.pack(0xFF, 0, 0)
AHEAD_S = 0.2  # far beyond this process's GIL stalls, short enough to hold little
_BOARD_RECORD = 2
_HISTORY = 10_000
# Heap kinds at one due time: arrivals first (a vehicle entering as another leaves is no gap),
# then plain levels, then departures.
_ARRIVE, _LEVEL, _LEAVE = 0, 1, 2


def _due_us(due_s: float) -> int:
    return max(0, round(due_s * 1e6))


class GpioServer:
    """Lines driven by the environment; `start()` returns "host:port" for the board file."""

    def __init__(self) -> None:
        self.levels: dict[int, int] = {}  # pin -> level the environment drives now
        # Recent history, bounded (a scene runs for hours): (monotonic s, pin, level) driven by
        # the board, and (due s, pin, level) of the edges that have come due.
        self.outputs: deque[tuple[float, int, int]] = deque(maxlen=_HISTORY)
        self.edges: deque[tuple[float, int, int]] = deque(maxlen=_HISTORY)
        self.armed: set[int] = set()  # pins with an IRQ handler on the board
        self.address = ""
        self._cond = threading.Condition()
        # Heaps of (due s, kind, order, pin, level): edges not yet sent (kind _ARRIVE/_LEAVE:
        # presence changes, level unused), and sent but not yet due (kind _LEVEL).
        self._ahead: list[tuple[float, int, int, int, int]] = []
        self._due: list[tuple[float, int, int, int, int]] = []
        self._present: dict[int, int] = {}  # pin -> what is over it, as resolved so far
        self._sent: dict[int, int] = {}  # pin -> the last level sent to the boards
        self._order = itertools.count()
        self._clients: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1") -> str:
        self._listener = socket.create_server((host, 0))
        host, port = self._listener.getsockname()[:2]
        self.address = f"{host}:{port}"
        for target, name in ((self._accept, "gpio-accept"), (self._forward, "gpio-edges")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self.address

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            clients, self._clients = self._clients, []
        if self._listener is not None:
            # shutdown() wakes the accept() blocked in the other thread; close() alone doesn't.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        for c in clients:
            c.close()
        for t in self._threads:
            t.join(timeout=5)

    # -- the environment's side -----------------------------------------------------------
    def set(self, pin: int, level: int) -> None:
        """Drive `pin` to `level` now."""
        self.schedule([(time.monotonic(), pin, level)])

    def schedule(self, edges: Iterable[tuple[float, int, int]]) -> None:
        """Drive pins at absolute times: (time.monotonic() seconds, pin, level)."""
        with self._cond:
            for due, pin, level in edges:
                heapq.heappush(self._ahead, (due, _LEVEL, next(self._order), pin, level))
            self._cond.notify_all()

    def schedule_presence(self, changes: Iterable[tuple[float, int, int]]) -> None:
        """Presence changes at absolute times: (time.monotonic() s, pin, +1 or -1). A pin reads
        0 while its count is above zero, else 1. Give them more than AHEAD_S ahead: the edges
        due before that may be on their way already."""
        with self._cond:
            for due, pin, delta in changes:
                kind = _ARRIVE if delta > 0 else _LEAVE
                heapq.heappush(self._ahead, (due, kind, next(self._order), pin, 0))
            self._cond.notify_all()

    def pending(self) -> int:
        """Edges scheduled and not yet due."""
        with self._cond:
            return len(self._ahead) + len(self._due)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every scheduled edge has come due; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._ahead and not self._due, timeout)

    def wait_armed(self, pins: Iterable[int], timeout: float) -> bool:
        """Wait until the board has IRQ handlers on all `pins`; False on timeout."""
        wanted = set(pins)
        with self._cond:
            return self._cond.wait_for(lambda: wanted <= self.armed, timeout)

    def wait_output(self, pin: int, count: int, timeout: float) -> bool:
        """Wait until the board has driven `pin` at least `count` times; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: sum(1 for _, p, _ in self.outputs if p == pin) >= count, timeout
            )

    # -- threads --------------------------------------------------------------------------
    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._cond:
                if self._closed:
                    conn.close()
                    return
                # A new board process: whatever the old one armed is gone with it.
                self.armed.clear()
                snapshot = b"".join(EDGE.pack(p, v, 0) for p, v in sorted(self.levels.items()))
                snapshot += b"".join(EDGE.pack(p, v, _due_us(d)) for d, _, _, p, v in self._due)
                self._clients.append(conn)
                self._send(conn, snapshot + SNAPSHOT_END)
            threading.Thread(
                target=self._receive, args=(conn,), name="gpio-board", daemon=True
            ).start()

    def _receive(self, conn: socket.socket) -> None:
        buf = b""
        while True:
            try:
                chunk = conn.recv(256)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            now = time.monotonic()
            with self._cond:
                while len(buf) >= _BOARD_RECORD:
                    pin, op = buf[0], buf[1]
                    buf = buf[_BOARD_RECORD:]
                    if op == ARMED:
                        self.armed.add(pin)
                    else:
                        self.outputs.append((now, pin, op & 1))
                self._cond.notify_all()
        with self._cond:
            if conn in self._clients:
                self._clients.remove(conn)
        conn.close()

    def _forward(self) -> None:
        """Send edges to the boards AHEAD_S before they are due; track the levels as they come
        due (for snapshots, `levels` and `wait_idle`)."""
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                out = bytearray()
                while self._ahead and self._ahead[0][0] <= now + AHEAD_S:
                    edge = self._resolve(heapq.heappop(self._ahead))
                    if edge is not None:
                        heapq.heappush(self._due, edge)
                        out += EDGE.pack(edge[3], edge[4], _due_us(edge[0]))
                for c in list(self._clients):
                    self._send(c, bytes(out))
                while self._due and self._due[0][0] <= now:
                    due, _, _, pin, level = heapq.heappop(self._due)
                    self.levels[pin] = level
                    self.edges.append((due, pin, level))
                self._cond.notify_all()
                wake = [self._ahead[0][0] - AHEAD_S] if self._ahead else []
                wake += [self._due[0][0]] if self._due else []
                # Sleeps until then, or until schedule() or close() notify.
                self._cond.wait(max(0.0, min(wake) - time.monotonic()) if wake else None)

    def _resolve(self, edge: tuple[float, int, int, int, int],
                 ) -> tuple[float, int, int, int, int] | None:
        """A popped edge as the level to send, or None when a presence change leaves the
        level as it is (a vehicle joining or leaving others over the zone)."""
        due, kind, order, pin, level = edge
        if kind != _LEVEL:
            count = self._present.get(pin, 0) + (1 if kind == _ARRIVE else -1)
            self._present[pin] = count
            level = 0 if count > 0 else 1
            if self._sent.get(pin, 1) == level:
                return None
        self._sent[pin] = level
        return due, _LEVEL, order, pin, level

    def _send(self, conn: socket.socket, data: bytes) -> None:
        if not data:
            return
        try:
            conn.sendall(data)
        except OSError:
            if conn in self._clients:
                self._clients.remove(conn)
            conn.close()

    def __enter__(self) -> GpioServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
