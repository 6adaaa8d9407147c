"""The Nordic UART Service as a CPython test peripheral declares it, and a node's advertisement.

The firmware (`firmware/ssnode/ble_link.py`) is the reference; these bytes are what it sends
(the BLE tests check the two against each other through a real scan).
"""

from __future__ import annotations

from streetsense.gateway.transports.ble import NUS_RX, NUS_SERVICE, NUS_TX
from streetsense.protocol.advert import manufacturer_data

from .peripheral import ServiceDefinition

__all__ = ["NUS_DEFINITION", "node_advert"]

_FLAG_READ, _FLAG_WRITE_NO_RESPONSE, _FLAG_WRITE, _FLAG_NOTIFY = 0x02, 0x04, 0x08, 0x10

# TX first, as the firmware registers it: handles come back as (tx, rx)
NUS_DEFINITION: ServiceDefinition = (
    NUS_SERVICE,
    ((NUS_TX, _FLAG_READ | _FLAG_NOTIFY), (NUS_RX, _FLAG_WRITE | _FLAG_WRITE_NO_RESPONSE)),
)


def node_advert(node_id: int, kind: str | None) -> bytes:
    """Advertising data of a StreetSense node (SPEC §1.3): flags, NUS UUID, id and kind."""
    uuid_le = bytes(reversed(bytes.fromhex(NUS_SERVICE.replace("-", ""))))
    return (
        b"\x02\x01\x06"
        + b"\x11\x07" + uuid_le
        + manufacturer_data(node_id, kind)
    )  # fmt: skip
