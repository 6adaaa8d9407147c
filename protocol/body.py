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

    def _canonical(obj, depth=0):
        if depth > MAX_DEPTH:
            raise MalformedBody("body nested too deeply", "depth", depth)
        if isinstance(obj, dict):
            return {k: _canonical(obj[k], depth + 1) for k in sort_keys(obj)}
        if isinstance(obj, (list, tuple)):
            return [_canonical(v, depth + 1) for v in obj]
        if isinstance(obj, float):
            message = "type cannot go on the wire (use fixed-point integers)"
            raise MalformedBody(message, "type", obj)
        return obj

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

    # What _check must look into; a plain scalar is fine unless it is nested too deeply.
    _CHECKED = (dict, list, msgpack.Timestamp)

    def _check(obj, depth=0):
        if depth > MAX_DEPTH:
            raise MalformedBody("body nested too deeply", "depth", depth)
        deepest = depth >= MAX_DEPTH  # any member would be one level too deep
        if isinstance(obj, dict):
            for key, value in obj.items():
                if not isinstance(key, (int, str)) or isinstance(key, bool):
                    raise MalformedBody("map key must be int or str", "key", key)
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
            obj = msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_no_ext)
        except MalformedBody:
            raise
        except TypeError:  # msgpack: an array or map used as a map key (unhashable)
            raise MalformedBody("map key must be int or str", "key", None) from None
        except Exception as exc:  # msgpack raises several unrelated types
            message = "body is not valid msgpack: %s" % exc
            raise MalformedBody(message, "body", bytes(data)) from None
        _check(obj)
        return obj


__all__ = ["pack_into", "packb", "unpackb"]
