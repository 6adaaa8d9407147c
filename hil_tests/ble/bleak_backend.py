"""A bleak backend over bumble: plain ``BleakScanner``/``BleakClient`` on a virtual radio.

bleak picks a platform backend unless it is given ``backend=`` (a ``BaseBleakScanner`` or
``BaseBleakClient`` subclass); this module provides both, running on a bumble host. The
host reaches its controller in-process (a ``VirtualRadio`` on the same loop) or as HCI over
TCP (``tcp-client:127.0.0.1:PORT`` from ``VirtualRadio.serve_hci`` or
``python -m bumble.apps.controllers``). Code under test stays plain bleak::

    adapter = BumbleAdapter(transport="tcp-client:127.0.0.1:9001", mtu=247)
    scanner_backend, client_backend = bumble_backends(adapter)
    async with BleakScanner(callback, [NUS_SERVICE], backend=scanner_backend): ...
    async with BleakClient(device, backend=client_backend) as client: ...

``mtu`` is what the central asks for in the ATT MTU exchange right after connecting
(BlueZ asks for 517; 23 means "no exchange", the BLE default).

A gateway is put on the virtual radio through its config: `gateway_settings` gives the
``[ble]`` entries that name `BumbleBackends` as its bleak backend provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CHARACTERISTIC_PROPERTIES, CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bumble import core, hci
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy
from bumble.transport import open_transport
from bumble.transport.common import Transport

__all__ = ["BumbleAdapter", "BumbleBackends", "BumbleClient", "BumbleScanner", "bumble_backends",
           "gateway_settings", "parse_ad"]

ATT_DEFAULT_MTU = 23
_AD_UUID_LISTS = {0x02: 2, 0x03: 2, 0x04: 4, 0x05: 4, 0x06: 16, 0x07: 16}  # UUID list: width
_AD_SHORT_NAME, _AD_NAME, _AD_TX_POWER = 0x08, 0x09, 0x0A
_AD_SERVICE_DATA = {0x16: 2, 0x20: 4, 0x21: 16}
_AD_MANUFACTURER = 0xFF
CENTRAL_ADDRESS = hci.Address("C0:00:00:00:00:01", hci.Address.RANDOM_DEVICE_ADDRESS)


def _uuid_str(little_endian: bytes) -> str:
    """bleak's UUID form (lowercase, 128-bit) from a little-endian 2/4/16-byte UUID."""
    if len(little_endian) < 16:
        value = int.from_bytes(little_endian, "little")
        return f"{value:08x}-0000-1000-8000-00805f9b34fb"
    return str(uuid.UUID(bytes=bytes(reversed(little_endian))))


def parse_ad(data: bytes, rssi: int, platform: Any = None) -> AdvertisementData:
    """Advertising data (AD structures) as bleak's ``AdvertisementData``."""
    name: str | None = None
    manufacturer: dict[int, bytes] = {}
    service_data: dict[str, bytes] = {}
    services: list[str] = []
    tx_power: int | None = None
    i = 0
    while i + 1 < len(data):
        length = data[i]
        if length == 0 or i + 1 + length > len(data):
            break
        ad_type, value = data[i + 1], data[i + 2 : i + 1 + length]
        i += 1 + length
        if ad_type in _AD_UUID_LISTS:
            width = _AD_UUID_LISTS[ad_type]
            for j in range(0, len(value) - width + 1, width):
                text = _uuid_str(value[j : j + width])
                if text not in services:
                    services.append(text)
        elif ad_type in (_AD_SHORT_NAME, _AD_NAME):
            name = value.decode("utf-8", "replace")
        elif ad_type == _AD_TX_POWER and value:
            tx_power = int.from_bytes(value[:1], "little", signed=True)
        elif ad_type in _AD_SERVICE_DATA:
            width = _AD_SERVICE_DATA[ad_type]
            service_data[_uuid_str(value[:width])] = value[width:]
        elif ad_type == _AD_MANUFACTURER and len(value) >= 2:
            manufacturer[int.from_bytes(value[:2], "little")] = value[2:]
    return AdvertisementData(
        local_name=name,
        manufacturer_data=manufacturer,
        service_data=service_data,
        service_uuids=services,
        tx_power=tx_power,
        rssi=rssi,
        platform_data=(platform,),
    )


@contextlib.contextmanager
def _as_bleak_error(what: str) -> Iterator[None]:
    """bumble's errors as bleak's, so callers handle one family whatever the backend."""
    try:
        yield
    except core.BaseBumbleError as error:
        raise BleakError(f"{what}: {error!r}") from error


class BumbleAdapter:
    """One bumble host in the central role, shared by the scanners and clients of a loop.

    Give ``transport`` (a bumble transport spec) or ``device`` (an in-process ``Device``
    from ``VirtualRadio.host_device``). Started on first use.
    """

    def __init__(
        self,
        *,
        transport: str | None = None,
        device: Device | None = None,
        mtu: int = 247,
        address: hci.Address = CENTRAL_ADDRESS,
    ) -> None:
        if (transport is None) == (device is None):
            raise ValueError("give exactly one of transport= or device=")
        self.transport_spec = transport
        self.mtu = mtu
        self.address = address
        self._device = device
        self._transport: Transport | None = None
        self._start_lock = asyncio.Lock()
        self._started = False
        self._scan_listeners: list[Callable[[Advertisement], None]] = []
        self.idle = asyncio.Event()  # set while the adapter does not scan
        self.connect_lock = asyncio.Lock()  # one LE connection attempt at a time (HCI rule)

    @property
    def device(self) -> Device:
        if self._device is None:
            raise BleakError("the bumble adapter is not started")
        return self._device

    async def start(self) -> Device:
        async with self._start_lock:
            if not self._started:
                if self._device is None:
                    assert self.transport_spec is not None
                    self._transport = await open_transport(self.transport_spec)
                    self._device = Device.with_hci(
                        "streetsense-gateway",
                        self.address,
                        self._transport.source,
                        self._transport.sink,
                    )
                self.device.on(self.device.EVENT_ADVERTISEMENT, self._on_advertisement)
                await self.device.power_on()
                self._started = True
        return self.device

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        for listener in list(self._scan_listeners):
            listener(advertisement)

    async def add_scan_listener(self, listener: Callable[[Advertisement], None]) -> None:
        device = await self.start()
        self._scan_listeners.append(listener)
        if not device.scanning:
            self.idle.clear()
            await device.start_scanning(active=True, filter_duplicates=False)

    async def remove_scan_listener(self, listener: Callable[[Advertisement], None]) -> None:
        with contextlib.suppress(ValueError):
            self._scan_listeners.remove(listener)
        if not self._scan_listeners and self._started and self.device.scanning:
            await self.device.stop_scanning()
            self.idle.set()

    async def close(self) -> None:
        """Disconnect everything and close the HCI transport (if this adapter opened it)."""
        if self._started:
            for connection in list(self.device.connections.values()):
                with contextlib.suppress(Exception):
                    await connection.disconnect()
        if self._transport is not None:
            await self._transport.close()
            self._transport = None
            self._device = None
        self._started = False


class BumbleScanner(BaseBleakScanner):
    """bleak scanner backend on a ``BumbleAdapter`` (bind one with ``bumble_backends``)."""

    adapter: ClassVar[BumbleAdapter]

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)

    async def start(self) -> None:
        self.seen_devices = {}
        await self.adapter.add_scan_listener(self._on_advertisement)

    async def stop(self) -> None:
        await self.adapter.remove_scan_listener(self._on_advertisement)

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        adv = parse_ad(bytes(advertisement.data), advertisement.rssi, advertisement)
        if not self.is_allowed_uuid(adv.service_uuids):
            return
        address = advertisement.address.to_string(False)
        device = self.create_or_update_device(
            address, address, adv.local_name, advertisement.address, adv
        )
        self.call_detection_callbacks(device, adv)


class BumbleClient(BaseBleakClient):
    """bleak client backend on a ``BumbleAdapter`` (bind one with ``bumble_backends``)."""

    adapter: ClassVar[BumbleAdapter]

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        details = getattr(address_or_ble_device, "details", None)
        self._peer_address = (
            details
            if isinstance(details, hci.Address)
            else hci.Address(self.address, hci.Address.RANDOM_DEVICE_ADDRESS)
        )
        self._connection: Connection | None = None
        self._peer: Peer | None = None

    @property
    def name(self) -> str:
        return self.address

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if pair:
            raise BleakError("the bumble backend does not pair")
        device = await self.adapter.start()
        async with self.adapter.connect_lock:
            try:
                connection = await device.connect(self._peer_address, timeout=self._timeout)
            except core.TimeoutError as error:
                raise BleakDeviceNotFoundError(self.address, "no answer") from error
            except core.BaseBumbleError as error:
                raise BleakError(f"connecting to {self.address}: {error}") from error
        self._connection = connection
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        try:
            with _as_bleak_error(f"discovering {self.address}"):
                peer = Peer(connection)
                if self.adapter.mtu != ATT_DEFAULT_MTU:
                    await peer.request_mtu(self.adapter.mtu)
                self.services = await self._discover(peer)
            self._peer = peer
        except BaseException:
            await self.disconnect()
            raise

    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        for service in await peer.discover_services():
            await service.discover_characteristics()
            bleak_service = BleakGATTService(
                service, service.handle, _uuid_str(service.uuid.uuid_128_bytes)
            )
            collection.add_service(bleak_service)
            for proxy in service.characteristics:
                await proxy.discover_descriptors()
                properties: list[CharacteristicPropertyName] = [
                    name
                    for bit, name in CHARACTERISTIC_PROPERTIES.items()
                    if proxy.properties & bit
                ]
                characteristic = BleakGATTCharacteristic(
                    proxy,
                    proxy.handle,
                    _uuid_str(proxy.uuid.uuid_128_bytes),
                    properties,
                    lambda: self.mtu_size - 3,
                    bleak_service,
                )
                collection.add_characteristic(characteristic)
                for descriptor in proxy.descriptors:
                    collection.add_descriptor(
                        BleakGATTDescriptor(
                            descriptor,
                            descriptor.handle,
                            _uuid_str(descriptor.type.uuid_128_bytes),
                            characteristic,
                        )
                    )
        return collection

    def _on_disconnection(self, _reason: int) -> None:
        was_connected = self._connection is not None
        self._connection = None
        self._peer = None
        if was_connected and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        connection, self._connection, self._peer = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(core.BaseBumbleError, hci.HCI_Error):
                await connection.disconnect()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise BleakError("the bumble backend does not pair")

    async def unpair(self) -> None:
        raise BleakError("the bumble backend does not pair")

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError("not connected")
        return self._peer

    @staticmethod
    def _proxy(characteristic: BleakGATTCharacteristic) -> CharacteristicProxy[bytes]:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        return proxy

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        with _as_bleak_error("read"):
            return bytearray(await self._require_peer().read_value(self._proxy(characteristic)))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        with _as_bleak_error("read"):
            return bytearray(await self._require_peer().read_value(descriptor.obj))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        with _as_bleak_error("write"):
            await self._require_peer().write_value(
                self._proxy(characteristic), bytes(data), with_response=response
            )

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        with _as_bleak_error("write"):
            await self._require_peer().write_value(descriptor.obj, bytes(data), with_response=True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        def on_value(value: bytes) -> None:
            callback(bytearray(value))

        with _as_bleak_error("subscribe"):
            await self._require_peer().subscribe(self._proxy(characteristic), on_value)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        with _as_bleak_error("unsubscribe"):
            await self._require_peer().unsubscribe(self._proxy(characteristic))


def bumble_backends(
    adapter: BumbleAdapter,
) -> tuple[type[BumbleScanner], type[BumbleClient]]:
    """Scanner and client backend classes bound to ``adapter`` (pass them as ``backend=``)."""

    class Scanner(BumbleScanner):
        pass

    class Client(BumbleClient):
        pass

    Scanner.adapter = adapter
    Client.adapter = adapter
    return Scanner, Client


class BumbleBackends:
    """The gateway's bleak backends on a bumble host reached at ``transport`` (a bumble
    transport spec): the provider that ``[ble] backend`` names (see `gateway_settings`).
    ``address`` is the gateway's own Bluetooth address: gateways on one radio need
    different ones, or a node cannot tell their connections apart."""

    def __init__(self, *, transport: str, address: str | None = None, mtu: int = 247) -> None:
        self.adapter = BumbleAdapter(
            transport=transport, mtu=mtu,
            address=CENTRAL_ADDRESS if address is None
            else hci.Address(address, hci.Address.RANDOM_DEVICE_ADDRESS))
        self.scanner, self.client = bumble_backends(self.adapter)

    async def close(self) -> None:
        await self.adapter.close()


def gateway_settings(transport: str, address: str | None = None,
                     mtu: int | None = None) -> dict[str, Any]:
    """The gateway config's ``[ble]`` entries that put it on the radio at ``transport``
    (with its own Bluetooth ``address``, "C0:..." static random, when several share it;
    ``mtu``: what it asks for in the ATT exchange, 23 for none)."""
    options: dict[str, Any] = {"transport": transport}
    options |= ({"address": address} if address else {}) | ({"mtu": mtu} if mtu else {})
    return {"backend": f"{__name__}:{BumbleBackends.__name__}", "backend_options": options}
