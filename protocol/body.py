"""Body codec: the ``msgpack`` package on CPython, ``mpack`` on the device.

Both write maps in canonical key order, so an encoded body is the same bytes on
either interpreter, and both reject what the protocol does not use.
"""

from .compat import MICROPYTHON
from .errors import MalformedBody
from .mpack import MAX_DEPTH, sort_keys

if MICROPYTHON:
    from .mpack import pack_into, packb, unpackb
else:
    import msgpack

    from . import mpack

    def _canonical(obj, depth=0):
        if depth > MAX_DEPTH:
            raise MalformedBody("body nested too deeply", "depth", depth)
        if isinstance(obj, dict):
            return {k: _canonical(obj[k], depth + 1) for k in sort_keys(obj)}
        if isinstance(obj, (list, tuple)):
            return [_canonical(v, depth + 1) for v in obj]
        if isinstance(obj, int):  # what mpack refuses, with the same field
            if not -0x8000000000000000 <= obj <= 0xFFFFFFFFFFFFFFFF:
                raise MalformedBody("integer does not fit 64 bits", "int", obj)
            return obj
        if obj is None or isinstance(obj, (str, bytes, bytearray)):
            return obj
        message = "type cannot go on the wire (use fixed-point integers)"
        raise MalformedBody(message, "type", obj)

    def packb(obj):
        try:
            return msgpack.packb(_canonical(obj), use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise MalformedBody("body cannot be encoded: %s" % exc, "body", obj) from None

    def pack_into(out, obj):
        """Append the encoding of ``obj`` to the bytearray ``out``."""
        out += packb(obj)

    def _no_ext(code, data):
        raise MalformedBody("msgpack ext type %d is not used by the protocol" % code, "body", code)

    def _map(pairs):
        # Keys are checked pair by pair, before a dict is built: in a dict, true and 1.0
        # would merge with the int key 1 and overwrite its value (SPEC.md §4).
        for key, _ in pairs:
            if type(key) is not int and type(key) is not str:
                raise MalformedBody("map key must be int or str", "key", key)
        return dict(pairs)

    # What _check must look into; a plain scalar is fine unless it is nested too deeply.
    _CHECKED = (dict, list, msgpack.Timestamp)

    def _check(obj, depth=0):
        if depth > MAX_DEPTH:
            raise MalformedBody("body nested too deeply", "depth", depth)
        deepest = depth >= MAX_DEPTH  # any member would be one level too deep
        if isinstance(obj, dict):
            for value in obj.values():
                if deepest or isinstance(value, _CHECKED):
                    _check(value, depth + 1)
        elif isinstance(obj, list):
            for value in obj:
                if deepest or isinstance(value, _CHECKED):
                    _check(value, depth + 1)
        elif isinstance(obj, msgpack.Timestamp):  # ext type -1 bypasses ext_hook
            raise MalformedBody("msgpack ext type -1 is not used by the protocol", "body", -1)

    def unpackb(data):
        try:
            obj = msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_no_ext,
                                  object_pairs_hook=_map)
            _check(obj)
            return obj
        except MalformedBody as exc:
            error = exc
        except Exception as exc:  # msgpack raises several unrelated types
            error = MalformedBody("body is not valid msgpack: %s" % exc, "body", bytes(data))
        # A body may hold several faults; msgpack finds them in its own order. The error
        # reported is the first fault in stream order (SPEC.md §4), the one the device's
        # streaming decoder meets: failures are rare, so they are decoded twice.
        try:
            mpack.unpackb(data)
        except MalformedBody as first:
            raise first from None
        raise error from None  # the decoders disagree: the error stands, fuzzing finds it


__all__ = ["pack_into", "packb", "unpackb"]
