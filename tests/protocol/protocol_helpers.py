"""CPython helpers shared by the protocol tests: tagged JSON bodies and strict equality."""

import struct
from typing import Any

from streetsense.tools.conformance import same

__all__ = ["from_tagged", "same", "to_tagged"]


def to_tagged(value: Any) -> Any:
    """The tagged JSON form of a body value (see the "format" key of v1.json)."""
    if isinstance(value, (list, tuple)):
        return [to_tagged(item) for item in value]
    if isinstance(value, dict):
        return {"map": [[to_tagged(k), to_tagged(v)] for k, v in value.items()]}
    if isinstance(value, (bytes, bytearray)):
        return {"bin": bytes(value).hex()}
    if isinstance(value, float):
        return {"float": struct.pack(">d", value).hex()}
    return value


def from_tagged(value: Any, strict: bool = False) -> Any:
    """The body value of a tagged JSON value.

    ``strict``: a JSON object must be exactly one known tag and a scalar nil, bool,
    int or str (the vector file's form); otherwise floats from a decoder pass through.
    """
    if isinstance(value, list):
        return [from_tagged(item, strict) for item in value]
    if isinstance(value, dict):
        if strict:
            assert len(value) == 1 and set(value) <= {"bin", "float", "map"}, value
        if "bin" in value:
            return bytes.fromhex(value["bin"])
        if "float" in value:
            return struct.unpack(">d", bytes.fromhex(value["float"]))[0]
        return {from_tagged(k, strict): from_tagged(v, strict) for k, v in value["map"]}
    if strict:
        assert value is None or isinstance(value, (bool, int, str)), value
    return value
