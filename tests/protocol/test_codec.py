"""COBS and the msgpack body codecs: round trips, known vectors, agreement with msgpack."""

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streetsense.protocol import (
    Frame,
    MalformedBody,
    MalformedFrame,
    UnknownNode,
    cobs,
    mpack,
    parse_frame,
)
from streetsense.protocol import body as cpython_body
from tests.protocol.protocol_helpers import same
from tests.protocol.protocol_strategies import values

RUN_254 = bytes(range(1, 255))  # 254 non-zero bytes: exactly one full 0xFF block

# (decoded, encoded without delimiter): the Wikipedia COBS examples.
COBS_VECTORS = [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 256)), b"\xff" + RUN_254 + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]
# Data ending in a full 254-byte run: this encoder closes the run and opens an empty
# last block (a trailing 0x01), as in Cheshire & Baker's reference code; the shortest
# form (Wikipedia's) omits it. Both decode to the same bytes.
COBS_TRAILING_RUN = [
    (RUN_254, b"\xff" + RUN_254 + b"\x01", b"\xff" + RUN_254),
    (b"\x00" + RUN_254, b"\x01\xff" + RUN_254 + b"\x01", b"\x01\xff" + RUN_254),
]


def canonical(obj: Any) -> Any:
    """Maps rebuilt in canonical key order (ints ascending, then strs by UTF-8), independently."""
    if isinstance(obj, dict):
        ints = sorted(k for k in obj if isinstance(k, int))
        strs = sorted((k for k in obj if isinstance(k, str)), key=lambda k: k.encode())
        return {k: canonical(obj[k]) for k in ints + strs}
    if isinstance(obj, list):
        return [canonical(v) for v in obj]
    return obj


def reference_packb(obj: Any) -> bytes:
    return msgpack.packb(canonical(obj), use_bin_type=True)


@pytest.mark.parametrize(("decoded", "encoded"), COBS_VECTORS)
def test_cobs_known_vectors(decoded: bytes, encoded: bytes) -> None:
    """COBS encodes the textbook examples (incl. 254/255-byte runs) to the textbook bytes."""
    assert cobs.encode(decoded) == encoded
    assert cobs.decode(encoded) == decoded


@pytest.mark.parametrize(("decoded", "encoded", "shortest"), COBS_TRAILING_RUN)
def test_cobs_trailing_full_run(decoded: bytes, encoded: bytes, shortest: bytes) -> None:
    """Data ending in a 254-byte run encodes with a trailing empty block; both forms decode."""
    assert cobs.encode(decoded) == encoded
    assert cobs.decode(encoded) == decoded
    assert cobs.decode(shortest) == decoded


@settings(max_examples=200)
@given(data=st.one_of(st.binary(max_size=1100),
                      st.lists(st.sampled_from([b"\x00", RUN_254, b"\x07", b"\x01" * 253]),
                               max_size=8).map(b"".join)))
def test_cobs_round_trip(data: bytes) -> None:
    """decode(encode(x)) == x; the encoding has no 0x00 and at most 1 + len/254 extra bytes."""
    enc = cobs.encode(data)
    assert b"\x00" not in enc
    assert len(enc) <= len(data) + 1 + len(data) // 254
    assert cobs.decode(enc) == data
    assert cobs.encode_delimited(data) == enc + b"\x00"


@pytest.mark.parametrize(("data", "position"), [
    (b"\x00", 0), (b"\x02\x11\x00", 2), (b"\x01\x00\x01", 1),
])
def test_cobs_zero_code_byte(data: bytes, position: int) -> None:
    """A 0x00 where a COBS code byte belongs is MalformedFrame (field cobs, value its index)."""
    with pytest.raises(MalformedFrame) as info:
        cobs.decode(data)
    assert (info.value.field, info.value.value) == ("cobs", position)


def test_cobs_zero_inside_block() -> None:
    """A 0x00 among a block's data bytes is MalformedFrame, not silently decoded."""
    with pytest.raises(MalformedFrame):
        cobs.decode(b"\x03\x11\x00\x01")


@pytest.mark.parametrize(
    "data", [b"\x05\x11\x22", b"\x02", b"\x01\x03\x11", b"\xff" + b"\x01" * 10]
)
def test_cobs_block_overrun(data: bytes) -> None:
    """A COBS code byte pointing past the end of the frame is MalformedFrame (field cobs)."""
    with pytest.raises(MalformedFrame) as info:
        cobs.decode(data)
    assert info.value.field == "cobs"


@settings(max_examples=200)
@given(obj=values(12))
def test_mpack_bytes_match_msgpack(obj: Any) -> None:
    """mpack.packb writes exactly msgpack's bytes (maps in canonical order), as does body.packb."""
    expected = reference_packb(obj)
    assert mpack.packb(obj) == expected
    assert cpython_body.packb(obj) == expected


@settings(max_examples=200)
@given(obj=values(12))
def test_mpack_decodes_like_msgpack(obj: Any) -> None:
    """mpack.unpackb gives what msgpack.unpackb gives, and body.unpackb agrees."""
    data = reference_packb(obj)
    expected = msgpack.unpackb(data, raw=False, strict_map_key=False)
    assert same(mpack.unpackb(data), expected)
    assert same(cpython_body.unpackb(data), expected)
    assert same(mpack.unpackb(data), canonical(obj))


@st.composite
def msgpack_like(draw: st.DrawFn) -> bytes:
    """Noise, or the msgpack of a value with a few bytes changed, cut or appended."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=64))
    data = bytearray(reference_packb(draw(values(8))))
    for _ in range(draw(st.integers(0, 3))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=3))


@settings(max_examples=300)
@given(data=msgpack_like())
def test_device_and_gateway_body_decoders_agree(data: bytes) -> None:
    """On any bytes mpack and the CPython body codec both return the same value or both fail."""
    results = []
    for decode in (mpack.unpackb, cpython_body.unpackb):
        try:
            results.append(("ok", decode(data)))
        except MalformedBody:
            results.append(("error", None))
    (kind_a, a), (kind_b, b) = results
    assert kind_a == kind_b
    assert same(a, b)


@pytest.mark.parametrize("data", [b"\x81\x80\x00", b"\x81\x90\x00"])
def test_container_map_key_field_agrees(data: bytes) -> None:
    """A map or array used as a map key is MalformedBody with the same field on both codecs."""
    fields = []
    for decode in (mpack.unpackb, cpython_body.unpackb):
        with pytest.raises(MalformedBody) as info:
            decode(data)
        fields.append(info.value.field)
    assert fields[0] == fields[1]


@pytest.mark.parametrize(("obj", "field"), [
    (1.5, "type"), ({1: 0.25}, "type"), ({1, 2}, "type"), (object(), "type"),
    (2**64, "int"), (-(2**63) - 1, "int"), ({True: 1}, "key"), ({b"k": 1}, "key"),
    ({None: 1}, "key"), ([[[[[[[[[[0]]]]]]]]]], "depth"),
])
def test_mpack_pack_errors(obj: Any, field: str) -> None:
    """Both encoders refuse floats, odd types, >64-bit ints, bad keys and deep nesting alike."""
    for pack in (mpack.packb, cpython_body.packb):
        with pytest.raises(MalformedBody) as info:
            pack(obj)
        assert info.value.field == field, pack


@pytest.mark.parametrize(("data", "field"), [
    (b"", "body"), (b"\xc1", "body"), (b"\x01\x02", "body"), (b"\xd4\x01\x00", "body"),
    (b"\xc7\x01\x05\x00", "body"), (b"\xa2\xc3\x28", "body"), (b"\xa5abc", "body"),
    (b"\xdc\xff\xff", "body"), (b"\x81\xc3\x00", "key"), (b"\x81\xc4\x01k\x00", "key"),
    (b"\x81\xcb" + b"\x00" * 8 + b"\x00", "key"), (b"\x91" * 9 + b"\x00", "depth"),
    (b"\xcd\x01", "body"), (b"\x92\x01", "body"),
])
def test_unpack_errors(data: bytes, field: str) -> None:
    """Both body decoders raise MalformedBody (same field) on bad msgpack, ext, bad keys, depth."""
    for decode in (mpack.unpackb, cpython_body.unpackb):
        with pytest.raises(MalformedBody) as info:
            decode(data)
        assert info.value.field == field, decode


def test_unpack_floats() -> None:
    """float32/float64 decode (the protocol never sends them, but a receiver does not choke)."""
    assert mpack.unpackb(b"\xca\x3f\xc0\x00\x00") == 1.5
    assert mpack.unpackb(b"\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00") == 1.5
    assert cpython_body.unpackb(b"\xca\x3f\xc0\x00\x00") == 1.5


def test_sort_keys_order() -> None:
    """Canonical key order is int keys ascending, then str keys by UTF-8 bytes (not code points)."""
    mapping = {"b": 0, 3: 0, "\uffff": 0, "\U0001f600": 0, -1: 0, "a": 0, 2**64 - 1: 0}
    keys = mpack.sort_keys(mapping)
    assert keys == [-1, 3, 2**64 - 1, "a", "b", "\uffff", "\U0001f600"]


@pytest.mark.parametrize("data", [b"\xd6\xff\x00\x00\x00\x01", b"\x91\xd4\x05\x00"])
def test_ext_types_rejected_by_both_codecs(data: bytes) -> None:
    """Ext types, the msgpack timestamp (-1) included, are MalformedBody on both codecs."""
    for decode in (mpack.unpackb, cpython_body.unpackb):
        with pytest.raises(MalformedBody):
            decode(data)


@pytest.mark.parametrize("data", [
    b"\x83\x01\x01\x02\x05\xc3\x09",  # ACK {1: 1, 2: 5, true: 9}: true == 1 in CPython
    b"\x83\x01\x01\x02\x05\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00\x09",  # 1.0 after key 1
    b"\x83\x00\x01\x02\x05\xc2\x09",  # false after key 0
    b"\x82\xca\x40\x00\x00\x00\x01\x02\x05",  # float32 2.0 before key 2
    b"\x81\x04\x81\xc3\x00",  # a bool key in a nested map
])
def test_bool_and_float_keys_rejected_even_when_colliding(data: bytes) -> None:
    """A bool or float map key is MalformedBody (key) on both codecs, even equal to an int key."""
    for decode in (mpack.unpackb, cpython_body.unpackb):
        with pytest.raises(MalformedBody) as info:
            decode(data)
        assert info.value.field == "key", decode


@pytest.mark.parametrize("size", [0, 15, 65])
def test_keys_outside_16_to_64_bytes_are_no_keys(size: int) -> None:
    """The encoder refuses such a key (ValueError); the parser treats it as none (UnknownNode)."""
    frame = Frame(0x05, 7, 1, 1, {1: 6, 2: "x"})
    with pytest.raises(ValueError, match="16 to 64 bytes"):
        frame.encode(bytes(size))
    raw = frame.to_bytes(bytes(16))
    for key in (bytes(size), lambda node_id: bytes(size)):
        with pytest.raises(UnknownNode) as info:
            parse_frame(raw, key)
        assert (info.value.field, info.value.value) == ("node_id", 7)
