"""Drivers for a real board on the bench (``--hil-board serial:/dev/ttyUSB0,...``).

The gateway does not open the board's port itself: a `SerialRelay` does, and offers the
gateway a PTY instead, so the rig sits in the cable. It taps every byte into the link's
FrameLog and injects the same seeded faults as the remote bench (`LinkFaults`: drop whole
frames, flip bits, delay, unplug). Power is a relay on a GPIO (the gateway's `BenchPower`,
gpiozero), when wired; the console is the board's USB serial (UART0), when given. There
is no environment control: tests that need one are skipped.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import serial

from streetsense.gateway.bench.config import RelayLine
from streetsense.gateway.bench.relays import BenchPower
from streetsense.gateway.bench.server import LinkFaults

from ..artefacts import Artefacts, FrameLog
from ..lifecycle import SelectThread
from ..pty import PtyPair
from .drivers import Board
from .emulated import node_name
from .resources import SerialBoard

__all__ = ["SerialRelay", "serial_board"]


class SerialRelay:
    """The board's serial port on one side, a PTY for the gateway (``port``) on the other."""

    def __init__(self, device: str, baud: int, seed: int) -> None:
        self._serial = serial.Serial(device, baud, timeout=0)
        self._pty = PtyPair(nonblocking=True)
        self._master, self.port = self._pty.master, self._pty.path
        self.faults = LinkFaults(random.Random(seed))
        self.frames = FrameLog()
        self._lock = threading.Lock()
        self._pending: collections.deque[tuple[float, str, bytes]] = collections.deque()
        self._thread = SelectThread(self._run, "serial-relay")
        self._thread.start()

    def _run(self) -> None:
        board_fd = self._serial.fileno()
        while True:
            with self._lock:
                timeout = (max(0.0, self._pending[0][0] - time.monotonic())
                           if self._pending else None)
            readable = self._thread.wait([board_fd, self._master], timeout)
            if readable is None:
                return
            for fd in readable:
                direction = "up" if fd == board_fd else "down"
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                self.frames.feed(direction, data)
                with self._lock:
                    data = self.faults.apply(direction, data)
                    if data:
                        # A constant delay keeps the order: a FIFO of due times suffices.
                        due = time.monotonic() + self.faults.delay_ms / 1000
                        self._pending.append((due, direction, data))
            with self._lock:
                while self._pending and self._pending[0][0] <= time.monotonic():
                    _, direction, data = self._pending.popleft()
                    self._write(direction, data)

    def _write(self, direction: str, data: bytes) -> None:
        try:
            if direction == "up":
                os.write(self._master, data)
            else:
                self._serial.write(data)
        except (BlockingIOError, OSError, serial.SerialException):
            self.faults.counters["overflow_bytes"] += len(data)

    def close(self) -> None:
        self._thread.close()
        self._serial.close()
        self._pty.close()


class RelayLink:
    """The link driver over a `SerialRelay`."""

    def __init__(self, relay: SerialRelay) -> None:
        self._relay = relay
        self.frames = relay.frames

    async def set_faults(self, *, drop: float = 0.0, ber: float = 0.0,
                         delay_ms: int = 0) -> None:
        faults = self._relay.faults
        faults.drop, faults.ber, faults.delay_ms = drop, ber, delay_ms

    async def unplug(self) -> None:
        self._relay.faults.plugged = False

    async def replug(self) -> None:
        self._relay.faults.plugged = True

    async def counters(self) -> dict[str, int]:
        return dict(self._relay.faults.counters)


class RelayPower:
    """The board's supply through the bench's power relay (`BenchPower`, gpiozero)."""

    def __init__(self, pin: int) -> None:
        self._lines = BenchPower({"power": RelayLine(pin)})

    async def on(self) -> None:
        self._lines.on()

    async def off(self) -> None:
        self._lines.off()

    async def cycle(self) -> None:
        await self._lines.cycle()

    def close(self) -> None:
        self._lines.close()


class SerialConsole:
    """The board's USB console, read line by line in a thread."""

    def __init__(self, device: str) -> None:
        self._serial = serial.Serial(device, 115200, timeout=0.2)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._open = True
        self._thread = threading.Thread(target=self._read, name="serial-console", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while self._open:
            try:
                raw = self._serial.readline()
            except serial.SerialException:
                return
            if raw:
                with self._changed:
                    self.lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                    self._changed.notify_all()

    async def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    async def wait_for(self, pattern: str, *, timeout: float) -> str:
        return await asyncio.to_thread(self._wait_for, re.compile(pattern), timeout)

    def _wait_for(self, regex: re.Pattern[str], timeout: float) -> str:
        with self._changed:
            found = self._changed.wait_for(
                lambda: next((line for line in self.lines if regex.search(line)), None),
                timeout)
        if found is None:
            raise AssertionError(f"console: no line matching {regex.pattern!r} in {timeout} s")
        return found

    def close(self) -> None:
        self._open = False
        self._thread.join(5)
        self._serial.close()


@contextmanager
def serial_board(resource: SerialBoard, *, settings: dict[str, Any], artefacts: Artefacts,
                 seed: int) -> Iterator[Board]:
    """The bench board, with the relay in its cable and the drivers its wiring allows;
    ``settings`` are left for the strategy to send once the node is online."""
    relay = SerialRelay(resource.port, resource.baud, seed)
    console = SerialConsole(resource.console_port) if resource.console_port else None
    power = RelayPower(resource.power_pin) if resource.power_pin is not None else None
    try:
        artefacts.add_text("link-frames.txt", relay.frames.render)
        if console is not None:
            artefacts.add_text("console.txt", lambda: "\n".join(console.lines) + "\n")
        yield Board(name=node_name(resource.node_id), node_id=resource.node_id,
                    key=bytes.fromhex(resource.key_hex), kind=resource.kind, port=relay.port,
                    capabilities=resource.capabilities,
                    power=power, console=console, link=RelayLink(relay),
                    settings=dict(settings))
    finally:
        if power is not None:
            power.close()
        if console is not None:
            console.close()
        relay.close()
