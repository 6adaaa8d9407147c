"""A compact msgpack codec for the subset the protocol uses (the node's codec).

Encodes nil, bool, int (up to 64 bit), str, bytes (bin), list/tuple (array) and
dict (map) in msgpack's shortest form, which is what the ``msgpack`` package
produces; maps are written with their keys in canonical order (see ``sort_keys``)
so that both interpreters produce the same bytes. Decodes the same subset plus
float32/float64. Ext types are rejected.
"""

import struct

from .compat import MICROPYTHON
from .errors import MalformedBody

MAX_DEPTH = 8


def _strict_utf8(raw):
    """UTF-8 as RFC 3629 and CPython define it: no overlong forms, surrogates or code points
    above U+10FFFF. MicroPython's own decoder checks only the byte pattern."""
    i, n = 0, len(raw)
    while i < n:
        b = raw[i]
        if b < 0x80:
            i += 1
            continue
        if 0xC2 <= b <= 0xDF:
            more, low, high = 1, 0x80, 0xBF
        elif b == 0xE0:
            more, low, high = 2, 0xA0, 0xBF
        elif b == 0xED:
            more, low, high = 2, 0x80, 0x9F
        elif 0xE1 <= b <= 0xEF:
            more, low, high = 2, 0x80, 0xBF
        elif b == 0xF0:
            more, low, high = 3, 0x90, 0xBF
        elif 0xF1 <= b <= 0xF3:
            more, low, high = 3, 0x80, 0xBF
        elif b == 0xF4:
            more, low, high = 3, 0x80, 0x8F
        else:
            return False
        if i + more >= n or not low <= raw[i + 1] <= high:
            return False
        for j in range(i + 2, i + more + 1):
            if raw[j] & 0xC0 != 0x80:
                return False
        i += more + 1
    return True


def _utf8(key):
    return key.encode()


def sort_keys(mapping):
    """Canonical key order: integer keys ascending, then string keys by their UTF-8 bytes."""
    ints = []
    strs = None  # most maps have integer keys only: no second list for them
    for key in mapping:
        if isinstance(key, int) and not isinstance(key, bool):
            ints.append(key)
        elif isinstance(key, str):
            if strs is None:
                strs = []
            strs.append(key)
        else:
            raise MalformedBody("map key must be int or str", "key", key)
    ints.sort()
    if strs is None:
        return ints
    strs.sort(key=_utf8)
    return ints + strs


# The encoder writes straight into one bytearray: it grows the array by a constant run
# of zero bytes and packs the value over them with struct.pack_into, so a head or an
# integer costs no temporary bytes object on the device. _ZEROS[n] is n zero bytes.
_ZEROS = (b"", b"\x00", b"\x00\x00", b"\x00\x00\x00", b"\x00\x00\x00\x00",
          b"\x00\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00",
          b"\x00\x00\x00\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00\x00\x00",
          b"\x00\x00\x00\x00\x00\x00\x00\x00\x00")  # fmt: skip


def _put(out, fmt, size, code, value):
    at = len(out)
    out += _ZEROS[size]
    struct.pack_into(fmt, out, at, code, value)


def _head(out, value, fix_base, fix_max, code8, code16, code32):
    if value <= fix_max:
        out.append(fix_base | value)
    elif code8 and value <= 0xFF:
        out.append(code8)
        out.append(value)
    elif value <= 0xFFFF:
        _put(out, ">BH", 3, code16, value)
    else:
        _put(out, ">BI", 5, code32, value)


def _pack_int(out, value):
    if 0 <= value <= 0x7F or -32 <= value < 0:
        out.append(value & 0xFF)
    elif value > 0:
        if value <= 0xFF:
            out.append(0xCC)
            out.append(value)
        elif value <= 0xFFFF:
            _put(out, ">BH", 3, 0xCD, value)
        elif value <= 0xFFFFFFFF:
            _put(out, ">BI", 5, 0xCE, value)
        elif value <= 0xFFFFFFFFFFFFFFFF:
            _put(out, ">BQ", 9, 0xCF, value)
        else:
            raise MalformedBody("integer does not fit 64 bits", "int", value)
    elif value >= -0x80:
        _put(out, ">Bb", 2, 0xD0, value)
    elif value >= -0x8000:
        _put(out, ">Bh", 3, 0xD1, value)
    elif value >= -0x80000000:
        _put(out, ">Bi", 5, 0xD2, value)
    elif value >= -0x8000000000000000:
        _put(out, ">Bq", 9, 0xD3, value)
    else:
        raise MalformedBody("integer does not fit 64 bits", "int", value)


def _pack(out, obj, depth):
    # isinstance with one type at a time: a tuple of types is built (allocated) per call
    # on MicroPython.
    if depth > MAX_DEPTH:
        raise MalformedBody("body nested too deeply", "depth", depth)
    if obj is None:
        out.append(0xC0)
    elif obj is True:
        out.append(0xC3)
    elif obj is False:
        out.append(0xC2)
    elif isinstance(obj, int):
        _pack_int(out, obj)
    elif isinstance(obj, str):
        raw = obj.encode()
        _head(out, len(raw), 0xA0, 31, 0xD9, 0xDA, 0xDB)
        out += raw
    elif isinstance(obj, bytes) or isinstance(obj, bytearray):
        _head(out, len(obj), 0xC4, -1, 0xC4, 0xC5, 0xC6)
        out += obj
    elif isinstance(obj, list) or isinstance(obj, tuple):
        _head(out, len(obj), 0x90, 15, 0, 0xDC, 0xDD)
        for item in obj:
            _pack(out, item, depth + 1)
    elif isinstance(obj, dict):
        _head(out, len(obj), 0x80, 15, 0, 0xDE, 0xDF)
        for key in sort_keys(obj):
            _pack(out, key, depth + 1)
            _pack(out, obj[key], depth + 1)
    else:
        raise MalformedBody("type cannot go on the wire (use fixed-point integers)", "type", obj)


def pack_into(out, obj):
    """Append the msgpack encoding of ``obj`` to the bytearray ``out`` (canonical map order)."""
    _pack(out, obj, 0)


def packb(obj):
    """Encode ``obj`` to msgpack bytes (canonical map order)."""
    out = bytearray()
    _pack(out, obj, 0)
    return bytes(out)


# Decoding: each entry of _FIXED maps a first byte to (struct format, size).
_FIXED = {
    0xCA: (">f", 4), 0xCB: (">d", 8),
    0xCC: (">B", 1), 0xCD: (">H", 2), 0xCE: (">I", 4), 0xCF: (">Q", 8),
    0xD0: (">b", 1), 0xD1: (">h", 2), 0xD2: (">i", 4), 0xD3: (">q", 8),
}  # fmt: skip
_LEN = {
    0xC4: (">B", 1, "b"), 0xC5: (">H", 2, "b"), 0xC6: (">I", 4, "b"),
    0xD9: (">B", 1, "s"), 0xDA: (">H", 2, "s"), 0xDB: (">I", 4, "s"),
    0xDC: (">H", 2, "a"), 0xDD: (">I", 4, "a"),
    0xDE: (">H", 2, "m"), 0xDF: (">I", 4, "m"),
}  # fmt: skip


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, size):
        start = self.pos
        end = start + size
        if end > len(self.data):
            raise MalformedBody("body ends inside a value", "body", start)
        self.pos = end
        return self.data[start:end]

    def value(self, depth):
        if depth > MAX_DEPTH:
            raise MalformedBody("body nested too deeply", "depth", depth)
        first = self.take(1)[0]
        if first <= 0x7F:
            return first
        if first >= 0xE0:
            return first - 0x100
        if 0xA0 <= first <= 0xBF:
            return self.text(first & 0x1F)
        if 0x90 <= first <= 0x9F:
            return self.array(first & 0x0F, depth)
        if 0x80 <= first <= 0x8F:
            return self.map(first & 0x0F, depth)
        if first == 0xC0:
            return None
        if first == 0xC2:
            return False
        if first == 0xC3:
            return True
        if first in _FIXED:
            fmt, size = _FIXED[first]
            return struct.unpack(fmt, self.take(size))[0]
        if first in _LEN:
            fmt, size, kind = _LEN[first]
            length = struct.unpack(fmt, self.take(size))[0]
            if kind == "b":
                return bytes(self.take(length))
            if kind == "s":
                return self.text(length)
            if kind == "a":
                return self.array(length, depth)
            return self.map(length, depth)
        message = "msgpack type 0x%02x is not used by the protocol" % first
        raise MalformedBody(message, "body", first)

    def text(self, length):
        raw = self.take(length)
        try:
            if MICROPYTHON and not _strict_utf8(raw):
                raise UnicodeError
            return str(raw, "utf-8")
        except UnicodeError:
            raise MalformedBody("string is not valid UTF-8", "body", raw) from None

    def array(self, length, depth):
        if length > len(self.data) - self.pos:
            raise MalformedBody("array longer than the body", "body", length)
        return [self.value(depth + 1) for _ in range(length)]

    def map(self, length, depth):
        if 2 * length > len(self.data) - self.pos:
            raise MalformedBody("map longer than the body", "body", length)
        out = {}
        for _ in range(length):
            key = self.value(depth + 1)
            if not isinstance(key, (int, str)) or isinstance(key, bool):
                raise MalformedBody("map key must be int or str", "key", key)
            out[key] = self.value(depth + 1)
        return out


def unpackb(data):
    """Decode exactly one msgpack object from ``data``."""
    reader = _Reader(data)
    obj = reader.value(0)
    if reader.pos != len(data):
        raise MalformedBody("bytes after the body's msgpack object", "body", reader.pos)
    return obj
