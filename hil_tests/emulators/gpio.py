"""GPIO lines in a socket: detector levels pushed to the emulated board at their due times.

The board's `machine.Pin` (hil_tests/board/machine.py) connects once per process and keeps a
level per pin; its reader thread runs Pin IRQ handlers as the levels change. Records are two
bytes, both ways, on a TCP stream:

    server -> board:  pin | level (0/1)        a line the environment drives changed level
                                               (on connect: the current level of every
                                               driven pin, then FF FF)
    board  -> server: pin | level (0/1)        the board drives an output pin (the LED)
                      pin | ARMED (2)          the board attached an IRQ handler to that pin

Edges are scheduled on absolute `time.monotonic()` times and sent by one thread that sleeps
until each is due: the MicroPython unix port's `time.ticks_us()` reads the same
CLOCK_MONOTONIC, so a handler's timestamp can be compared with the time its edge was due.
Threads, not asyncio: a CPU-bound event loop (PTY and I2C emulators) must not delay edges.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable

ARMED = 2
SNAPSHOT_END = b"\xff\xff"  # after the levels sent on connect
_RECORD = 2
_HISTORY = 10_000
_SPIN_S = 0.0007


class GpioServer:
    """Lines driven by the environment; `start()` returns "host:port" for the board file."""

    def __init__(self) -> None:
        self.levels: dict[int, int] = {}  # pin -> level the environment drives
        # Recent history, bounded (a scene runs for hours): (monotonic s, pin, level) driven by
        # the board, and (due s, sent s, pin, level) of the edges sent to it.
        self.outputs: deque[tuple[float, int, int]] = deque(maxlen=_HISTORY)
        self.sent: deque[tuple[float, float, int, int]] = deque(maxlen=_HISTORY)
        self.armed: set[int] = set()  # pins with an IRQ handler on the board
        self.address = ""
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, int, int]] = []  # heap of (due s, order, pin, level)
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
        for target, name in ((self._accept, "gpio-accept"), (self._send_due, "gpio-edges")):
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
                heapq.heappush(self._due, (due, next(self._order), pin, level))
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._due)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every scheduled edge has been sent; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._due, timeout)

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
                snapshot = b"".join(bytes((p, v)) for p, v in sorted(self.levels.items()))
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
                while len(buf) >= _RECORD:
                    pin, op = buf[0], buf[1]
                    buf = buf[_RECORD:]
                    if op == ARMED:
                        self.armed.add(pin)
                    else:
                        self.outputs.append((now, pin, op & 1))
                self._cond.notify_all()
        with self._cond:
            if conn in self._clients:
                self._clients.remove(conn)
        conn.close()

    def _send_due(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._due:
                    self._cond.wait()
                    continue
                wait_s = self._due[0][0] - time.monotonic()
                if wait_s > _SPIN_S:
                    # Wake a little early (an earlier edge may be scheduled meanwhile), then
                    # spin: a thread's wake-up is late by ~0.1-0.5 ms, a spin by microseconds.
                    self._cond.wait(wait_s - _SPIN_S)
                    continue
                while time.monotonic() < self._due[0][0]:
                    pass
                batch = []
                while self._due and self._due[0][0] <= time.monotonic():
                    due, _, pin, level = heapq.heappop(self._due)
                    self.levels[pin] = level
                    batch.append((due, pin, level))
                out = b"".join(bytes((pin, level)) for _, pin, level in batch)
                sent_at = time.monotonic()
                for c in list(self._clients):
                    self._send(c, out)
                self.sent.extend((due, sent_at, pin, level) for due, pin, level in batch)
                self._cond.notify_all()

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
