"""Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999).

Encoded data contains no 0x00 byte, so 0x00 delimits frames on a byte stream.
"""

from .errors import MalformedFrame


def encode(data):
    """COBS-encode ``data`` (without the trailing 0x00 delimiter)."""
    out = bytearray(1)
    code_at = 0
    code = 1
    for byte in data:
        if byte:
            out.append(byte)
            code += 1
            if code < 0xFF:
                continue
        out[code_at] = code
        code_at = len(out)
        out.append(0)
        code = 1
    out[code_at] = code
    return bytes(out)


def decode(data):
    """Decode one COBS block sequence (delimiter already removed)."""
    out = bytearray()
    i = 0
    end_of_data = len(data)
    while i < end_of_data:
        code = data[i]
        if code == 0:
            raise MalformedFrame("zero byte inside a COBS frame", "cobs", i)
        end = i + code
        if end > end_of_data:
            raise MalformedFrame("COBS block runs past the end of the frame", "cobs", i)
        out += data[i + 1 : end]
        i = end
        if code < 0xFF and i < end_of_data:
            out.append(0)
    return bytes(out)
