"""An I2C bus in a socket: the emulated board's machine.I2C talks to sensor models through it.

Framing (one request, then one reply, on a TCP stream; integers big-endian):

    request:  op (1 byte: b"W" write, b"R" read, b"S" scan) | addr (1 byte, 7-bit)
              | length (u16) | payload (length bytes, for W only; for R, length is the
              number of bytes to read; for S, addr and length are 0)
    reply:    status (1 byte: 0 = ACK, else the errno the board raises as OSError)
              | length (u16) | payload (the bytes read; for S, one byte per present address)

An address with no device, or a device that NACKs, answers status ENODEV (19), which is what
MicroPython's ESP32 port raises for a NACK. `hil_tests/board/machine.py` is the client.
"""

from __future__ import annotations

import asyncio
import errno
import struct
from typing import Protocol, Self

_REQUEST = struct.Struct(">cBH")
_REPLY = struct.Struct(">BH")


class I2CDevice(Protocol):
    """What the bus needs of a device model."""

    def write(self, data: bytes) -> bool:
        """Bytes written to the device; False = NACK."""
        ...

    def read(self, n: int) -> bytes | None:
        """Read n bytes; None = NACK."""
        ...


class I2CBus:
    """Several devices by address, served to the board over TCP (127.0.0.1, a free port)."""

    def __init__(self, devices: dict[int, I2CDevice] | None = None) -> None:
        self.devices: dict[int, I2CDevice] = dict(devices or {})
        self.transactions = 0
        self._server: asyncio.Server | None = None
        self.address = ""  # "host:port", for the board file, once started

    def transfer(self, op: bytes, addr: int, payload: bytes, n: int) -> tuple[int, bytes]:
        """One transaction: (status, data). Pure: usable without the socket."""
        self.transactions += 1
        if op == b"S":
            present = sorted(a for a, d in self.devices.items() if d.write(b""))
            return 0, bytes(present)
        device = self.devices.get(addr)
        if device is None:
            return errno.ENODEV, b""
        if op == b"W":
            return (0, b"") if device.write(payload) else (errno.ENODEV, b"")
        if op == b"R":
            data = device.read(n)
            return (errno.ENODEV, b"") if data is None else (0, data[:n])
        return errno.EINVAL, b""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                op, addr, length = _REQUEST.unpack(await reader.readexactly(_REQUEST.size))
                payload = await reader.readexactly(length) if op == b"W" else b""
                status, data = self.transfer(op, addr, payload, length)
                writer.write(_REPLY.pack(status, len(data)) + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._server = await asyncio.start_server(self._serve, host, port)
        sock_host, sock_port = self._server.sockets[0].getsockname()[:2]
        self.address = f"{sock_host}:{sock_port}"
        return self.address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
