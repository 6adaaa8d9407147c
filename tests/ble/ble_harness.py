"""Helpers of the BLE tests: CPython NUS nodes, bleak backends on a radio, MicroPython nodes."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bleak import BleakScanner
from bleak.backends.device import BLEDevice

from streetsense.gateway.transports.ble import NUS_SERVICE, parse_advert
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
from streetsense.hil.micropython import find_micropython, stage_protocol
from streetsense.hil.node import BOARD_SHIM, FIRMWARE
from streetsense.protocol import FLAG_ACK_REQ, Deframer, Frame, ProtocolError, parse_frame
from streetsense.protocol.messages import ACK, DATA, HELLO

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
            stage_protocol(lib)
        env = dict(os.environ, STREETSENSE_BOARD=str(board))
        self.proc = await asyncio.create_subprocess_exec(
            find_micropython() or "micropython", str(MP_NODE), str(BOARD_SHIM),
            str(FIRMWARE), str(lib), str(self.node_id), str(self.mtu),
            stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
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
    """A NUS node speaking protocol v1 stop-and-wait (signed frames, ACK requested, resent
    every ``retry_s`` until ACKed) that keeps advertising while connected, so that more
    than one gateway connects and hears it (overlapping range). ACKs are counted per
    connection: a standby gateway must send none."""

    def __init__(self, radio: VirtualRadio, node_id: int, key: bytes, *,
                 retry_s: float = 0.5) -> None:  # fmt: skip
        super().__init__(radio, node_id)
        self.key, self.boot, self.seq, self.retry_s = key, 1, 0, retry_s
        self.queue: dict[int, bytes] = {}  # seq -> wire bytes, until ACKed
        self.acks: dict[int, int] = {}  # connection handle -> ACK frames from it
        self._deframers: dict[int, Deframer] = {}
        self.acked = asyncio.Event()
        self.acked.set()
        self._progress = asyncio.Event()
        self._resender: asyncio.Task[None] | None = None
        self.listeners: set[int] = set()  # connections whose gateway started the stream
        self._listeners_changed = asyncio.Event()

    async def wait_listeners(self, count: int, timeout: float = 30.0) -> None:
        """Until ``count`` gateways are connected and listening."""
        async with asyncio.timeout(timeout):
            while len(self.listeners) < count:
                self._listeners_changed.clear()
                await self._listeners_changed.wait()

    async def start(self, mtu: int = 247) -> ProtocolNusNode:
        await super().start(mtu)
        self._resender = asyncio.get_running_loop().create_task(self._resend())
        return self

    def _on_event(self, event: int, data: tuple[Any, ...], value: bytes | None) -> None:
        super()._on_event(event, data, value)
        if event == IRQ_CENTRAL_CONNECT:  # stay visible: another gateway may connect too
            asyncio.get_running_loop().create_task(self.advertise())
        elif event == IRQ_CENTRAL_DISCONNECT:
            self.listeners.discard(data[0])
            self._deframers.pop(data[0], None)
        elif event == IRQ_GATTS_WRITE and value is not None:
            self.listeners.add(data[0])
            self._listeners_changed.set()
            deframer = self._deframers.setdefault(data[0], Deframer())
            for item in deframer.feed(value):
                if isinstance(item, ProtocolError):
                    continue
                frame = parse_frame(bytes(item), self.key)
                if frame.type == ACK and frame.body[1] == self.boot:
                    self.acks[data[0]] = self.acks.get(data[0], 0) + 1
                    self._acked(frame.body[2])

    def _acked(self, seq: int) -> None:
        done = [s for s in self.queue if s <= seq]
        for s in done:
            del self.queue[s]
        if done:
            self._progress.set()
            if self.queue:
                asyncio.get_running_loop().create_task(self.send(next(iter(self.queue.values()))))
            else:
                self.acked.set()

    def frame(self, mtype: int, body: dict[int, Any]) -> int:
        """Queue a new frame (sent now if nothing is outstanding); its seq."""
        seq, self.seq = self.seq, self.seq + 1
        self.queue[seq] = Frame(mtype, self.node_id, self.boot, seq, body,
                                FLAG_ACK_REQ).encode(self.key)  # fmt: skip
        self.acked.clear()
        if len(self.queue) == 1:
            asyncio.get_running_loop().create_task(self.send(self.queue[seq]))
        return seq

    def hello(self) -> int:
        return self.frame(HELLO, {1: "streetsense-node", 2: "0.1.0", 3: [1, 0],
                                  4: ["pms5003"], 5: 1, 6: self.boot, 8: 1500})  # fmt: skip

    def data(self, pm2_5_tenths: int) -> int:
        return self.frame(DATA, {1: 1_796_000_000 + self.seq, 2: 0, 3: 10,
                                 4: [[2, -1, pm2_5_tenths]]})  # fmt: skip

    async def _resend(self) -> None:
        while True:
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), self.retry_s)
            except TimeoutError:
                if self.queue:
                    await self.send(next(iter(self.queue.values())))

    async def stop(self) -> None:
        if self._resender is not None:
            self._resender.cancel()
