"""Streaming Deframer: any input, any chunking; resynchronisation after garbage and overruns."""

import itertools
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from streetsense.protocol import (
    Deframer,
    Frame,
    NeedMoreBytes,
    Oversize,
    ProtocolError,
    cobs,
    parse_frame,
)
from streetsense.protocol.frame import MAX_ENCODED
from tests.protocol.protocol_strategies import frames

KEY = bytes(range(32))
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Byte streams biased towards the interesting parts: delimiters, long runs, real frames.
PIECES = st.one_of(
    st.binary(max_size=40),
    st.just(b"\x00"),
    st.integers(1, 700).map(lambda n: b"\x55" * n),
    frames().map(lambda f: _encode_or_empty(f)),
)
STREAMS = st.lists(PIECES, max_size=6).map(b"".join)


def _encode_or_empty(frame: Frame) -> bytes:
    try:
        return frame.encode(KEY)
    except Oversize:
        return b""


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at the (sorted, de-duplicated) positions ``cuts``."""
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def feed_all(chunks: list[bytes]) -> list[Any]:
    deframer = Deframer()
    out: list[Any] = []
    for chunk in chunks:
        out += deframer.feed(chunk)
    return out


def summary(items: list[Any]) -> list[Any]:
    """Items as comparable values: bytes stay, errors become (class, field).

    Not the value: an Oversize carries the length buffered when the limit was crossed,
    which depends on the chunk sizes.
    """
    return [item if isinstance(item, bytes) else (type(item).__name__, item.field)
            for item in items]


def valid_frame(frame: Frame, key: bytes | None) -> bytes:
    try:
        return frame.encode(key)
    except Oversize:
        assume(False)
        raise


@FAST
@given(data=STREAMS, cuts=st.lists(st.integers(0, 5000), max_size=8))
def test_only_bytes_or_protocol_errors(data: bytes, cuts: list[int]) -> None:
    """Any stream, any chunking: only bytes or ProtocolErrors; parsing them raises no other."""
    for item in feed_all(chunked(data, cuts)):
        assert isinstance(item, (bytes, ProtocolError)), item
        if isinstance(item, bytes):
            assert item and len(item) <= MAX_ENCODED
            for key in (None, KEY, lambda node_id: None, lambda node_id: KEY):
                try:
                    parse_frame(item, key)
                except ProtocolError:
                    pass


@FAST
@given(garbage=STREAMS, frame=frames(), key=st.sampled_from([None, KEY]),
       cuts=st.lists(st.integers(0, 5000), max_size=6))
def test_frame_after_garbage_is_recovered(garbage: bytes, frame: Frame, key: bytes | None,
                                          cuts: list[int]) -> None:
    """A valid frame after arbitrary garbage and a 0x00 is always the last item, intact."""
    wire = valid_frame(frame, key)
    items = feed_all(chunked(garbage + b"\x00" + wire, cuts))
    assert items and items[-1] == frame.to_bytes(key)
    parsed = parse_frame(items[-1], key)
    assert (parsed.type, parsed.node_id, parsed.boot, parsed.seq) == (
        frame.type, frame.node_id, frame.boot, frame.seq)
    assert parsed.body == frame.body


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=STREAMS.filter(lambda d: len(d) <= 1200))
def test_every_split_gives_the_same_items(data: bytes) -> None:
    """Splitting the stream at any one boundary, or byte by byte, changes nothing in the output."""
    whole = summary(feed_all([data]))
    for cut in range(len(data) + 1):
        assert summary(feed_all([data[:cut], data[cut:]])) == whole, cut
    assert summary(feed_all([data[i : i + 1] for i in range(len(data))])) == whole


@FAST
@given(run=st.binary(min_size=MAX_ENCODED + 1, max_size=3000).map(
           lambda b: b.replace(b"\x00", b"\x7e")),
       frame=frames(), cuts=st.lists(st.integers(0, 5000), max_size=8))
def test_oversize_run_reported_once_then_next_frame(run: bytes, frame: Frame,
                                                     cuts: list[int]) -> None:
    """A run longer than MAX_ENCODED without 0x00 gives one Oversize, then the next frame parses."""
    wire = valid_frame(frame, KEY)
    items = feed_all(chunked(run + b"\x00" + wire, cuts))
    assert len(items) == 2, items
    assert isinstance(items[0], Oversize) and items[0].field == "length"
    assert parse_frame(items[1], KEY).seq == frame.seq


def test_max_encoded_boundary() -> None:
    """A run of exactly MAX_ENCODED bytes is handed on; one byte more is Oversize."""
    (item,) = Deframer().feed(b"\x01" * MAX_ENCODED + b"\x00")
    assert item == b"\x00" * (MAX_ENCODED - 1)
    (item,) = Deframer().feed(b"\x01" * (MAX_ENCODED + 1) + b"\x00")
    assert isinstance(item, Oversize)


def test_delimiters_alone_yield_nothing() -> None:
    """Empty frames (consecutive 0x00) are skipped silently; a partial frame stays pending."""
    deframer = Deframer()
    assert deframer.feed(b"\x00\x00\x00") == []
    assert deframer.feed(b"\x03ab") == [] and deframer.pending == 3
    assert deframer.feed(b"\x00") == [b"ab"] and deframer.pending == 0


def test_end_of_stream_reports_the_cut_off_frame() -> None:
    """Bytes after the last 0x00 are never parsed: end() gives one NeedMoreBytes, then nothing."""
    wire = Frame(0x05, 1, 2, 3, {1: 6, 2: "x"}).encode()
    deframer = Deframer()
    assert deframer.feed(wire + wire[:-1]) == [cobs.decode(wire[:-1])]
    (cut,) = deframer.end()
    assert isinstance(cut, NeedMoreBytes)
    assert (cut.field, cut.value) == ("length", len(wire) - 1)
    assert deframer.end() == [] and deframer.pending == 0
    assert deframer.feed(wire) == [cobs.decode(wire[:-1])]  # afresh: the next frame is whole


def test_end_inside_an_oversize_run_adds_nothing() -> None:
    """An oversize run already reported: the end of the stream inside it reports nothing more."""
    deframer = Deframer()
    (error,) = deframer.feed(b"\x41" * (MAX_ENCODED + 1))
    assert isinstance(error, Oversize)
    assert deframer.end() == []
