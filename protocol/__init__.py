"""StreetSense wire protocol v1: runs unchanged on MicroPython (nodes) and CPython (gateway).

Encode/decode only, no I/O. See SPEC.md.
"""

from .deframer import Deframer
from .errors import (
    BadCRC,
    BadTag,
    MalformedBody,
    MalformedFrame,
    NeedMoreBytes,
    Oversize,
    ProtocolError,
    UnknownNode,
    UnsupportedVersion,
)
from .frame import (
    FLAG_ACK_REQ,
    FLAG_DOWNLINK,
    FLAG_SIGNED,
    MAX_FRAME,
    Frame,
    parse_frame,
    peek_node_id,
)

__all__ = [
    "FLAG_ACK_REQ",
    "FLAG_DOWNLINK",
    "FLAG_SIGNED",
    "MAX_FRAME",
    "BadCRC",
    "BadTag",
    "Deframer",
    "Frame",
    "MalformedBody",
    "MalformedFrame",
    "NeedMoreBytes",
    "Oversize",
    "ProtocolError",
    "UnknownNode",
    "UnsupportedVersion",
    "parse_frame",
    "peek_node_id",
]
