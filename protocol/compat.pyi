# Host-side types of compat.py (the device code carries no annotations).
from typing import TypeVar

_T = TypeVar("_T")

MICROPYTHON: bool

def const(value: _T) -> _T: ...
def hmac_sha256(key: bytes | bytearray, msg: bytes | bytearray) -> bytes: ...
def digest_equal(a: bytes | bytearray, b: bytes | bytearray, /) -> bool: ...
