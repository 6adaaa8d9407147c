# Host-side types of frame.py (the device code carries no annotations).
from collections.abc import Callable
from typing import Any, Final

_Key = bytes | bytearray | None
_KeyArg = _Key | Callable[[int], _Key]

VERSION_MAJOR: Final[int]
VERSION_MINOR: Final[int]
VERSION: Final[int]
FLAG_ACK_REQ: Final[int]
FLAG_SIGNED: Final[int]
FLAG_DOWNLINK: Final[int]
HEADER_FORMAT: Final[str]
HEADER_LEN: Final[int]
TAG_LEN: Final[int]
CRC_LEN: Final[int]
MIN_FRAME: Final[int]
MAX_FRAME: Final[int]
MAX_ENCODED: Final[int]
KEY_MIN: Final[int]
KEY_MAX: Final[int]

def sign(key: bytes | bytearray, signed_part: bytes | bytearray) -> bytes: ...

class Frame:
    version: int
    type: int
    flags: int
    node_id: int
    boot: int
    seq: int
    body: Any
    tag: bytes | None
    verified: bool
    def __init__(self, mtype: int, node_id: int, boot: int, seq: int, body: Any,
                 flags: int = 0, version: int = ...) -> None: ...
    @property
    def type_name(self) -> str | None: ...
    @property
    def ack_requested(self) -> bool: ...
    @property
    def signed(self) -> bool: ...
    @property
    def downlink(self) -> bool: ...
    def to_bytes(self, key: _Key = None) -> bytes: ...
    def encode(self, key: _Key = None) -> bytes: ...
    @classmethod
    def from_bytes(cls, raw: bytes | bytearray, key: _KeyArg = None) -> Frame: ...

def parse_frame(raw: bytes | bytearray, key: _KeyArg = None) -> Frame: ...
def peek_node_id(raw: bytes | bytearray) -> int | None: ...
