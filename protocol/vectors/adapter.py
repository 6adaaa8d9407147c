"""The project's own codec behind the conformance exchange (SPEC.md §7.2): JSON lines in and out.

Usage: python adapter.py                       (the CPython codec, as installed)
       micropython adapter.py DIR_ON_SYS_PATH  (the device codec: DIR holds streetsense/protocol)

so that ``streetsense conformance -- micropython protocol/vectors/adapter.py DIR`` runs the golden
vectors through the node's codec exactly as it runs them through another implementation. Also
the example to copy when writing an adapter for a codec in another language.

Runs under both interpreters: json, binascii, struct and sys only.
"""

import binascii
import json
import struct
import sys


def from_tagged(value):
    """The msgpack value of a tagged JSON value (v1.json "format" "body")."""
    if isinstance(value, list):
        return [from_tagged(item) for item in value]
    if isinstance(value, dict):
        if "bin" in value:
            return binascii.unhexlify(value["bin"])
        if "float" in value:
            return struct.unpack(">d", binascii.unhexlify(value["float"]))[0]
        out = {}
        for pair in value["map"]:
            out[from_tagged(pair[0])] = from_tagged(pair[1])
        return out
    return value


def to_tagged(value):
    """The tagged JSON form of a decoded msgpack value (map pairs in any order)."""
    if isinstance(value, list):
        return [to_tagged(item) for item in value]
    if isinstance(value, dict):
        return {"map": [[to_tagged(k), to_tagged(v)] for k, v in value.items()]}
    if isinstance(value, bytes):
        return {"bin": hexof(value)}
    if isinstance(value, float):
        return {"float": hexof(struct.pack(">d", value))}
    return value


def hexof(data):
    return binascii.hexlify(data).decode()


def key_arg(text):
    if text is None:
        return None
    if text == "unknown":
        return lambda node_id: None
    return binascii.unhexlify(text)


def _error(exc):
    return {"error": {"class": type(exc).__name__, "field": exc.field, "message": str(exc)}}


def frame_fields(frame):
    """A parsed Frame as the exchange's "frame" object."""
    return {
        "version": frame.version, "type": frame.type, "flags": frame.flags,
        "node_id": frame.node_id, "boot": frame.boot, "seq": frame.seq,
        "tag": hexof(frame.tag) if frame.tag is not None else None,
        "verified": frame.verified, "body": to_tagged(frame.body),
    }


def decode(protocol, wire, key):
    """Every item of ``wire`` as a stream that then ends: {"frame": ...} or {"error": ...}."""
    deframer = protocol.Deframer()
    items = []
    for item in deframer.feed(wire) + deframer.end():
        if isinstance(item, protocol.ProtocolError):
            items.append(_error(item))
            continue
        try:
            items.append({"frame": frame_fields(protocol.parse_frame(item, key))})
        except protocol.ProtocolError as exc:
            items.append(_error(exc))
    return {"items": items}


def encode(protocol, fields, key):
    frame = protocol.Frame(fields["type"], fields["node_id"], fields["boot"], fields["seq"],
                           from_tagged(fields["body"]), fields["flags"], fields["version"])
    try:
        return {"wire": hexof(frame.encode(key))}
    except protocol.ProtocolError as exc:
        return _error(exc)


def answer(protocol, request):
    """The answer to one request line (already parsed)."""
    try:
        key = key_arg(request.get("key"))
        if request["op"] == "decode":
            return decode(protocol, binascii.unhexlify(request["wire"]), key)
        if request["op"] == "encode":
            return encode(protocol, request["frame"], key)
        return {"crash": "unknown op %r" % request["op"]}
    except Exception as exc:  # reported, so one bad request does not end the session
        return {"crash": "%s: %s" % (type(exc).__name__, exc)}


def main(argv):
    if len(argv) > 1:
        sys.path.insert(0, argv[1])
    import streetsense.protocol as protocol

    while True:
        line = sys.stdin.readline()
        if not line:
            return
        if line.strip():
            sys.stdout.write(json.dumps(answer(protocol, json.loads(line))) + "\n")
            if hasattr(sys.stdout, "flush"):
                sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv)
