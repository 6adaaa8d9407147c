"""Helpers shared by mp_echo.py and mp_vectors.py (MicroPython or CPython).

Both scripts import it from their own directory, first on sys.path under either
interpreter. Uses only binascii: keep it MicroPython-compatible.
"""

import binascii


def from_tagged(value):
    """The msgpack value of a tagged JSON value (see the "format" key of v1.json)."""
    if isinstance(value, list):
        return [from_tagged(item) for item in value]
    if isinstance(value, dict):
        if "bin" in value:
            return binascii.unhexlify(value["bin"])
        out = {}
        for pair in value["map"]:
            out[from_tagged(pair[0])] = from_tagged(pair[1])
        return out
    return value


def to_tagged(value):
    """The tagged JSON form of a msgpack value (the inverse of from_tagged)."""
    if isinstance(value, list):
        return [to_tagged(item) for item in value]
    if isinstance(value, dict):
        return {"map": [[to_tagged(k), to_tagged(v)] for k, v in value.items()]}
    if isinstance(value, bytes):
        return {"bin": hexof(value)}
    return value


def hexof(data):
    return binascii.hexlify(data).decode()
