"""The CPython side of the emulated board's ``bluetooth`` shim (hil_tests/board/bluetooth.py).

MicroPython cannot run bumble, so each emulated board opens a TCP connection here and gets
its own bumble peripheral (a ``Peripheral`` on a new controller of the ``VirtualRadio``).
The board's Bluetooth address is derived from its ``unique_id`` (``static_address``), so a
power-cycled node comes back with the same address. When the board's process dies the
socket closes and its controller leaves the radio: centrals see a supervision timeout.

Messages are JSON lines, described in the shim's docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from bumble import hci
from bumble.controller import Controller

from .peripheral import Peripheral
from .radio import VirtualRadio, static_address

__all__ = ["PeripheralHost"]

_EINVAL = 22
_EIO = 5

log = logging.getLogger(__name__)
Tap = Callable[[str, bytes], None]  # (direction "up" node->central or "down", bytes)


class _Board:
    """One connected board: its peripheral and the requests it sends."""

    def __init__(self, radio: VirtualRadio, writer: asyncio.StreamWriter,
                 taps: dict[hci.Address, Tap]) -> None:  # fmt: skip
        self.radio = radio
        self.writer = writer
        self.taps = taps
        self.address: hci.Address | None = None
        self.controller: Controller | None = None
        self.peripheral: Peripheral | None = None

    def _emit(self, event: int, args: tuple[Any, ...], value: bytes | None) -> None:
        wire_args = [a.hex() if isinstance(a, bytes) else a for a in args]
        message: dict[str, Any] = {"ev": event, "args": wire_args}
        if value is not None:
            message["value"] = value.hex()
            self._tap("down", value)
        self.writer.write(json.dumps(message).encode() + b"\n")

    def _tap(self, direction: str, data: bytes) -> None:
        tap = self.taps.get(self.address) if self.address is not None else None
        if tap is not None:
            tap(direction, data)

    def _need(self) -> Peripheral:
        if self.peripheral is None:
            raise OSError(_EINVAL, "BLE is not active")
        return self.peripheral

    async def handle(self, request: dict[str, Any]) -> Any:
        op = request["op"]
        if op == "active":
            return await self._active(request)
        peripheral = self._need()
        if op == "notify":
            data = bytes.fromhex(request["data"])
            self._tap("up", data)  # what the node put on its link, delivered or not
            await peripheral.notify(request["conn"], request["handle"], data)
        elif op == "write":
            peripheral.write(request["handle"], bytes.fromhex(request["data"]))
        elif op == "config":
            if "mtu" in request:
                peripheral.set_mtu(request["mtu"])
        elif op == "register":
            return peripheral.register_services(
                [(uuid, [(c[0], c[1]) for c in chars]) for uuid, chars in request["services"]]
            )
        elif op == "advertise":
            adv, resp = request.get("adv_data"), request.get("resp_data")
            await peripheral.advertise(
                request["interval_us"],
                None if adv is None else bytes.fromhex(adv),
                None if resp is None else bytes.fromhex(resp),
                request.get("connectable", True),
            )
        elif op == "disconnect":
            return await peripheral.disconnect(request["conn"])
        else:
            raise OSError(_EINVAL, f"unknown op {op}")
        return None

    async def _active(self, request: dict[str, Any]) -> Any:
        if not request["active"]:
            self.close()
            return None
        if self.peripheral is None:
            if request.get("unique_id"):
                self.address = static_address(bytes.fromhex(request["unique_id"]))
            if self.address is None:
                raise OSError(_EINVAL, "no unique_id for the board's address")
            device = self.radio.host_device(request.get("gap_name") or "node", self.address)
            self.controller = self.radio.controllers[self.address]
            self.peripheral = Peripheral(device, self._emit)
            self.peripheral.set_mtu(request.get("mtu", self.peripheral.mtu))
            await self.peripheral.power_on()
        assert self.address is not None
        return bytes(reversed(bytes(self.address))).hex()

    def close(self) -> None:
        if self.controller is not None:
            self.radio.remove_controller(self.controller)
        self.controller = None
        self.peripheral = None


class PeripheralHost:
    """A TCP server for emulated boards; ``endpoint`` is the board JSON's ``"ble"`` value.

    ``taps[address]`` (optional) gets every chunk a board notifies ("up") and every write it
    receives ("down"), on the radio's loop: the BLE counterpart of a tapped serial link.
    """

    def __init__(self, radio: VirtualRadio) -> None:
        self.radio = radio
        self.endpoint = ""
        self.taps: dict[hci.Address, Tap] = {}
        self._server: asyncio.Server | None = None
        self._boards: set[_Board] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.endpoint = f"127.0.0.1:{port}"
        return self.endpoint

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        board = _Board(self.radio, writer, self.taps)
        self._boards.add(board)
        try:
            while line := await reader.readline():
                request = json.loads(line)
                try:
                    reply: dict[str, Any] = {"ok": await board.handle(request)}
                except OSError as error:
                    reply = {"err": error.errno or _EINVAL}
                except Exception as error:  # bumble's own errors: an EIO, as
                    # the ESP32's stack reports a failed HCI command, not a lost host link
                    log.warning("board request %s failed: %r", request.get("op"), error)
                    reply = {"err": _EIO}
                if "id" in request:
                    reply["id"] = request["id"]
                    writer.write(json.dumps(reply).encode() + b"\n")
        except ConnectionError:
            pass
        finally:
            board.close()
            self._boards.discard(board)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for board in list(self._boards):
                board.close()
                board.writer.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
