"""BLE transport on bleak: Nordic UART Service nodes that the registry knows, one link each.

The scanner looks for the NUS service; a node's advertisement carries its node id and kind
(manufacturer data, company 0xFFFF, SPEC §1.3). The registry decides, not the address:
only an enabled node that it lists, of the advertised kind, is connected. A connection
subscribes to the TX characteristic, writes a lone 0x00 to RX (the node starts its stream
on the first write: SPEC §1.3), and reports chunks up as any byte stream (SPEC §1). A lost
connection is retried when the node advertises again, with capped, jittered backoff after
failed attempts; at most ``max_connections`` nodes are connected at once, the others wait
for a slot. Scanning runs in windows of ``scan_window_s`` every ``scan_interval_s``, and
at once after a link is lost. Per node: RSSI of the last advertisement and counters, in
``stats()``.

The bleak backend is injected (``scanner_backend``/``client_backend``, bleak's ``backend=``),
so tests run this same code on a virtual radio. ``from_config`` takes bleak's own backend
unless ``[ble] backend`` names a `BleakBackends` provider as "package.module:Name"; this
module knows bleak only, and the test rig supplies its provider that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError

from streetsense.protocol import advert

from .base import LinkCallbacks, Transport

if TYPE_CHECKING:
    from ..config import BleSection
    from ..registry import NodeInfo

__all__ = [
    "NUS_RX",
    "NUS_SERVICE",
    "NUS_TX",
    "BleLink",
    "BleTransport",
    "BleakBackends",
    "NodeAdvert",
    "load_backends",
    "parse_advert",
]

log = logging.getLogger("streetsense.gateway.ble")

# The protocol's UUIDs as bleak spells them (lower case).
NUS_SERVICE = advert.NUS_SERVICE.lower()
NUS_RX = advert.NUS_RX.lower()  # gateway -> node (write)
NUS_TX = advert.NUS_TX.lower()  # node -> gateway (notify)
START_STREAM = b"\x00"  # a lone delimiter: harmless to the deframer, starts the node's stream

RETRY_MIN_S = 0.2
RETRY_MAX_S = 30.0
CONNECT_TIMEOUT_S = 10.0
SCAN_WINDOW_S = 5.0  # each scan lasts this long (nodes advertise every 100 ms)
WRITE_TIMEOUT_S = 5.0

LookupNode = Callable[[int], "NodeInfo | None"]


class BleakBackends(Protocol):
    """What a ``[ble] backend`` provider gives: bleak ``backend=`` classes for the scanner and
    the clients, on one radio, and ``close()``, awaited when the transport stops."""

    scanner: type[BaseBleakScanner]
    client: type[BaseBleakClient]

    async def close(self) -> None: ...


def load_backends(spec: str, options: Mapping[str, str]) -> BleakBackends:
    """Call the provider that ``spec`` ("package.module:Name") names with ``options``."""
    module_name, _, name = spec.partition(":")
    provider = getattr(importlib.import_module(module_name), name, None)
    if not callable(provider):
        raise ValueError(f"[ble] backend {spec!r}: {module_name} has no provider {name!r}")
    backends: BleakBackends = provider(**options)
    return backends


@dataclass(frozen=True)
class NodeAdvert:
    """What a StreetSense node says about itself in its advertisement."""

    node_id: int
    kind: str | None  # None: unknown (a node in factory state)


def parse_advert(manufacturer_data: Mapping[int, bytes]) -> NodeAdvert | None:
    """The node id and kind from manufacturer data; None if it is not a StreetSense node."""
    payload = manufacturer_data.get(advert.COMPANY_ID)
    parsed = None if payload is None else advert.parse_advert_payload(payload)
    return None if parsed is None else NodeAdvert(*parsed)


@dataclass
class BleCounters:
    """One node's BLE link since the gateway started."""

    node: str = ""
    address: str = ""
    rssi: int | None = None
    up: bool = False
    mtu: int = 0
    connects: int = 0
    connect_failures: int = 0
    losses: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    last_error: str = ""
    since: float = field(default_factory=time.time)


class BleLink:
    """One connected node as a ``Link``: ``send`` writes RX in MTU-sized pieces."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.counters = BleCounters()
        self.client: BleakClient | None = None
        self._send_lock = asyncio.Lock()  # two frames' pieces must not interleave

    @property
    def rssi(self) -> int | None:
        """dBm of the node's last advertisement (for the session's per-node metrics)."""
        return self.counters.rssi

    async def send(self, data: bytes) -> None:
        """Write ``data`` to the node; ``ConnectionError`` if it is not connected."""
        async with self._send_lock:
            client = self.client
            if client is None or not client.is_connected:
                raise ConnectionError(f"BLE link {self.name} is not connected")
            rx = client.services.get_characteristic(NUS_RX)
            if rx is None:
                raise ConnectionError(f"{self.name} has no NUS RX characteristic")
            step = rx.max_write_without_response_size
            try:
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    for start in range(0, len(data), step):
                        await client.write_gatt_char(rx, data[start : start + step], response=True)
            except (BleakError, TimeoutError, EOFError) as exc:
                raise ConnectionError(f"BLE write to {self.name} failed: {exc}") from exc
            self.counters.bytes_out += len(data)


@dataclass
class _Node:
    link: BleLink
    info: NodeInfo
    device: BLEDevice | None = None
    seen: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class BleTransport(Transport):
    """Scan, connect to registered nodes (at most ``max_connections``), keep them connected."""

    def __init__(
        self,
        callbacks: LinkCallbacks,
        lookup: LookupNode,
        *,
        max_connections: int = 4,
        adapter: str | None = None,
        scanner_backend: type[BaseBleakScanner] | None = None,
        client_backend: type[BaseBleakClient] | None = None,
        scan_interval_s: float = 30.0,
        scan_window_s: float = SCAN_WINDOW_S,
        rng: random.Random | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.callbacks = callbacks
        self.lookup = lookup
        self.max_connections = max_connections
        self.adapter = adapter
        self.scanner_backend = scanner_backend
        self.client_backend = client_backend
        self._rng = rng or random.Random()
        self._on_close = on_close
        self.scan_interval_s = scan_interval_s
        self.scan_window_s = scan_window_s
        self._slots = asyncio.Semaphore(max_connections)
        self._lost = asyncio.Event()  # a link went down or a connection failed: scan now
        self._nodes: dict[int, _Node] = {}
        self.ignored: set[str] = set()  # addresses seen and not connected: not (enabled) nodes
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_config(
        cls, section: BleSection, callbacks: LinkCallbacks, lookup: LookupNode
    ) -> BleTransport:
        """The transport the ``[ble]`` section describes."""
        backends = None
        if section.backend != "default":
            backends = load_backends(section.backend, section.backend_options)
        return cls(callbacks, lookup, max_connections=section.max_connections,
                   scan_interval_s=section.scan_interval_s, adapter=section.adapter,
                   scanner_backend=backends.scanner if backends else None,
                   client_backend=backends.client if backends else None,
                   on_close=backends.close if backends else None)  # fmt: skip

    def _platform_args(self) -> dict[str, Any]:
        return {"bluez": {"adapter": self.adapter}} if self.adapter else {}

    async def run(self) -> None:
        scanner = BleakScanner(
            self._on_advertisement, [NUS_SERVICE], backend=self.scanner_backend,
            **self._platform_args(),
        )  # fmt: skip
        log.info("BLE: looking for nodes (at most %d connected)", self.max_connections)
        try:
            while True:
                # Scan a window, then rest until the next interval, or until a link is lost
                # (that node's next advertisement is wanted now). Scanning takes radio time
                # from the connections, so it is not left on.
                self._lost.clear()
                async with scanner:
                    await asyncio.sleep(self.scan_window_s)  # the window itself
                rest_s = self.scan_interval_s - self.scan_window_s
                if rest_s > 0 and not self._lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(rest_s):
                            await self._lost.wait()
        finally:
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self._on_close is not None:
                await self._on_close()

    def stats(self) -> dict[str, dict[str, object]]:
        return {node.link.name: asdict(node.link.counters) for node in self._nodes.values()}

    def _on_advertisement(self, device: BLEDevice, adv: AdvertisementData) -> None:
        advert = parse_advert(adv.manufacturer_data)
        info = self.lookup(advert.node_id) if advert is not None else None
        if advert is None or info is None or not info.enabled or (
            advert.kind is not None and advert.kind != info.kind
        ):
            if device.address not in self.ignored:
                self.ignored.add(device.address)
                log.info("BLE: ignoring %s (%s): not an enabled node of the registry",
                         device.address, advert)  # fmt: skip
            return
        node = self._nodes.get(info.id)
        if node is None:
            node = self._nodes[info.id] = _Node(BleLink(f"ble:{info.name}"), info)
            node.link.counters.node = info.name
        node.info = info
        node.device = device
        node.link.counters.rssi = adv.rssi
        node.link.counters.address = device.address
        node.seen.set()
        if node.task is None or node.task.done():
            node.task = asyncio.get_running_loop().create_task(
                self._serve(node), name=f"ble:{info.name}"
            )
            self._tasks.add(node.task)
            node.task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("BLE: %s failed (its next advertisement restarts it)", task.get_name(),
                      exc_info=task.exception())  # fmt: skip

    async def _serve(self, node: _Node) -> None:
        """Keep one node connected: wait for its advertisement and a slot, connect, repeat."""
        delay_s = RETRY_MIN_S
        while True:
            await node.seen.wait()
            node.seen.clear()
            async with self._slots:
                connected = await self._session(node)
            if connected:  # lost: go again at its next advertisement
                node.seen.clear()
                self._lost.set()
                delay_s = RETRY_MIN_S
                continue
            await asyncio.sleep(delay_s * (0.5 + self._rng.random()))
            delay_s = min(RETRY_MAX_S, delay_s * 2)
            self._lost.set()  # try again at its next advertisement

    async def _session(self, node: _Node) -> bool:
        """One connection, until it is lost; False if it could not be made."""
        link, counters = node.link, node.link.counters
        lost = asyncio.Event()
        assert node.device is not None
        client = BleakClient(
            node.device, lambda _client: lost.set(), timeout=CONNECT_TIMEOUT_S,
            backend=self.client_backend, **self._platform_args(),
        )  # fmt: skip

        def on_notify(_characteristic: object, data: bytearray) -> None:
            counters.bytes_in += len(data)
            self.callbacks.on_bytes(link, bytes(data))

        try:
            await client.connect()
            await client.start_notify(NUS_TX, on_notify)
            await client.write_gatt_char(NUS_RX, START_STREAM, response=True)
        except (BleakError, TimeoutError, EOFError, OSError) as exc:
            counters.connect_failures += 1
            counters.last_error = str(exc) or type(exc).__name__
            log.warning("BLE: cannot connect to %s (%s): %s", link.name, counters.address,
                        counters.last_error)  # fmt: skip
            with contextlib.suppress(Exception):
                await client.disconnect()
            return False
        link.client = client
        counters.up, counters.mtu, counters.since = True, client.mtu_size, time.time()
        counters.connects += 1
        log.info("BLE: %s connected (%s, MTU %d)", link.name, counters.address, counters.mtu)
        self.callbacks.on_link_state(link, True)
        try:
            await lost.wait()
            counters.losses += 1
            log.warning("BLE: %s disconnected", link.name)
        finally:
            link.client = None
            counters.up, counters.since = False, time.time()
            self.callbacks.on_link_state(link, False)
            if client.is_connected:
                with contextlib.suppress(Exception):
                    await client.disconnect()
        return True
