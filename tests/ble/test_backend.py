"""The bleak backend over bumble: plain BleakScanner/BleakClient on the virtual radio."""

from __future__ import annotations

import asyncio

import pytest
from bleak import BleakClient
from bleak.exc import BleakError

from streetsense.gateway.transports.ble import NUS_RX, NUS_SERVICE, NUS_TX, NodeAdvert, parse_advert
from streetsense.hil.ble.bleak_backend import BumbleAdapter, bumble_backends, parse_ad
from streetsense.hil.ble.peripheral import (
    IRQ_CENTRAL_DISCONNECT,
    IRQ_GATTS_WRITE,
    IRQ_MTU_EXCHANGED,
)
from streetsense.hil.ble.radio import VirtualRadio, static_address
from tests.ble.ble_harness import NusNode, central, find_node


async def test_scan_reports_nus_advert_with_node_id_kind_and_rssi(radio: VirtualRadio) -> None:
    """A scan with the NUS filter sees a node's service UUID, id, kind and an RSSI."""
    node = await NusNode(radio, 42, "traffic").start()
    scanner, _ = central(radio)
    seen: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
    from bleak import BleakScanner

    async with BleakScanner(lambda d, a: seen.put_nowait((d.address, a)), [NUS_SERVICE],
                            backend=scanner):  # fmt: skip
        address, adv = await asyncio.wait_for(seen.get(), 5)
    assert NUS_SERVICE in adv.service_uuids  # type: ignore[attr-defined]
    assert parse_advert(adv.manufacturer_data) == NodeAdvert(42, "traffic")  # type: ignore[attr-defined]
    assert adv.rssi < 0  # type: ignore[attr-defined]
    assert address == node.address.to_string(False)


@pytest.mark.parametrize("mtu", [23, 247])
async def test_notifications_and_writes_both_ways_at_mtu(radio: VirtualRadio, mtu: int) -> None:
    """Writes reach the peripheral and notifications the client; MTU-3 is the payload limit."""
    node = await NusNode(radio, 7).start()
    scanner, client_backend = central(radio, mtu=mtu)
    device = await find_node(scanner, 7)
    got: asyncio.Queue[bytes] = asyncio.Queue()
    async with BleakClient(device, backend=client_backend) as client:
        assert client.mtu_size == mtu
        rx = client.services.get_characteristic(NUS_RX)
        assert rx is not None and rx.max_write_without_response_size == mtu - 3
        assert {"write", "write-without-response"} <= set(rx.properties)
        await client.start_notify(NUS_TX, lambda _c, data: got.put_nowait(bytes(data)))
        await client.write_gatt_char(NUS_RX, b"with response", response=True)
        await client.write_gatt_char(NUS_RX, b"without", response=False)
        await node.wait_event(IRQ_GATTS_WRITE)
        await node.wait_event(IRQ_GATTS_WRITE)
        assert bytes(node.written) == b"with responsewithout"
        payload = bytes(range(256)) * 2
        await node.send(payload)
        received = b""
        while len(received) < len(payload):
            chunk = await asyncio.wait_for(got.get(), 5)
            assert len(chunk) <= mtu - 3
            received += chunk
        assert received == payload
        handle = next(iter(node.peripheral.connections))
        await node.peripheral.notify(handle, node.tx, b"x" * 300)  # the stack truncates
        assert await asyncio.wait_for(got.get(), 5) == b"x" * (mtu - 3)


async def test_mtu_exchange_reported_to_the_peripheral(radio: VirtualRadio) -> None:
    """The central's MTU request gives min(central, peripheral) and an MTU IRQ on the node."""
    node = await NusNode(radio, 8).start(mtu=185)
    scanner, client_backend = central(radio, mtu=247)
    async with BleakClient(await find_node(scanner, 8), backend=client_backend) as client:
        assert client.mtu_size == 185
        assert (await node.wait_event(IRQ_MTU_EXCHANGED))[1] == 185


async def test_out_of_range_disconnects_both_sides(radio: VirtualRadio) -> None:
    """A node out of range drops the connection: bleak's disconnected callback, the node's IRQ."""
    node = await NusNode(radio, 9).start()
    scanner, client_backend = central(radio)
    gone = asyncio.Event()
    client = BleakClient(await find_node(scanner, 9), lambda _c: gone.set(), backend=client_backend)
    await client.connect()
    radio.set_in_range(node.address, False)
    await asyncio.wait_for(gone.wait(), 5)
    assert not client.is_connected
    await node.wait_event(IRQ_CENTRAL_DISCONNECT)
    radio.set_in_range(node.address, True)
    await client.connect()  # the node advertises again and is back in range
    assert client.is_connected
    await client.disconnect()


async def test_central_over_hci_tcp(radio: VirtualRadio) -> None:
    """A central whose controller is reached as HCI over TCP (bumble transport spec) works."""
    node = await NusNode(radio, 10, echo=True).start()
    adapter = BumbleAdapter(transport=await radio.serve_hci(static_address(b"\xc0\0\0\0\0\2")))
    scanner, client_backend = bumble_backends(adapter)
    got: asyncio.Queue[bytes] = asyncio.Queue()
    try:
        async with BleakClient(await find_node(scanner, 10), backend=client_backend) as client:
            await client.start_notify(NUS_TX, lambda _c, data: got.put_nowait(bytes(data)))
            await client.write_gatt_char(NUS_RX, b"ping", response=True)
            assert await asyncio.wait_for(got.get(), 5) == b"ping"
        assert node.written == b"ping"
    finally:
        await adapter.close()


def test_parse_ad_reads_the_common_ad_types() -> None:
    """16- and 128-bit UUID lists, names, TX power, service and manufacturer data are decoded."""
    data = (
        b"\x03\x03\x0f\x18"  # 16-bit UUID list: battery service
        + b"\x05\x09node"  # complete local name
        + b"\x02\x0a\xf4"  # TX power -12 dBm
        + b"\x05\x16\x0f\x18\x64\x00"  # service data for 0x180F
        + b"\x05\xff\x59\x00\x01\x02"  # manufacturer 0x0059 (Nordic)
        + b"\x00"  # a zero length ends the data
    )
    adv = parse_ad(data, -60)
    assert adv.service_uuids == ["0000180f-0000-1000-8000-00805f9b34fb"]
    assert adv.local_name == "node"
    assert adv.tx_power == -12
    assert adv.service_data == {"0000180f-0000-1000-8000-00805f9b34fb": b"\x64\x00"}
    assert adv.manufacturer_data == {0x0059: b"\x01\x02"}
    assert adv.rssi == -60


async def test_connecting_to_a_silent_node_fails_and_frees_the_adapter(radio: VirtualRadio) -> None:
    """A connect to a node gone out of range times out; the next connect to another works."""
    gone = await NusNode(radio, 11).start()
    there = await NusNode(radio, 12).start()
    scanner, client_backend = central(radio)
    device = await find_node(scanner, 11)
    radio.set_in_range(gone.address, False)
    with pytest.raises(BleakError):
        await BleakClient(device, timeout=0.3, backend=client_backend).connect()
    async with BleakClient(await find_node(scanner, 12), backend=client_backend) as client:
        assert client.is_connected
    assert not gone.peripheral.connections and there.events.qsize() > 0
