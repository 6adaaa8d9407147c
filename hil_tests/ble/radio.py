"""A virtual BLE radio: bumble controllers on one link, reachable in-process or over TCP.

These machines have no Bluetooth hardware, so every "radio" is a bumble ``Controller`` on a
shared ``LocalLink`` (one asyncio loop). A host (bumble ``Device``) reaches its controller
either in-process (same loop, ``host_device``) or as HCI over TCP (``serve_hci``, the
``bumble.apps.controllers`` arrangement), which is how a gateway's bleak backend in another
loop or process attaches.

Range is simulated: ``set_in_range(address, False)`` silences a controller (no advertising,
no data) and drops its connections on both ends with reason "connection timeout", as a node
that walks out of range would. ``rig.BleRig`` runs a radio on its own loop in a thread for
synchronous users (see ``rig.BleRig``).
"""

from __future__ import annotations

import asyncio
import socket

from bumble import hci
from bumble.controller import Controller
from bumble.core import PhysicalTransport
from bumble.device import Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.ll import AdvertisingPdu
from bumble.transport.common import AsyncPipeSink, Transport
from bumble.transport.tcp_server import open_tcp_server_transport_with_socket

__all__ = ["RadioController", "RadioLink", "VirtualRadio", "static_address"]

CONNECTION_TIMEOUT = hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR


def static_address(seed: bytes) -> hci.Address:
    """A random static address (two top bits set) from 6 bytes, e.g. a board's unique id."""
    raw = bytearray(seed[-6:].rjust(6, b"\0"))
    raw[0] |= 0xC0
    return hci.Address(":".join(f"{b:02X}" for b in raw), hci.Address.RANDOM_DEVICE_ADDRESS)


class RadioController(Controller):
    """bumble's ``Controller``; cancelling a connection attempt ends it as a real controller
    does (LE Connection Complete, "unknown connection identifier"), so a host that gives up
    on a silent peer can connect again."""

    def on_hci_le_create_connection_cancel_command(
        self, command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        pending, self.pending_le_connection = self.pending_le_connection, None
        if pending is not None:  # after the Command Complete this method's return becomes
            asyncio.get_running_loop().call_soon(
                self.send_hci_packet,
                hci.HCI_LE_Connection_Complete_Event(
                    status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
                    connection_handle=0,
                    role=hci.Role.CENTRAL,
                    peer_address_type=pending.peer_address.address_type,
                    peer_address=pending.peer_address,
                    connection_interval=0,
                    peripheral_latency=0,
                    supervision_timeout=0,
                    central_clock_accuracy=0,
                ),
            )
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)


class RadioLink(LocalLink):
    """A ``LocalLink`` that can take controllers out of range."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # bumble leaves it unannotated
        self.silenced: set[Controller] = set()

    def send_advertising_pdu(self, sender_controller: Controller, packet: AdvertisingPdu) -> None:
        if sender_controller in self.silenced:
            return
        loop = asyncio.get_running_loop()
        for controller in self.controllers:
            if controller is not sender_controller and controller not in self.silenced:
                loop.call_soon(controller.on_ll_advertising_pdu, packet)

    def send_acl_data(
        self,
        sender_controller: Controller,
        destination_address: hci.Address,
        transport: PhysicalTransport,
        data: bytes,
    ) -> None:
        if sender_controller in self.silenced:
            return
        destination = self.find_le_controller(destination_address)
        if destination is not None and destination in self.silenced:
            return
        super().send_acl_data(sender_controller, destination_address, transport, data)

    def drop_connections(self, controller: Controller) -> None:
        """End every LE connection of ``controller`` on both sides (supervision timeout)."""
        for connection in list(controller.le_connections.values()):
            peer = self.find_le_controller(connection.peer_address)
            if peer is not None and peer is not controller:
                peer_connection = peer.le_connections.get(connection.self_address)
                if peer_connection is not None:
                    peer.on_le_disconnected(peer_connection, CONNECTION_TIMEOUT)
            controller.on_le_disconnected(connection, CONNECTION_TIMEOUT)


class VirtualRadio:
    """Controllers on one ``RadioLink``; create it inside the loop that will run it."""

    def __init__(self) -> None:
        self.link = RadioLink()
        self.controllers: dict[hci.Address, Controller] = {}
        self._transports: list[Transport] = []

    def add_controller(self, address: hci.Address) -> Controller:
        """A new controller on the link, answering to ``address`` (public and random)."""
        controller = RadioController(f"C-{address}", link=self.link, public_address=address)
        controller.random_address = address
        self.controllers[address] = controller
        return controller

    def remove_controller(self, controller: Controller) -> None:
        """Switch a controller off: its connections drop, it leaves the link. (A newer
        controller at the same address, a power-cycled board's, stays.)"""
        if self.controllers.get(controller.public_address) is controller:
            del self.controllers[controller.public_address]
        self.link.drop_connections(controller)
        self.link.silenced.discard(controller)
        self.link.remove_controller(controller)

    def host_device(self, name: str, address: hci.Address) -> Device:
        """A bumble ``Device`` on a new in-process controller (call ``power_on`` next)."""
        controller = self.add_controller(address)
        host = Host(controller_source=controller, controller_sink=AsyncPipeSink(controller))
        return Device(name=name, address=address, host=host)

    async def serve_hci(self, address: hci.Address) -> str:
        """Expose a new controller as HCI over TCP; returns the bumble transport spec."""
        # proto given explicitly: asyncio disables Nagle only on sockets that say IPPROTO_TCP,
        # and without that every HCI response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        transport = await open_tcp_server_transport_with_socket(sock)
        self._transports.append(transport)
        controller = RadioController(
            f"C-{address}",
            host_source=transport.source,
            host_sink=transport.sink,
            link=self.link,
            public_address=address,
        )
        controller.random_address = address
        self.controllers[address] = controller
        return f"tcp-client:127.0.0.1:{port}"

    def set_in_range(self, address: hci.Address, in_range: bool) -> None:
        """Move the controller at ``address`` out of range (connections drop) or back."""
        controller = self.controllers[address]
        if in_range:
            self.link.silenced.discard(controller)
        else:
            self.link.silenced.add(controller)
            self.link.drop_connections(controller)

    async def close(self) -> None:
        for transport in self._transports:
            await transport.close()
        self._transports.clear()
