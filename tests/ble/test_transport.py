"""The gateway's BLE transport (plain bleak) on the virtual radio, with CPython NUS nodes."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from streetsense.gateway.config import BleSection
from streetsense.gateway.registry import NodeInfo
from streetsense.gateway.transports.base import Link
from streetsense.gateway.transports.ble import START_STREAM, BleTransport, load_backends
from streetsense.hil.ble.bleak_backend import BumbleAdapter, bumble_backends, gateway_settings
from streetsense.hil.ble.radio import VirtualRadio, static_address
from tests.ble.ble_harness import NusNode

KEY = bytes(range(32))


def registry(*nodes: NodeInfo) -> Callable[[int], NodeInfo | None]:
    by_id = {node.id: node for node in nodes}
    return by_id.get


def node_info(node_id: int, kind: str = "air-quality", enabled: bool = True) -> NodeInfo:
    return NodeInfo(node_id, f"HN-{node_id:04d}", kind, KEY, link="ble", enabled=enabled)


class Recorder:
    """The layer above the transport: link states and bytes, as they come."""

    def __init__(self) -> None:
        self.up: dict[str, Link] = {}
        self.received: dict[str, bytearray] = {}
        self.changed = asyncio.Event()

    def on_bytes(self, link: Link, data: bytes) -> None:
        self.received.setdefault(link.name, bytearray()).extend(data)
        self.changed.set()

    def on_link_state(self, link: Link, up: bool) -> None:
        if up:
            self.up[link.name] = link
        else:
            self.up.pop(link.name, None)
        self.changed.set()

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def transport_running(transport: BleTransport) -> AsyncIterator[None]:
    """``transport.run()`` as a task for the body of the ``async with``."""
    task = asyncio.create_task(transport.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@asynccontextmanager
async def running(radio: VirtualRadio, recorder: Recorder,
                  lookup: Callable[[int], NodeInfo | None], **kwargs: object,
                  ) -> AsyncIterator[tuple[BleTransport, BumbleAdapter]]:  # fmt: skip
    adapter = BumbleAdapter(device=radio.host_device("gw", static_address(b"\xc0\0\0\0\0\1")))
    scanner, client = bumble_backends(adapter)
    transport = BleTransport(recorder, lookup, scanner_backend=scanner, client_backend=client,
                             rng=random.Random(1), on_close=adapter.close, **kwargs)  # type: ignore[arg-type]  # fmt: skip
    async with transport_running(transport):
        yield transport, adapter


@pytest.mark.parametrize("mtu", [23, 247])
async def test_registered_node_streams_both_ways(radio: VirtualRadio, mtu: int) -> None:
    """A registered node is connected; notifications come up, sends go down in MTU-3 pieces."""
    node = await NusNode(radio, 42, echo=True).start(mtu=mtu)
    recorder = Recorder()
    async with running(radio, recorder, registry(node_info(42))) as (transport, _):
        await recorder.until(lambda: "ble:HN-0042" in recorder.up)
        link = recorder.up["ble:HN-0042"]
        await recorder.until(lambda: bytes(node.written) == START_STREAM)
        frame = bytes(range(1, 256)) * 2 + b"\0"  # longer than one write at MTU 247
        writes = node.events.qsize()
        await link.send(frame)
        await recorder.until(lambda: bytes(recorder.received.get(link.name, b"")) == frame)
        assert node.events.qsize() - writes == -(-len(frame) // (mtu - 3))  # one IRQ per piece
        stats = transport.stats()[link.name]
        assert (stats["up"], stats["mtu"], stats["node"]) == (True, mtu, "HN-0042")
        assert stats["rssi"] == -50 and stats["bytes_out"] == len(frame)
        assert link.rssi == -50  # type: ignore[attr-defined]


async def test_unregistered_disabled_and_wrong_kind_nodes_are_ignored(radio: VirtualRadio) -> None:
    """Only an enabled registry node of the advertised kind is connected."""
    good = await NusNode(radio, 42).start()
    others = [await NusNode(radio, 99).start(),  # not in the registry
              await NusNode(radio, 43).start(),  # disabled
              await NusNode(radio, 44, "traffic").start()]  # registered as air-quality
    recorder = Recorder()
    lookup = registry(node_info(42), node_info(43, enabled=False), node_info(44))
    async with running(radio, recorder, lookup) as (transport, _):
        addresses = {node.address.to_string(False) for node in others}
        await recorder.until(lambda: "ble:HN-0042" in recorder.up)
        await recorder.until(lambda: addresses <= transport.ignored)
    assert all(not node.peripheral.connections and node.events.empty() for node in others)
    assert good.written == START_STREAM


async def test_max_connections_is_respected(radio: VirtualRadio) -> None:
    """With a limit of 2, a third node waits until a slot frees."""
    nodes = [await NusNode(radio, node_id).start() for node_id in (1, 2, 3)]
    recorder = Recorder()
    lookup = registry(*(node_info(node.node_id) for node in nodes))
    async with running(radio, recorder, lookup, max_connections=2):
        await recorder.until(lambda: len(recorder.up) == 2)
        waiting = next(n for n in nodes if f"ble:HN-{n.node_id:04d}" not in recorder.up)
        first = next(n for n in nodes if n is not waiting)
        radio.set_in_range(first.address, False)
        await recorder.until(lambda: f"ble:HN-{waiting.node_id:04d}" in recorder.up)
        assert len(recorder.up) == 2 and f"ble:HN-{first.node_id:04d}" not in recorder.up


async def test_lost_node_is_reconnected(radio: VirtualRadio) -> None:
    """A node that goes out of range comes back up when it advertises again."""
    node = await NusNode(radio, 42, echo=True).start()
    recorder = Recorder()
    async with running(radio, recorder, registry(node_info(42))) as (transport, _):
        await recorder.until(lambda: "ble:HN-0042" in recorder.up)
        radio.set_in_range(node.address, False)
        await recorder.until(lambda: not recorder.up)
        radio.set_in_range(node.address, True)
        await recorder.until(lambda: "ble:HN-0042" in recorder.up)
        await recorder.up["ble:HN-0042"].send(b"again\0")
        await recorder.until(lambda: recorder.received.get("ble:HN-0042", b"").endswith(b"again\0"))
        stats = transport.stats()["ble:HN-0042"]
        assert (stats["connects"], stats["losses"]) == (2, 1)


async def test_from_config_runs_on_a_bumble_transport(radio: VirtualRadio, tmp_path: Path) -> None:
    """`[ble] backend` naming the rig's provider, on an HCI-over-TCP controller: same code."""
    await NusNode(radio, 42).start()
    hci = await radio.serve_hci(static_address(b"\xc0\0\0\0\0\3"))
    section = BleSection(enabled=True, **gateway_settings(hci), max_connections=1)
    recorder = Recorder()
    transport = BleTransport.from_config(section, recorder, registry(node_info(42)))
    async with transport_running(transport):
        await recorder.until(lambda: "ble:HN-0042" in recorder.up)


def test_a_missing_backend_provider_is_named() -> None:
    """`[ble] backend` naming a module without that provider says so (no AttributeError)."""
    with pytest.raises(ValueError, match="bleak_backend has no provider 'Radio'"):
        load_backends("streetsense.hil.ble.bleak_backend:Radio", {})


async def test_scanning_rests_between_windows_and_resumes_on_a_loss(radio: VirtualRadio) -> None:
    """After its window the scanner rests (a new node waits); a lost link starts a scan."""
    first = await NusNode(radio, 42).start()
    recorder = Recorder()
    lookup = registry(node_info(42), node_info(43))
    async with running(radio, recorder, lookup, scan_window_s=0.2, scan_interval_s=60) as (
            _, adapter):  # fmt: skip
        await recorder.until(lambda: "ble:HN-0042" in recorder.up)
        await asyncio.wait_for(adapter.idle.wait(), 2)
        late = await NusNode(radio, 43).start()  # advertises while nobody scans
        radio.set_in_range(first.address, False)
        await recorder.until(lambda: "ble:HN-0043" in recorder.up)
        assert late.written == START_STREAM


async def test_adapter_is_passed_to_bleak(radio: VirtualRadio) -> None:
    """`adapter = "hci1"` reaches bleak's scanner and client as BlueZ's adapter argument."""
    await NusNode(radio, 42).start()
    adapter = BumbleAdapter(device=radio.host_device("gw", static_address(b"\xc0\0\0\0\0\1")))
    scanner, client = bumble_backends(adapter)
    seen: list[object] = []

    class Scanner(scanner):  # type: ignore[valid-type,misc]
        def __init__(self, *args: object, **kwargs: object) -> None:
            seen.append(kwargs.get("bluez"))
            super().__init__(*args, **kwargs)

    class Client(client):  # type: ignore[valid-type,misc]
        def __init__(self, *args: object, **kwargs: object) -> None:
            seen.append(kwargs.get("bluez"))
            super().__init__(*args, **kwargs)

    recorder = Recorder()
    transport = BleTransport(recorder, registry(node_info(42)), adapter="hci1",
                             scanner_backend=Scanner, client_backend=Client,
                             on_close=adapter.close)  # fmt: skip
    async with transport_running(transport):
        await recorder.until(lambda: "ble:HN-0042" in recorder.up)
    assert seen == [{"adapter": "hci1"}, {"adapter": "hci1"}]
