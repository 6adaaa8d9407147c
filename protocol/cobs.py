"""Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999).

Encoded data contains no 0x00 byte, so 0x00 delimits frames on a byte stream.
"""

from .errors import MalformedFrame


def encode(data):
    """COBS-encode ``data`` (without the trailing 0x00 delimiter)."""
    return _encode(data, 0)


def encode_delimited(data):
    """COBS-encode ``data`` and append the 0x00 delimiter: ``encode(data) + b"\\x00"``."""
    return _encode(data, 1)


def _encode(data, tail):
    # One bytearray of the worst-case size (a code byte per 254 bytes, plus the first
    # one, plus ``tail`` delimiter bytes), filled in place and trimmed once: the device
    # allocates the output twice (this buffer and the bytes) instead of growing it.
    size = len(data)
    out = bytearray(size + size // 254 + 1 + tail)
    code_at = 0
    code = 1
    pos = 1
    for i in range(size):  # indexing: iterating a bytearray is slower on MicroPython
        byte = data[i]
        if byte:
            out[pos] = byte
            pos += 1
            code += 1
            if code < 0xFF:
                continue
        out[code_at] = code
        code_at = pos
        pos += 1
        code = 1
    out[code_at] = code
    end = pos + tail  # the delimiter, when asked for, is the zero already at out[pos]
    if end < len(out):
        out[end:] = b""
    return bytes(out)


def decode(data):
    """Decode one COBS block sequence (delimiter already removed)."""
    zero_at = data.find(b"\x00")
    if zero_at >= 0:
        raise MalformedFrame("zero byte inside a COBS frame", "cobs", zero_at)
    out = bytearray()
    i = 0
    end_of_data = len(data)
    while i < end_of_data:
        code = data[i]
        end = i + code
        if end > end_of_data:
            raise MalformedFrame("COBS block runs past the end of the frame", "cobs", i)
        out += data[i + 1 : end]
        i = end
        if code < 0xFF and i < end_of_data:
            out.append(0)
    return bytes(out)
