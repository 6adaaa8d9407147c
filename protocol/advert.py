"""The BLE carriage's fixed parts (SPEC.md §1.3): Nordic UART Service UUIDs, the advertisement's
manufacturer data (format 1) and how to read it.

Manufacturer data, after the AD length and type: company id 0xFFFF (little-endian, the
Bluetooth SIG's value for internal use), format 1, node_id u32 big-endian, kind code u8.
"""

import struct

from .compat import const

NUS_SERVICE = "6E400001-B5A3-F393-E0A9-E50E24DCCA9E"
NUS_RX = "6E400002-B5A3-F393-E0A9-E50E24DCCA9E"  # gateway -> node: write, write without response
NUS_TX = "6E400003-B5A3-F393-E0A9-E50E24DCCA9E"  # node -> gateway: read, notify

COMPANY_ID = const(0xFFFF)
ADV_FORMAT = const(1)
PAYLOAD_LEN = const(6)  # format, node_id, kind: what follows the company id
KIND_FACTORY = const(0)  # kind code of a node in factory state (or of a kind v1 does not know)
KIND_CODES = {"air-quality": 1, "traffic": 2}


def advert_payload(node_id, kind):
    """The manufacturer data after the company id: format, node id, kind code."""
    return struct.pack(">BIB", ADV_FORMAT, node_id, KIND_CODES.get(kind, KIND_FACTORY))


def manufacturer_data(node_id, kind):
    """The whole manufacturer-specific AD structure: ``09 FF FF FF`` + ``advert_payload``."""
    return struct.pack("<BBH", 3 + PAYLOAD_LEN, 0xFF, COMPANY_ID) + advert_payload(node_id, kind)


def parse_advert_payload(payload):
    """(node_id, kind) from the data after the company id; kind None for code 0 or a code
    v1 does not know. None if it is not format 1 (a receiver ignores other formats) or too
    short."""
    if len(payload) < PAYLOAD_LEN or payload[0] != ADV_FORMAT:
        return None
    node_id, code = struct.unpack_from(">IB", payload, 1)
    for kind in KIND_CODES:
        if KIND_CODES[kind] == code:
            return node_id, kind
    return node_id, None
