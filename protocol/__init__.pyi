# Host-side types of the protocol package (the device code carries no annotations).
from .deframer import Deframer as Deframer
from .errors import BadCRC as BadCRC
from .errors import BadTag as BadTag
from .errors import MalformedBody as MalformedBody
from .errors import MalformedFrame as MalformedFrame
from .errors import NeedMoreBytes as NeedMoreBytes
from .errors import Oversize as Oversize
from .errors import ProtocolError as ProtocolError
from .errors import UnknownNode as UnknownNode
from .errors import UnsupportedVersion as UnsupportedVersion
from .frame import FLAG_ACK_REQ as FLAG_ACK_REQ
from .frame import FLAG_DOWNLINK as FLAG_DOWNLINK
from .frame import FLAG_SIGNED as FLAG_SIGNED
from .frame import MAX_FRAME as MAX_FRAME
from .frame import Frame as Frame
from .frame import parse_frame as parse_frame
from .frame import peek_node_id as peek_node_id

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
