"""Serial ports are the gateway's alone: a second opener is refused with a clear error."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from streetsense.gateway.transports.base import Link
from streetsense.gateway.transports.serial import PortSpec, SerialTransport
from streetsense.hil.pty import PtyPort
from tests.support.gateway_rig import LogWaiter


class Recorder:
    """LinkCallbacks that count bytes and remember whether the link was ever up."""

    def __init__(self) -> None:
        self.received = 0
        self.ever_up = False
        self.up = asyncio.Event()
        self.changed = asyncio.Condition()

    def on_bytes(self, link: Link, data: bytes) -> None:
        self.received += len(data)
        asyncio.get_running_loop().create_task(self._notify())

    def on_link_state(self, link: Link, up: bool) -> None:
        self.ever_up = self.ever_up or up
        if up:
            self.up.set()

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait_bytes(self, count: int) -> None:
        async with asyncio.timeout(5), self.changed:
            await self.changed.wait_for(lambda: self.received >= count)


async def test_serial_a_second_gateway_on_the_same_port_gets_a_clear_error(
        tmp_path: Path) -> None:
    """While one gateway holds a PTY, a second one opening the same path is refused (an
    exclusive lock) and says the port is in use and what to do; every byte reaches the first."""
    port = PtyPort(tmp_path / "tty0")
    first, second = Recorder(), Recorder()
    holder = SerialTransport([PortSpec(str(port.path), name="pole-12")], first)
    intruder = SerialTransport([PortSpec(str(port.path), name="pole-12-again")], second)
    tasks = [asyncio.create_task(holder.run())]
    try:
        async with asyncio.timeout(5):
            await first.up.wait()
        async with LogWaiter("is in use by another program") as seen:
            tasks.append(asyncio.create_task(intruder.run()))
            await seen.wait(timeout=5)
        os.write(port.master, b"\x00" * 100)
        await first.wait_bytes(100)
        assert not second.ever_up and second.received == 0
        (line,) = seen.records
        assert "pole-12-again" in line and str(port.path) in line and "stop" in line
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        port.close()
