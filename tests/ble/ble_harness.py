"""Helpers of the BLE tests: CPython NUS nodes, bleak backends on a radio, MicroPython nodes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bleak import BleakScanner
from bleak.backends.device import BLEDevice

from streetsense.gateway.transports.ble import NUS_SERVICE, parse_advert
from streetsense.hil import micropython
from streetsense.hil.ble.bleak_backend import (
    BumbleAdapter,
    BumbleClient,
    BumbleScanner,
    bumble_backends,
)
from streetsense.hil.ble.nus import NUS_DEFINITION, node_advert
from streetsense.hil.ble.peripheral import (
    IRQ_CENTRAL_CONNECT,
    IRQ_CENTRAL_DISCONNECT,
    IRQ_GATTS_WRITE,
    Peripheral,
)
from streetsense.hil.ble.radio import VirtualRadio, static_address
from streetsense.hil.light_node import StopAndWaitNode
from streetsense.hil.node import BOARD_SHIM, FIRMWARE

MP_NODE = Path(__file__).with_name("mp_ble_node.py")
ADV_INTERVAL_US = 20_000  # fast advertising keeps reconnects quick in tests


class NusNode:
    """A CPython NUS peripheral on an in-process radio; echoes writes back when ``echo``."""

    def __init__(self, radio: VirtualRadio, node_id: int, kind: str = "air-quality",
                 *, echo: bool = False) -> None:  # fmt: skip
        self.address = static_address(b"\x24\x0a" + node_id.to_bytes(4, "big"))
        self.node_id, self.kind, self.echo = node_id, kind, echo
        self.events: asyncio.Queue[tuple[int, tuple[Any, ...], bytes | None]] = asyncio.Queue()
        self.written = bytearray()
        self.peripheral = Peripheral(radio.host_device(f"node-{node_id}", self.address),
                                     self._on_event)  # fmt: skip
        ((self.tx, self.rx),) = self.peripheral.register_services([NUS_DEFINITION])

    async def start(self, mtu: int = 247) -> NusNode:
        self.peripheral.set_mtu(mtu)
        await self.peripheral.power_on()
        await self.advertise()
        return self

    async def advertise(self) -> None:
        await self.peripheral.advertise(ADV_INTERVAL_US, node_advert(self.node_id, self.kind), b"")

    def _on_event(self, event: int, data: tuple[Any, ...], value: bytes | None) -> None:
        self.events.put_nowait((event, data, value))
        if event == IRQ_GATTS_WRITE and value is not None:
            self.written += value
            if self.echo and value.strip(b"\0"):
                asyncio.get_running_loop().create_task(self.send(value))
        elif event == 2:  # central gone: advertise again, as the firmware does
            asyncio.get_running_loop().create_task(self.advertise())

    async def send(self, data: bytes) -> None:
        """Notify ``data`` in MTU-3 pieces on every connection."""
        for handle, connection in list(self.peripheral.connections.items()):
            step = connection.att_mtu - 3
            for start in range(0, len(data), step):
                await self.peripheral.notify(handle, self.tx, data[start : start + step])

    async def wait_event(self, code: int, timeout: float = 5.0) -> tuple[Any, ...]:
        async with asyncio.timeout(timeout):
            while True:
                event, data, _ = await self.events.get()
                if event == code:
                    return data


def central(radio: VirtualRadio, mtu: int = 247) -> tuple[type[BumbleScanner], type[BumbleClient]]:
    """bleak backends on a new in-process central controller of ``radio``."""
    adapter = BumbleAdapter(device=radio.host_device("gateway", static_address(b"\xc0\0\0\0\0\1")),
                            mtu=mtu)  # fmt: skip
    return bumble_backends(adapter)


async def find_node(scanner: type[BumbleScanner], node_id: int, timeout: float = 5.0) -> BLEDevice:
    """The first advertiser of the NUS service that says it is ``node_id``."""

    def match(_device: BLEDevice, adv: Any) -> bool:
        advert = parse_advert(adv.manufacturer_data)
        return advert is not None and advert.node_id == node_id

    device = await BleakScanner.find_device_by_filter(
        match, timeout=timeout, service_uuids=[NUS_SERVICE], backend=scanner
    )
    assert device is not None, f"node {node_id} not found"
    return device


class MpNode:
    """A MicroPython process running tests/ble/mp_ble_node.py (a BleTransport); ``endpoint``
    is the peripheral host's ``host:port``."""

    def __init__(self, tmp_path: Path, endpoint: str, node_id: int, mtu: int) -> None:
        self.tmp_path, self.endpoint, self.node_id, self.mtu = tmp_path, endpoint, node_id, mtu
        self.unique_id = f"240ac4{node_id:06x}"
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: asyncio.Queue[str] = asyncio.Queue()

    async def start(self) -> MpNode:
        board = self.tmp_path / f"board-{self.node_id}.json"
        entries = {"ble": self.endpoint, "unique_id": self.unique_id}
        board.write_text(json.dumps(entries))
        lib = self.tmp_path / "lib"
        if not lib.exists():
            micropython.stage_protocol(lib)
        self.proc = await micropython.start(
            MP_NODE, BOARD_SHIM, FIRMWARE, lib, str(self.node_id), str(self.mtu), board=board,
            stdout=asyncio.subprocess.PIPE)
        assert await self.line() == "ready"
        return self

    async def line(self, timeout: float = 5.0) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            raw = await self.proc.stdout.readline()
        if not raw:
            raise RuntimeError(f"MicroPython node exited ({await self.proc.wait()})")
        return raw.decode().strip()

    async def counters(self) -> dict[str, int]:
        """The transport's counters printed after the next answered frame."""
        line = await self.line()
        assert line.startswith("counters "), line
        return dict(json.loads(line.split(" ", 1)[1].rsplit(" mtu ", 1)[0]))

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


StartNode = Callable[..., Awaitable[MpNode]]


class ProtocolNusNode(NusNode):
    """A NUS node speaking protocol v1 stop-and-wait (`StopAndWaitNode`: ``protocol.hello()``,
    ``protocol.data()``, ``protocol.acked``) that keeps advertising while connected, so that
    more than one gateway connects and hears it (overlapping range). ``protocol.acks``
    counts ACKs per connection handle: a standby gateway must send none."""

    def __init__(self, radio: VirtualRadio, node_id: int, key: bytes, *,
                 retry_s: float = 0.5) -> None:  # fmt: skip
        super().__init__(radio, node_id)
        self.protocol = StopAndWaitNode(node_id, key, transmit=self._transmit, retry_s=retry_s)
        self._timer: asyncio.Task[None] | None = None
        self.listeners: set[int] = set()  # connections whose gateway started the stream
        self._listeners_changed = asyncio.Event()

    async def start(self, mtu: int = 247) -> ProtocolNusNode:
        await super().start(mtu)
        self._timer = asyncio.get_running_loop().create_task(self.protocol.run())
        return self

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    async def wait_listeners(self, count: int, timeout: float = 30.0) -> None:
        """Until ``count`` gateways are connected and listening."""
        async with asyncio.timeout(timeout):
            while len(self.listeners) < count:
                self._listeners_changed.clear()
                await self._listeners_changed.wait()

    def _transmit(self, wire: bytes) -> None:
        asyncio.get_running_loop().create_task(self.send(wire))

    def _on_event(self, event: int, data: tuple[Any, ...], value: bytes | None) -> None:
        super()._on_event(event, data, value)
        if event == IRQ_CENTRAL_CONNECT:  # stay visible: another gateway may connect too
            asyncio.get_running_loop().create_task(self.advertise())
        elif event == IRQ_CENTRAL_DISCONNECT:
            self.listeners.discard(data[0])
            self.protocol.forget_link(data[0])
        elif event == IRQ_GATTS_WRITE and value is not None:
            self.listeners.add(data[0])
            self._listeners_changed.set()
            self.protocol.feed(value, data[0])
