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
from protocol_helpers import from_tagged, same, to_tagged
from protocol_strategies import KEYS_OR_NONE, frames

from streetsense.protocol import (
    Deframer,
    Frame,
    MalformedBody,
    Oversize,
    ProtocolError,
    cobs,
    parse_frame,
)
from streetsense.protocol.body import packb

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.micropython

KEY = bytes(range(32))
CROSS = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


class Echo:
    """One long-lived mp_echo.py process; ``ask`` sends a request line, returns the answer."""

    def __init__(self, interpreter: str, mp_path: Path) -> None:
        self.proc = subprocess.Popen(
            [interpreter, str(HERE / "mp_echo.py"), str(mp_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    def ask(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line.encode("utf-8") + b"\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            assert self.proc.stderr is not None
            raise RuntimeError(f"mp_echo died: {self.proc.stderr.read().decode()}")
        result: dict[str, Any] = json.loads(answer)
        assert not result.get("crash"), result
        return result

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def echo(micropython: str, mp_path: Path) -> Iterator[Echo]:
    server = Echo(micropython, mp_path)
    yield server
    server.close()


def encoded(frame: Frame, key: bytes | None) -> bytes:
    try:
        return frame.encode(key)
    except Oversize:
        assume(False)
        raise


def test_echo_runs_micropython(echo: Echo) -> None:
    """The echo server is really MicroPython decoding (not CPython by accident)."""
    wire = Frame(0x10, 1, 2, 3, {1: 2, 2: 3}).encode()
    answer = echo.ask("decode - " + wire.hex())
    assert answer["ok"] and answer["reencoded"] == wire.hex()
    probe = subprocess.run([echo.proc.args[0], "-c",  # type: ignore[index]
                            "import sys; print(sys.implementation.name)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "micropython"


@CROSS
@given(frame=frames(), key=KEYS_OR_NONE)
def test_cpython_to_micropython(echo: Echo, frame: Frame, key: bytes | None) -> None:
    """A frame encoded by CPython decodes on MicroPython to the same fields and re-encodes alike."""
    wire = encoded(frame, key)
    answer = echo.ask("decode {} {}".format(key.hex() if key else "-", wire.hex()))
    assert answer["ok"], answer
    got = answer["frame"]
    assert (got["version"], got["type"], got["flags"], got["node_id"], got["boot"],
            got["seq"]) == (frame.version, frame.type, frame.flags, frame.node_id,
                            frame.boot, frame.seq)
    assert got["verified"] is (key is not None)
    assert got["tag"] == (frame.tag.hex() if key else None)
    assert same(from_tagged(got["body"]), from_tagged(to_tagged(frame.body)))
    assert answer["body_hex"] == packb(frame.body).hex()
    assert answer["reencoded"] == wire.hex()


@CROSS
@given(frame=frames(), key=KEYS_OR_NONE)
def test_micropython_to_cpython(echo: Echo, frame: Frame, key: bytes | None) -> None:
    """A frame encoded by MicroPython is byte-identical to CPython's and parses under CPython."""
    spec = {"type": frame.type, "node_id": frame.node_id, "boot": frame.boot,
            "seq": frame.seq, "flags": frame.flags, "version": frame.version,
            "body": to_tagged(frame.body), "key": key.hex() if key else None}
    answer = echo.ask("encode " + json.dumps(spec, ensure_ascii=False))
    if not answer["ok"]:
        assert answer["error"] == "Oversize", answer
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
def test_damaged_frames_fail_alike(echo: Echo, raw: bytes, key: bytes | None) -> None:
    """Noise or a tampered frame gets the same verdict (frame, or error class and field) on both."""
    wire = cobs.encode(raw) + b"\x00"
    answer = echo.ask("decode {} {}".format(key.hex() if key else "-", wire.hex()))
    (item,) = Deframer().feed(wire)
    try:
        if isinstance(item, Exception):
            raise item
        parsed = parse_frame(item, key)
    except ProtocolError as exc:
        assert not answer["ok"], answer
        assert answer["error"] == type(exc).__name__
        if not isinstance(exc, MalformedBody):
            # A damaged body can hold several faults (a bad key, then a truncation): the
            # streaming device codec stops at the first, msgpack at the parse failure.
            # Single faults name the same field: test_first_bad_field_is_the_same and
            # test_container_map_key_field_agrees pin that.
            assert answer["field"] == exc.field, answer
    else:
        assert answer["ok"], answer
        try:
            body_hex = packb(parsed.body).hex()
        except MalformedBody:
            assert answer["reencode_error"] == "MalformedBody", answer
        else:
            assert answer["body_hex"] == body_hex


def test_float_body_decodes_but_does_not_reencode(echo: Echo) -> None:
    """A float under an unknown key parses on both sides and neither side will encode it again."""
    body = b"\x82\x01\x05\x09\xcb" + struct.pack(">d", 0.5)
    raw = struct.pack(">BBBIII", 0x10, 0x11, 0x04, 1, 2, 3) + body
    raw += struct.pack(">I", binascii.crc32(raw))
    wire = cobs.encode(raw) + b"\x00"
    parsed = parse_frame(raw)
    assert parsed.body == {1: 5, 9: 0.5}
    with pytest.raises(MalformedBody):
        parsed.encode()
    answer = echo.ask("decode - " + wire.hex())
    assert answer["ok"] and from_tagged(answer["frame"]["body"]) == {1: 5, 9: 0.5}
    assert answer["reencode_error"] == "MalformedBody"


@pytest.mark.parametrize("text", [
    b"\xf4\x90\x80\x80",  # above U+10FFFF (found by test_damaged_frames_fail_alike)
    b"\xed\xa0\x80",  # a surrogate
    b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80",  # overlong forms
    b"\xf5\x80\x80\x80", b"\xe2\x82",  # no such lead byte; cut short
])
def test_invalid_utf8_strings_fail_alike(echo: Echo, text: bytes) -> None:
    """A string that is not UTF-8 by CPython's (RFC 3629) rules is a MalformedBody on both."""
    body = bytes([0x82, 0x01, 0x05, 0x09, 0xA0 | len(text)]) + text  # TIME {1: 5, 9: text}
    raw = struct.pack(">BBBIII", 0x10, 0x11, 0x04, 1, 2, 3) + body
    raw += struct.pack(">I", binascii.crc32(raw))
    with pytest.raises(MalformedBody, match=r"UTF-8|utf-8"):
        parse_frame(raw)
    answer = echo.ask("decode - " + (cobs.encode(raw) + b"\x00").hex())
    assert (answer["ok"], answer["error"]) == (False, "MalformedBody"), answer
    assert "UTF-8" in answer["message"], answer


def test_valid_utf8_up_to_u10ffff_decodes_alike(echo: Echo) -> None:
    text = "Tràng Tiền \u07ff\u0800\ud7ff\ue000\uffff\U00010000\U0010ffff".encode()
    body = bytes([0x82, 0x01, 0x05, 0x09, 0xD9, len(text)]) + text
    raw = struct.pack(">BBBIII", 0x10, 0x11, 0x04, 1, 2, 3) + body
    raw += struct.pack(">I", binascii.crc32(raw))
    answer = echo.ask("decode - " + (cobs.encode(raw) + b"\x00").hex())
    assert answer["ok"], answer
    assert from_tagged(answer["frame"]["body"]) == parse_frame(raw).body


def test_first_bad_field_is_the_same(echo: Echo) -> None:
    """With several wrong fields, both interpreters name the same one (the lowest key)."""
    body = b"\x86\x01\xa0\x02\xa0\x03\x90\x04\x90\x05\x00\x06\x00"
    raw = struct.pack(">BBBIII", 0x10, 0x03, 0, 0, 0, 0) + body
    raw += struct.pack(">I", binascii.crc32(raw))
    with pytest.raises(MalformedBody) as info:
        parse_frame(raw)
    answer = echo.ask("decode - " + (cobs.encode(raw) + b"\x00").hex())
    assert (answer["error"], answer["field"]) == ("MalformedBody", info.value.field)
