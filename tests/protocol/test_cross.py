"""Frames cross between the interpreters: CPython encodes, MicroPython decodes, and back."""

import binascii
import json
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from streetsense.protocol import (
    Deframer,
    Frame,
    MalformedBody,
    Oversize,
    ProtocolError,
    cobs,
    parse_frame,
)
from tests.protocol.protocol_helpers import from_tagged, same, to_tagged
from tests.protocol.protocol_strategies import KEYS_OR_NONE, frames

HERE = Path(__file__).resolve().parent
ADAPTER = HERE.parents[1] / "protocol" / "vectors" / "adapter.py"
pytestmark = pytest.mark.micropython

KEY = bytes(range(32))
CROSS = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


class Device:
    """The device codec under MicroPython: one long-lived conformance adapter process
    (protocol/vectors/adapter.py); ``ask`` sends a request, returns the answer."""

    def __init__(self, interpreter: str, mp_path: Path) -> None:
        self.proc = subprocess.Popen(
            [interpreter, str(ADAPTER), str(mp_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request, ensure_ascii=False).encode() + b"\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            assert self.proc.stderr is not None
            raise RuntimeError(f"the adapter died: {self.proc.stderr.read().decode()}")
        result: dict[str, Any] = json.loads(answer)
        assert "crash" not in result, result
        return result

    def decode(self, wire: bytes, key: bytes | None) -> dict[str, Any]:
        """The one item of ``wire``: {"frame": ...} or {"error": ...}."""
        answer = self.ask({"op": "decode", "wire": wire.hex(), "key": key.hex() if key else None})
        (item,) = answer["items"]
        return item  # type: ignore[no-any-return]

    def encode(self, fields: dict[str, Any], key: bytes | None) -> dict[str, Any]:
        return self.ask({"op": "encode", "frame": fields, "key": key.hex() if key else None})

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def device(micropython: str, mp_path: Path) -> Iterator[Device]:
    server = Device(micropython, mp_path)
    yield server
    server.close()


def encoded(frame: Frame, key: bytes | None) -> bytes:
    try:
        return frame.encode(key)
    except Oversize:
        assume(False)
        raise


def fields_of(frame: Frame) -> dict[str, Any]:
    return {"type": frame.type, "node_id": frame.node_id, "boot": frame.boot, "seq": frame.seq,
            "flags": frame.flags, "version": frame.version, "body": to_tagged(frame.body)}


def test_adapter_runs_micropython(device: Device) -> None:
    """The adapter is really MicroPython decoding (not CPython by accident)."""
    wire = Frame(0x10, 1, 2, 3, {1: 2, 2: 3}).encode()
    assert from_tagged(device.decode(wire, None)["frame"]["body"]) == {1: 2, 2: 3}
    probe = subprocess.run([device.proc.args[0], "-c",  # type: ignore[index]
                            "import sys; print(sys.implementation.name)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "micropython"


@CROSS
@given(frame=frames(), key=KEYS_OR_NONE)
def test_cpython_to_micropython(device: Device, frame: Frame, key: bytes | None) -> None:
    """A frame encoded by CPython decodes on MicroPython to the same fields and re-encodes alike."""
    wire = encoded(frame, key)
    got = device.decode(wire, key)["frame"]
    assert (got["version"], got["type"], got["flags"], got["node_id"], got["boot"],
            got["seq"]) == (frame.version, frame.type, frame.flags, frame.node_id,
                            frame.boot, frame.seq)
    assert got["verified"] is (key is not None)
    assert got["tag"] == (frame.tag.hex() if key else None)
    assert same(from_tagged(got["body"]), from_tagged(to_tagged(frame.body)))
    assert device.encode({**got, "body": got["body"]}, key) == {"wire": wire.hex()}


@CROSS
@given(frame=frames(), key=KEYS_OR_NONE)
def test_micropython_to_cpython(device: Device, frame: Frame, key: bytes | None) -> None:
    """A frame encoded by MicroPython is byte-identical to CPython's and parses under CPython."""
    answer = device.encode(fields_of(frame), key)
    if "error" in answer:
        assert answer["error"]["class"] == "Oversize", answer
        with pytest.raises(Oversize):
            frame.encode(key)
        return
    wire = bytes.fromhex(answer["wire"])
    assert wire == encoded(frame, key)
    (item,) = Deframer().feed(wire)
    assert isinstance(item, bytes)
    parsed = parse_frame(item, key)
    assert parsed.verified is (key is not None)
    assert same(parsed.body, from_tagged(to_tagged(frame.body)))
    assert parsed.encode(key) == wire


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """Decoded frame bytes: pure noise, or a valid frame with bytes changed and the CRC fixed."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=600))
    raw = bytearray(encoded(draw(frames()), draw(st.sampled_from([None, KEY]))))
    raw = bytearray(cobs.decode(bytes(raw[:-1])))
    for _ in range(draw(st.integers(1, 3))):
        raw[draw(st.integers(0, len(raw) - 5))] = draw(st.integers(0, 255))
    body = bytes(raw[:-4])
    return body + struct.pack(">I", binascii.crc32(body))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=damaged(), key=st.sampled_from([None, KEY]))
def test_damaged_frames_fail_alike(device: Device, raw: bytes, key: bytes | None) -> None:
    """Noise or a tampered frame gets the same verdict (frame, or error class and field) on both."""
    wire = cobs.encode(raw) + b"\x00"
    got = device.decode(wire, key)
    (item,) = Deframer().feed(wire)
    try:
        if isinstance(item, Exception):
            raise item
        parsed = parse_frame(item, key)
    except ProtocolError as exc:
        assert got.get("error", {}).get("class") == type(exc).__name__, got
        assert got["error"]["field"] == exc.field, got
    else:
        assert same(from_tagged(got["frame"]["body"]), parsed.body), got
        try:
            again: dict[str, Any] = {"wire": parsed.encode(key).hex()}
        except ProtocolError as exc:
            again = {"error": {"class": type(exc).__name__, "field": exc.field}}
        answer = device.encode(got["frame"], key)
        answer.get("error", {}).pop("message", None)
        assert answer == again


def body_frame(body: bytes, mtype: int = 0x11) -> bytes:
    """Decoded frame bytes (unsigned, CRC set) around hand-made body bytes."""
    raw = struct.pack(">BBBIII", 0x10, mtype, 0x04, 1, 2, 3) + body
    return raw + struct.pack(">I", binascii.crc32(raw))


def test_float_body_decodes_but_does_not_reencode(device: Device) -> None:
    """A float under an unknown key parses on both sides and neither side will encode it again."""
    raw = body_frame(b"\x82\x01\x05\x09\xcb" + struct.pack(">d", 0.5))
    parsed = parse_frame(raw)
    assert parsed.body == {1: 5, 9: 0.5}
    with pytest.raises(MalformedBody):
        parsed.encode()
    got = device.decode(cobs.encode(raw) + b"\x00", None)["frame"]
    assert from_tagged(got["body"]) == {1: 5, 9: 0.5}
    assert device.encode(got, None)["error"]["class"] == "MalformedBody"


@pytest.mark.parametrize("text", [
    b"\xf4\x90\x80\x80",  # above U+10FFFF (found by test_damaged_frames_fail_alike)
    b"\xed\xa0\x80",  # a surrogate
    b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80",  # overlong forms
    b"\xf5\x80\x80\x80", b"\xe2\x82",  # no such lead byte; cut short
])
def test_invalid_utf8_strings_fail_alike(device: Device, text: bytes) -> None:
    """A string that is not UTF-8 by CPython's (RFC 3629) rules is a MalformedBody on both."""
    raw = body_frame(bytes([0x82, 0x01, 0x05, 0x09, 0xA0 | len(text)]) + text)  # {1: 5, 9: text}
    with pytest.raises(MalformedBody, match=r"UTF-8|utf-8"):
        parse_frame(raw)
    error = device.decode(cobs.encode(raw) + b"\x00", None)["error"]
    assert error["class"] == "MalformedBody" and "UTF-8" in error["message"], error


def test_valid_utf8_up_to_u10ffff_decodes_alike(device: Device) -> None:
    """Every valid UTF-8 length, up to U+10FFFF, decodes to the same text on both."""
    text = "Tràng Tiền \u07ff\u0800\ud7ff\ue000\uffff\U00010000\U0010ffff".encode()
    raw = body_frame(bytes([0x82, 0x01, 0x05, 0x09, 0xD9, len(text)]) + text)
    got = device.decode(cobs.encode(raw) + b"\x00", None)["frame"]
    assert from_tagged(got["body"]) == parse_frame(raw).body


def test_first_bad_field_is_the_same(device: Device) -> None:
    """With several wrong fields, both interpreters name the same one (the lowest key)."""
    raw = body_frame(b"\x86\x01\xa0\x02\xa0\x03\x90\x04\x90\x05\x00\x06\x00", mtype=0x03)
    with pytest.raises(MalformedBody) as info:
        parse_frame(raw)
    error = device.decode(cobs.encode(raw) + b"\x00", None)["error"]
    assert (error["class"], error["field"]) == ("MalformedBody", info.value.field)


def test_bin_capability_beside_an_empty_kind_decodes_without_a_warning(
        micropython: str, mp_path: Path) -> None:
    """A HELLO with an empty kind and a bin item among its capabilities: both interpreters
    refuse the kind, and MicroPython prints nothing (it warns on bytes == str, which the
    factory-state check did; the 1,000,000-input fuzz found it, input 265504)."""
    wire = bytes.fromhex("031001010101010101010201010108018701a0cc02db01010a05302e312e3003"
                         "9201100491a56c6f6f7073050106010791c405c30f4e2300")
    server = Device(micropython, mp_path)
    try:
        item = server.decode(wire, None)
    finally:
        assert server.proc.stdin is not None and server.proc.stderr is not None
        server.proc.stdin.close()
        server.proc.wait(timeout=10)
        warnings = server.proc.stderr.read().decode()
    assert (item["error"]["class"], item["error"]["field"]) == ("MalformedBody", "kind"), item
    with pytest.raises(MalformedBody, match="kind"):
        parse_frame(cobs.decode(wire[:-1]), None)
    assert warnings == ""
