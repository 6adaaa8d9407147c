"""A bumble peripheral driven the way MicroPython's ``bluetooth.BLE`` drives its stack.

One class serves two callers: the peripheral host behind the emulated board's ``bluetooth``
shim (``peripheral_host.py``), and CPython tests that need a plain peripheral (a NUS node
that is not registered, the bleak backend's own tests). Services are declared with
MicroPython's definition tuples (UUID string, characteristic flags), handles are the real
ATT value handles, and stack events are reported as MicroPython IRQ codes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bumble import gatt
from bumble.att import AttributeValue
from bumble.device import AdvertisingType, Connection, Device

__all__ = [
    "IRQ_CENTRAL_CONNECT",
    "IRQ_CENTRAL_DISCONNECT",
    "IRQ_GATTS_WRITE",
    "IRQ_MTU_EXCHANGED",
    "Peripheral",
    "ServiceDefinition",
]

# MicroPython bluetooth IRQ event codes (docs: bluetooth.BLE.irq).
IRQ_CENTRAL_CONNECT = 1
IRQ_CENTRAL_DISCONNECT = 2
IRQ_GATTS_WRITE = 3
IRQ_MTU_EXCHANGED = 21

ADDR_TYPE_RANDOM = 1
DEFAULT_MTU = 256  # NimBLE's preferred ATT MTU in MicroPython's ESP32 build

# (service UUID, ((characteristic UUID, flags), ...)) as in gatts_register_services
ServiceDefinition = tuple[str, Sequence[tuple[str, int]]]
EventSink = Callable[[int, tuple[Any, ...], bytes | None], None]

_FLAG_READ = 0x0002
_FLAG_WRITE_NO_RESPONSE = 0x0004
_FLAG_WRITE = 0x0008


class Peripheral:
    """GATT server + advertiser on a bumble ``Device``; ``on_event(code, data, value)``.

    ``value`` is the written bytes for ``IRQ_GATTS_WRITE`` (None otherwise), so a remote
    caller can apply MicroPython's buffer rules without a round trip.
    """

    def __init__(self, device: Device, on_event: EventSink) -> None:
        self.device = device
        self.on_event = on_event
        self.values: dict[int, bytes] = {}
        self.connections: dict[int, Connection] = {}
        self._characteristics: dict[int, gatt.Characteristic[bytes]] = {}
        self.mtu = DEFAULT_MTU
        device.on(device.EVENT_CONNECTION, self._on_connection)

    async def power_on(self) -> None:
        self.device.gatt_server.max_mtu = self.mtu
        await self.device.power_on()

    def set_mtu(self, mtu: int) -> None:
        """The MTU offered in the next ATT exchange (``BLE.config(mtu=...)``)."""
        self.mtu = mtu
        self.device.gatt_server.max_mtu = mtu

    def register_services(self, definitions: Sequence[ServiceDefinition]) -> list[list[int]]:
        """Add the services; returns the value handles per service, in definition order."""
        services: list[tuple[gatt.Service, list[gatt.Characteristic[bytes]]]] = []
        for service_uuid, characteristic_defs in definitions:
            characteristics = [self._characteristic(u, flags) for u, flags in characteristic_defs]
            service = gatt.Service(service_uuid, characteristics)
            services.append((service, characteristics))
            self.device.add_service(service)
        handles: list[list[int]] = []
        for _, characteristics in services:
            handles.append([c.handle for c in characteristics])
            for characteristic in characteristics:
                self._characteristics[characteristic.handle] = characteristic
                self.values[characteristic.handle] = b""
        return handles

    def _characteristic(self, uuid: str, flags: int) -> gatt.Characteristic[bytes]:
        permissions = gatt.Characteristic.Permissions(0)
        if flags & _FLAG_READ:
            permissions |= gatt.Characteristic.READABLE
        if flags & (_FLAG_WRITE | _FLAG_WRITE_NO_RESPONSE):
            permissions |= gatt.Characteristic.WRITEABLE
        holder: list[gatt.Characteristic[bytes]] = []

        def read(_connection: Connection) -> bytes:
            return self.values.get(holder[0].handle, b"")

        def write(connection: Connection, value: bytes) -> None:
            handle = holder[0].handle
            self.values[handle] = bytes(value)
            self.on_event(IRQ_GATTS_WRITE, (connection.handle, handle), bytes(value))

        characteristic: gatt.Characteristic[bytes] = gatt.Characteristic(
            uuid,
            gatt.Characteristic.Properties(flags & 0xFF),
            permissions,
            AttributeValue(read=read, write=write),
        )
        holder.append(characteristic)
        return characteristic

    async def advertise(
        self,
        interval_us: int | None,
        adv_data: bytes | None = None,
        resp_data: bytes | None = None,
        connectable: bool = True,
    ) -> None:
        """``gap_advertise``: None stops; None data reuses the previous payload."""
        if interval_us is None:
            await self.device.stop_advertising()
            return
        await self.device.start_advertising(
            advertising_type=(
                AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE
                if connectable
                else AdvertisingType.UNDIRECTED_SCANNABLE
            ),
            advertising_data=adv_data,
            scan_response_data=resp_data,
            advertising_interval_min=interval_us / 1000,
            advertising_interval_max=interval_us / 1000,
        )

    def write(self, handle: int, value: bytes) -> None:
        """``gatts_write``: the local value a central reads."""
        self.values[handle] = bytes(value)

    async def notify(self, conn_handle: int, handle: int, value: bytes) -> bool:
        """``gatts_notify``; False if that connection is gone. The stack truncates to MTU-3."""
        connection = self.connections.get(conn_handle)
        if connection is None:
            return False
        await self.device.notify_subscriber(
            connection, self._characteristics[handle], value, force=True
        )
        return True

    async def disconnect(self, conn_handle: int) -> bool:
        connection = self.connections.get(conn_handle)
        if connection is None:
            return False
        await connection.disconnect()
        return True

    def _on_connection(self, connection: Connection) -> None:
        handle = connection.handle
        self.connections[handle] = connection
        addr = bytes(reversed(bytes(connection.peer_address)))

        def on_disconnection(_reason: int) -> None:
            self.connections.pop(handle, None)
            self.on_event(IRQ_CENTRAL_DISCONNECT, (handle, ADDR_TYPE_RANDOM, addr), None)

        def on_mtu() -> None:
            self.on_event(IRQ_MTU_EXCHANGED, (handle, connection.att_mtu), None)

        connection.on(connection.EVENT_DISCONNECTION, on_disconnection)
        connection.on(connection.EVENT_CONNECTION_ATT_MTU_UPDATE, on_mtu)
        self.on_event(IRQ_CENTRAL_CONNECT, (handle, ADDR_TYPE_RANDOM, addr), None)
