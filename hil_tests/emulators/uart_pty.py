"""A UART sensor model on a PTY: the emulated board opens `slave_path` as its machine.UART.

The master end is raw and non-blocking; bytes from the board go to `model.feed()` and its
replies go straight back; the model's `tick()` output (a frame, when the sensor is awake and
streaming) is written every `model.tick_delay_s()` (its cadence on its own clock). A write the
PTY cannot take is dropped and counted, as a UART with a full receive buffer would lose it.

Closing a PTY master discards what the slave has not read yet: close only once the board has
finished reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Protocol, Self

from ..pty import PtyPair


class UartModel(Protocol):
    def tick_delay_s(self) -> float:
        """Real seconds until the next tick() is due."""
        ...

    def feed(self, data: bytes) -> bytes:
        """Bytes from the host; returns the immediate reply."""
        ...

    def tick(self) -> bytes:
        """What the sensor sends on its own at this cadence step (may be empty)."""
        ...


class UartPty:
    def __init__(self, model: UartModel) -> None:
        self.model = model
        self.slave_path = ""
        self.dropped = 0
        self.received = bytearray()  # everything the board wrote
        self._master = -1
        self._pty: PtyPair | None = None
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> str:
        self._pty = PtyPair(nonblocking=True)  # its slave fd stays open: no EIO between
        self._master, self.slave_path = self._pty.master, self._pty.path  # board sessions
        asyncio.get_running_loop().add_reader(self._master, self._on_readable)
        self._ticker = asyncio.create_task(self._tick(), name=f"uart-pty {self.slave_path}")
        return self.slave_path

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return
        self.received += data
        reply = self.model.feed(data)
        if reply:
            self.send(reply)

    def send(self, data: bytes) -> None:
        """Write bytes towards the board (also usable by tests to inject garbage)."""
        try:
            n = os.write(self._master, data)
        except BlockingIOError:
            n = 0
        self.dropped += len(data) - n

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.model.tick_delay_s())  # the sensor's own cadence
            frame = self.model.tick()
            if frame:
                self.send(frame)

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._pty is not None:
            asyncio.get_running_loop().remove_reader(self._pty.master)
            self._pty.close()
            self._pty, self._master = None, -1

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
