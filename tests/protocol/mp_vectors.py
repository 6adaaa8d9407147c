"""Run the golden vectors (protocol/vectors/v1.json) through the protocol package.

Usage: micropython mp_vectors.py V1_JSON [DIR_ON_SYS_PATH]
(also runs under CPython: python mp_vectors.py V1_JSON).

DIR_ON_SYS_PATH, when given, is put first on sys.path; it must hold
streetsense/__init__.py and streetsense/protocol/. Prints one JSON line per case,
{"name", "ok", "detail"}, then {"summary": true, "total", "passed", "failed"}.
Exit status 0 when every case passed, 1 otherwise. Uses only json, binascii, sys
and mp_common.py (beside this script).
"""

import binascii
import json
import sys

from mp_common import from_tagged, hexof


def key_arg(key):
    if key is None:
        return None
    if key == "unknown":
        return lambda node_id: None
    return binascii.unhexlify(key)


def run_case(case, proto):
    """Return None when the case passes, else a string saying what differs."""
    key = key_arg(case["key"])
    wire = binascii.unhexlify(case["wire"])
    items = proto.Deframer().feed(wire)
    if len(items) != 1:
        return f"deframer gave {len(items)} items, expected 1"
    item = items[0]
    try:
        if isinstance(item, proto.ProtocolError):
            raise item
        frame = proto.parse_frame(item, key)
    except proto.ProtocolError as exc:
        if "error" not in case:
            return f"unexpected {type(exc).__name__}: {exc}"
        want = case["error"]
        got = type(exc).__name__
        if got != want["class"] or exc.field != want["field"]:
            return "got {} field {!r}, expected {} field {!r}".format(
                got, exc.field, want["class"], want["field"])
        return None
    if "error" in case:
        return "parsed, expected {}".format(case["error"]["class"])
    want = case["frame"]
    tag = hexof(frame.tag) if frame.tag is not None else None
    for name, got in (("version", frame.version), ("type", frame.type),
                      ("type_name", frame.type_name), ("flags", frame.flags),
                      ("node_id", frame.node_id), ("boot", frame.boot), ("seq", frame.seq),
                      ("tag", tag), ("verified", frame.verified)):
        if got != want[name]:
            return f"{name} is {got!r}, expected {want[name]!r}"
    body_hex = hexof(proto.packb(frame.body))
    if body_hex != want["body_hex"]:
        return "body packs to {}, expected {}".format(body_hex, want["body_hex"])
    if frame.body != from_tagged(want["body"]):
        return "body is {!r}, expected {!r}".format(frame.body, from_tagged(want["body"]))
    if case.get("reencode", True):
        again = frame.encode(key)
        if again != wire:
            return f"re-encoded to {hexof(again)}"
    return None


class _Proto:
    """The protocol names the runner uses, imported once."""

    def __init__(self):
        import streetsense.protocol as protocol
        from streetsense.protocol.body import packb

        self.Deframer = protocol.Deframer
        self.ProtocolError = protocol.ProtocolError
        self.parse_frame = protocol.parse_frame
        self.packb = packb


def main(argv):
    if len(argv) > 2:
        sys.path.insert(0, argv[2])
    with open(argv[1]) as f:
        doc = json.load(f)
    proto = _Proto()
    passed = 0
    failed = 0
    for case in doc["cases"]:
        try:
            detail = run_case(case, proto)
        except Exception as exc:  # a crash is a failed case, not a failed run
            detail = f"crashed: {type(exc).__name__}: {exc}"
        if detail is None:
            passed += 1
        else:
            failed += 1
        print(json.dumps({"name": case["name"], "ok": detail is None, "detail": detail or ""}))
    print(json.dumps({"summary": True, "total": passed + failed, "passed": passed,
                      "failed": failed, "implementation": sys.implementation.name}))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
