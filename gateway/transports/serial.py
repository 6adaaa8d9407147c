"""Serial transport on pyserial-asyncio-fast: many ports, each reopened when it comes back.

One task per port: open, read until the port fails (USB unplugged, PTY closed), report the
link down, then retry with capped, jittered backoff until the path opens again. No restart
of the gateway is needed. Every port keeps its own counters.

A port is opened exclusively: an advisory lock (pyserial's ``exclusive=True``, ``flock``)
that a second gateway meets whoever runs it, and ``TIOCEXCL``, which makes any other
program's ``open()`` of the tty fail (root excepted). Two readers would each get part of
the frames; a port in use is logged as an error saying so, and retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import random
import termios
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import serial
import serial_asyncio_fast

from .base import LinkCallbacks, Transport

__all__ = ["PortSpec", "SerialLink", "SerialTransport"]

log = logging.getLogger("streetsense.gateway.serial")

RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0


@dataclass(frozen=True)
class PortSpec:
    """One port to serve: device path, baud rate and the link name used in logs and metrics."""

    path: str
    baud: int = 115200
    name: str = ""

    @property
    def link_name(self) -> str:
        return self.name or self.path


@dataclass
class PortCounters:
    """What one port has done since the gateway started."""

    bytes_in: int = 0
    bytes_out: int = 0
    opens: int = 0
    open_failures: int = 0
    losses: int = 0
    up: bool = False
    last_error: str = ""
    since: float = field(default_factory=time.time)


class _PortProtocol(asyncio.Protocol):
    def __init__(self, link: SerialLink) -> None:
        self._link = link
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self._link.counters.bytes_in += len(data)
        self._link.callbacks.on_bytes(self._link, data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class SerialLink:
    """One serial port as a ``Link``."""

    def __init__(self, spec: PortSpec, callbacks: LinkCallbacks) -> None:
        self.spec = spec
        self.name = spec.link_name
        self.callbacks = callbacks
        self.counters = PortCounters()
        self._transport: asyncio.Transport | None = None

    async def send(self, data: bytes) -> None:
        """Queue ``data`` for the port; ``ConnectionError`` if the port is closed now."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionError(f"serial port {self.name} is not open")
        transport.write(data)
        self.counters.bytes_out += len(data)

    async def serve(self, rng: random.Random) -> None:
        """Keep the port open until cancelled: open, read until lost, back off, reopen."""
        delay_s = RETRY_MIN_S
        failing = False
        while True:
            try:
                transport, protocol = await serial_asyncio_fast.create_serial_connection(
                    asyncio.get_running_loop(),
                    lambda: _PortProtocol(self),
                    self.spec.path,
                    baudrate=self.spec.baud,
                    exclusive=True,
                )
            except (OSError, serial.SerialException) as exc:
                self.counters.open_failures += 1
                self.counters.last_error = str(exc)
                if not failing:
                    if _in_use(exc):
                        log.error("serial port %s (%s) is in use by another program (another "
                                  "gateway?): stop it or give this gateway another port; "
                                  "retrying meanwhile", self.name, self.spec.path)
                    else:
                        log.warning("serial port %s cannot be opened (%s); retrying",
                                    self.name, exc)
                    failing = True
                await asyncio.sleep(delay_s * (0.5 + rng.random()))
                delay_s = min(RETRY_MAX_S, delay_s * 2)
                continue
            assert isinstance(protocol, _PortProtocol)
            _forbid_other_opens(transport)
            failing = False
            delay_s = RETRY_MIN_S
            self._transport = transport
            self.counters.opens += 1
            self.counters.up = True
            self.counters.since = time.time()
            log.info("serial port %s open (%s at %d baud)", self.name, self.spec.path,
                     self.spec.baud)
            self.callbacks.on_link_state(self, True)
            try:
                error = await protocol.lost
            finally:
                self._transport = None
                self.counters.up = False
                self.counters.since = time.time()
                with contextlib.suppress(Exception):
                    transport.close()
            self.counters.losses += 1
            self.counters.last_error = str(error) if error else "closed"
            log.warning("serial port %s lost (%s); reopening when it is back",
                        self.name, self.counters.last_error)
            self.callbacks.on_link_state(self, False)


def _in_use(exc: BaseException) -> bool:
    """Whether opening failed because another process holds the port (lock or TIOCEXCL)."""
    return getattr(exc, "errno", None) in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY)


def _forbid_other_opens(transport: asyncio.BaseTransport) -> None:
    """TIOCEXCL on the open tty: further opens fail with EBUSY (not for root, which the
    lock covers); a port that is no tty (a test's FIFO) is left as it is."""
    port = getattr(transport, "serial", None)
    fd = getattr(port, "fd", None)
    if isinstance(fd, int):
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, termios.TIOCEXCL)


class SerialTransport(Transport):
    """Serves every configured port, each in its own named task."""

    def __init__(self, ports: Sequence[PortSpec], callbacks: LinkCallbacks, *,
                 seed: int | None = None) -> None:
        self.links = [SerialLink(spec, callbacks) for spec in ports]
        self._rng = random.Random(seed)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for link in self.links:
                group.create_task(link.serve(self._rng), name=f"serial:{link.name}")

    def stats(self) -> dict[str, dict[str, object]]:
        return {link.name: {"kind": "serial", "path": link.spec.path,
                            **vars(link.counters)} for link in self.links}
