"""firmware/ssnode/ble_link.py under real MicroPython, through the board's bluetooth shim."""

from __future__ import annotations

import asyncio
import errno
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from streetsense.gateway.transports.ble import NUS_RX, NUS_SERVICE, NUS_TX, NodeAdvert, parse_advert
from streetsense.hil import micropython
from streetsense.hil.ble.bleak_backend import BumbleAdapter, bumble_backends
from streetsense.hil.ble.nus import node_advert
from streetsense.hil.ble.rig import BleRig, board_address
from streetsense.hil.node import BOARD_SHIM
from streetsense.protocol import cobs
from tests.ble.ble_harness import MpNode, StartNode, find_node

pytestmark = pytest.mark.micropython


class Central:
    """A bleak client on the rig that sends COBS frames and collects notified chunks."""

    def __init__(self, client: BleakClient) -> None:
        self.client = client
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self.sizes: list[int] = []

    async def start(self) -> None:
        await self.client.start_notify(NUS_TX, self._on_notify)
        await self.client.write_gatt_char(NUS_RX, b"\0", response=True)  # start the stream

    def _on_notify(self, _characteristic: object, data: bytearray) -> None:
        self.sizes.append(len(data))
        self.chunks.put_nowait(bytes(data))

    async def exchange(self, frame: bytes) -> bytes:
        """Send ``frame``; the node's answer, decoded."""
        encoded = cobs.encode_delimited(frame)
        step = self.client.services.get_characteristic(NUS_RX).max_write_without_response_size  # type: ignore[union-attr]
        for start in range(0, len(encoded), step):
            await self.client.write_gatt_char(NUS_RX, encoded[start : start + step], response=True)
        answer = b""
        while not answer.endswith(b"\0"):
            answer += await asyncio.wait_for(self.chunks.get(), 5)
        return bytes(cobs.decode(answer[:-1]))


def backends(rig: BleRig, mtu: int) -> tuple[BumbleAdapter, type, type]:
    adapter = BumbleAdapter(transport=rig.central_transport(), mtu=mtu)
    scanner, client = bumble_backends(adapter)
    return adapter, scanner, client


@pytest.mark.parametrize("mtu", [23, 247])
async def test_node_exchanges_cobs_frames_at_mtu(rig: BleRig, mp_node: StartNode, mtu: int) -> None:
    """Frames of 1..500 bytes cross both ways; notifications are MTU-3 pieces, never more."""
    node = await mp_node(42, mtu=mtu)
    adapter, scanner, client_backend = backends(rig, 247)
    rng = random.Random(7)
    try:
        async with BleakClient(await find_node(scanner, 42), backend=client_backend) as client:
            assert client.mtu_size == mtu  # the node offers `mtu`, the central asks for 247
            central = Central(client)
            await central.start()
            for size in (1, 19, 20, 21, 244, 245, 500):
                frame = rng.randbytes(size)
                assert await central.exchange(frame) == frame[::-1]
                counters = await node.counters()
            assert max(central.sizes) == mtu - 3
            assert counters == {"connects": 1, "disconnects": 0, "rx_dropped": 0, "tx_cut": 0}
    finally:
        await adapter.close()


async def test_node_advertises_id_and_kind_as_specified(rig: BleRig, mp_node: StartNode) -> None:
    """The node's advertisement is SPEC §1.3's: NUS UUID, company 0xFFFF, id and kind."""
    node = await mp_node(4242)
    adapter, scanner, _ = backends(rig, 247)
    seen: asyncio.Queue[tuple[BLEDevice, AdvertisementData]] = asyncio.Queue()
    try:
        async with BleakScanner(lambda d, a: seen.put_nowait((d, a)), [NUS_SERVICE],
                                backend=scanner):  # fmt: skip
            device, adv = await asyncio.wait_for(seen.get(), 5)
    finally:
        await adapter.close()
    assert adv.platform_data[0].data_bytes == node_advert(4242, "air-quality")
    assert len(node_advert(4242, "air-quality")) == 31  # all a legacy advertisement holds
    assert parse_advert(adv.manufacturer_data) == NodeAdvert(4242, "air-quality")
    assert device.address == board_address(node.unique_id).to_string(False)


async def test_node_survives_disconnects(rig: BleRig, mp_node: StartNode) -> None:
    """Out of range and back: the node advertises again and the stream resumes on reconnect."""
    node = await mp_node(43)
    adapter, scanner, client_backend = backends(rig, 247)
    try:
        for round_ in range(2):
            gone = asyncio.Event()
            client = BleakClient(await find_node(scanner, 43), lambda _c, gone=gone: gone.set(),
                                 backend=client_backend)  # fmt: skip
            await client.connect()
            central = Central(client)
            await central.start()
            frame = b"round %d" % round_
            assert await central.exchange(frame) == frame[::-1]
            counters = await node.counters()
            assert (counters["connects"], counters["disconnects"]) == (round_ + 1, round_)
            rig.set_in_range(board_address(node.unique_id), False)
            await asyncio.wait_for(gone.wait(), 5)
            rig.set_in_range(board_address(node.unique_id), True)
    finally:
        await adapter.close()


async def test_power_cycled_node_comes_back_at_its_address(rig: BleRig, mp_node: StartNode) -> None:
    """A node killed mid-connection drops it; restarted, it is back at its address and works."""
    first = await mp_node(44)
    adapter, scanner, client_backend = backends(rig, 247)
    try:
        device = await find_node(scanner, 44)
        gone = asyncio.Event()
        client = BleakClient(device, lambda _c: gone.set(), backend=client_backend)
        await client.connect()
        await Central(client).start()
        await first.stop()  # power off
        await asyncio.wait_for(gone.wait(), 5)
        await mp_node(44)
        again = await find_node(scanner, 44)
        assert again.address == device.address
        async with BleakClient(again, backend=client_backend) as client:
            central = Central(client)
            await central.start()
            assert await central.exchange(b"back") == b"kcab"
    finally:
        await adapter.close()


async def test_shim_follows_micropython_buffer_and_error_rules(rig: BleRig, tmp_path: Path) -> None:
    """Shim: 20-byte values, append buffers cleared by reads, ENOTCONN, the board's address."""
    unique_id = "240ac4005e50"
    board = tmp_path / "board.json"
    board.write_text(json.dumps(rig.board_entries(unique_id)))
    proc = await micropython.start(Path(__file__).with_name("mp_ble_shim.py"), BOARD_SHIM,
                                   board=board, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None

    async def line() -> dict[str, Any]:
        result: dict[str, Any] = json.loads(await asyncio.wait_for(proc.stdout.readline(), 5))
        return result

    adapter, scanner, client_backend = backends(rig, 247)
    try:
        assert await line() == {"notify_errno": errno.ENOTCONN}
        hello = await line()
        address = board_address(unique_id).to_string(False)
        assert (hello["mac"], hello["addr_type"]) == (address.replace(":", "").lower(), 1)
        device = await BleakScanner.find_device_by_address(address, timeout=5, backend=scanner)
        assert device is not None
        async with BleakClient(device, backend=client_backend) as client:
            a = client.services.get_characteristic(hello["handles"][1])
            b = client.services.get_characteristic(hello["handles"][2])
            assert a is not None and b is not None
            assert (await line())["event"] == "connect"
            await client.write_gatt_char(a, b"0123456789abcdefghijKLMNOPQRST", response=True)
            assert await line() == {"a": "0123456789abcdefghij"}  # 20 bytes by default
            await client.write_gatt_char(b, b"xyz", response=True)
            await client.write_gatt_char(b, b"123", response=True)
            await client.write_gatt_char(a, b"B?", response=True)
            assert await line() == {"b": "xyz123"}  # appended
            await client.write_gatt_char(a, b"B?", response=True)
            assert await line() == {"b": ""}  # and cleared by the read
    finally:
        await adapter.close()
        proc.kill()
        await proc.wait()


async def test_radio_process_links_a_node_and_a_central(tmp_path: Path) -> None:
    """`python -m streetsense.hil.ble` serves boards and gateways of other processes."""
    radio = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streetsense.hil.ble", stdout=asyncio.subprocess.PIPE)
    node: MpNode | None = None
    try:
        assert radio.stdout is not None
        endpoints = json.loads(await asyncio.wait_for(radio.stdout.readline(), 10))
        node = await MpNode(tmp_path, endpoints["board"], 45, 247).start()
        adapter = BumbleAdapter(transport=endpoints["centrals"][0])
        scanner, client_backend = bumble_backends(adapter)
        try:
            async with BleakClient(await find_node(scanner, 45), backend=client_backend) as c:
                central = Central(c)
                await central.start()
                assert await central.exchange(b"across") == b"ssorca"
        finally:
            await adapter.close()
    finally:
        if node is not None:
            await node.stop()
        radio.terminate()
        assert await asyncio.wait_for(radio.wait(), 10) == 0
