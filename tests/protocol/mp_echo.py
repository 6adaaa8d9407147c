"""Line-protocol codec server for the cross-interpreter tests (MicroPython or CPython).

Usage: micropython mp_echo.py [DIR_ON_SYS_PATH]
Reads one request per line on stdin, writes one JSON line per request on stdout:

  decode <keyhex|-> <wirehex>
      Deframe and parse the wire bytes; answers {"ok": true, "frame": {...},
      "body_hex", "reencoded" (with the same key), "reencode_error"} (the two hex
      values are null and reencode_error a class name when the decoded body cannot
      be encoded again, e.g. it holds a float) or
      {"ok": false, "error": class name, "field": field}.
  encode <json spec>
      spec: {"type", "node_id", "boot", "seq", "flags", "version", "body" (tagged
      JSON, see v1.json "format"), "key": hex or null}; answers {"ok": true,
      "wire": hex} or {"ok": false, ...}.

An empty line or EOF ends the process. Uses only json, binascii, sys
and mp_common.py (beside this script).
"""

import binascii
import json
import sys

if len(sys.argv) > 1:
    sys.path.insert(0, sys.argv[1])

from mp_common import from_tagged, hexof, to_tagged

from streetsense.protocol import Deframer, Frame, ProtocolError, parse_frame
from streetsense.protocol.body import packb


def failure(exc):
    return {"ok": False, "error": type(exc).__name__, "field": getattr(exc, "field", None),
            "message": str(exc)}


def decode(key_hex, wire_hex):
    key = None if key_hex == "-" else binascii.unhexlify(key_hex)
    items = Deframer().feed(binascii.unhexlify(wire_hex))
    if len(items) != 1:
        return {"ok": False, "error": "items", "field": None, "message": str(len(items))}
    if isinstance(items[0], ProtocolError):
        return failure(items[0])
    frame = parse_frame(items[0], key)
    try:
        body_hex = hexof(packb(frame.body))
        reencoded = hexof(frame.encode(key))
    except ProtocolError as exc:  # a body that decodes but cannot be encoded (a float)
        body_hex = reencoded = None
        reencode_error = type(exc).__name__
    else:
        reencode_error = None
    return {
        "ok": True,
        "frame": {
            "version": frame.version, "type": frame.type, "flags": frame.flags,
            "node_id": frame.node_id, "boot": frame.boot, "seq": frame.seq,
            "tag": hexof(frame.tag) if frame.tag is not None else None,
            "verified": frame.verified, "body": to_tagged(frame.body),
        },
        "body_hex": body_hex,
        "reencoded": reencoded,
        "reencode_error": reencode_error,
    }


def encode(spec):
    key = spec.get("key")
    frame = Frame(spec["type"], spec["node_id"], spec["boot"], spec["seq"],
                  from_tagged(spec["body"]), spec.get("flags", 0), spec.get("version", 0x10))
    wire = frame.encode(binascii.unhexlify(key) if key else None)
    return {"ok": True, "wire": hexof(wire)}


def handle(line):
    command, _, rest = line.partition(" ")
    try:
        if command == "decode":
            key_hex, _, wire_hex = rest.partition(" ")
            return decode(key_hex, wire_hex)
        if command == "encode":
            return encode(json.loads(rest))
        return {"ok": False, "error": "command", "field": None, "message": command}
    except ProtocolError as exc:
        return failure(exc)
    except Exception as exc:  # reported, so one bad request does not end the session
        result = failure(exc)
        result["crash"] = True
        return result


def main():
    while True:
        line = sys.stdin.readline()
        if not line or not line.strip():
            break
        sys.stdout.write(json.dumps(handle(line.strip())) + "\n")
        if hasattr(sys.stdout, "flush"):
            sys.stdout.flush()


main()
