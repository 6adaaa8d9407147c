"""Hypothesis strategies for protocol v1 bodies and frames (shared by the protocol tests)."""

from typing import Any

from hypothesis import strategies as st

from streetsense.protocol import FLAG_ACK_REQ, Frame
from streetsense.protocol import messages as m

U32 = st.integers(0, 0xFFFFFFFF)
# Every msgpack integer width, weighted towards the boundaries.
INTS = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from([0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1,
                     -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1,
                     -(2**63)]),
    st.integers(-40, 300),
)
TEXT = st.text(max_size=24)
KEYS = st.one_of(st.integers(-(2**63), 2**64 - 1), st.text(max_size=8))


def values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Any value the body codec carries: nil, bool, int, str, bin, arrays, maps (int/str keys)."""
    scalars = st.one_of(st.none(), st.booleans(), INTS, TEXT, st.binary(max_size=24))
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(KEYS, inner, max_size=4),
        ),
        max_leaves=max_leaves,
    )


NAMED_MAPS = st.dictionaries(st.text(max_size=8), values(4), max_size=3)  # settings, args, data
STR_INT_MAPS = st.dictionaries(st.text(min_size=1, max_size=8), INTS, max_size=3)
STR_STR_MAPS = st.dictionaries(st.text(min_size=1, max_size=8), TEXT, max_size=3)
TS = st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 2**32))
CLOCK = st.sampled_from([m.CLOCK_UTC, m.CLOCK_UPTIME])
READING = st.one_of(
    st.tuples(U32, st.integers(-9, 9), INTS).map(list),
    st.tuples(U32, st.integers(-9, 9), INTS, INTS, INTS, U32).map(list),
)


def _body(required: dict[int, Any], optional: dict[int, Any]) -> st.SearchStrategy[dict]:
    """A map with the required keys, any subset of the optional ones and maybe unknown keys."""
    extra = st.dictionaries(
        st.one_of(st.integers(20, 300), st.text(min_size=1, max_size=6)), values(3), max_size=2
    )
    return st.builds(
        lambda req, opt, ext: {**ext, **req, **opt},
        st.fixed_dictionaries(required),
        st.fixed_dictionaries({}, optional=optional),
        extra,
    )


BODIES: dict[int, st.SearchStrategy[Any]] = {
    m.HELLO: _body(  # key 6 (boot) is set to the header's boot by frames()
        {1: st.text(min_size=1, max_size=24), 2: TEXT,
         3: st.lists(st.integers(0, 15), min_size=2, max_size=2), 4: st.lists(TEXT, max_size=3),
         5: INTS, 6: U32},
        {7: st.lists(TEXT, max_size=3), 8: INTS},
    ),
    m.DATA: _body({1: TS, 2: CLOCK, 4: st.lists(READING, max_size=5)}, {3: INTS}),
    m.EVENT: _body({1: TS, 2: CLOCK, 3: st.just(m.EVENT_VEHICLE)}, {4: STR_INT_MAPS}),
    m.STATUS: _body({1: INTS, 2: INTS, 3: STR_INT_MAPS},
                    {4: STR_STR_MAPS, 5: TS, 6: CLOCK}),
    m.LOG: _body({1: st.integers(0, 7), 2: st.text(max_size=120)}, {3: TS, 4: CLOCK}),
    m.RESULT: _body({1: INTS, 2: INTS}, {3: TEXT, 4: NAMED_MAPS}),
    m.ACK: _body({1: U32, 2: U32}, {}),
    m.TIME: _body({1: st.integers(0, 2**63 - 1)}, {}),
    m.CONFIG: _body({1: INTS, 2: NAMED_MAPS}, {}),
    m.COMMAND: _body({1: INTS, 2: TEXT}, {3: NAMED_MAPS}),
    m.OTA_STATUS: _body({1: INTS, 2: st.integers(0, 5), 3: U32, 4: TEXT}, {5: TEXT}),
    m.OTA_BEGIN: _body({1: INTS, 2: TEXT, 3: st.integers(1000, 2**32 - 1),
                        4: st.binary(min_size=32, max_size=32), 5: st.integers(1, 1000)}, {}),
    m.OTA_CHUNK: _body({1: INTS, 2: U32, 3: st.binary(min_size=1, max_size=448)}, {}),
}
UNKNOWN_TYPES = st.integers(0, 255).filter(lambda t: t not in m.SCHEMAS)


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    """A valid Frame of any message type (known or not), version 0x10..0x1F, any header."""
    mtype = draw(st.one_of(st.sampled_from(sorted(m.SCHEMAS)), UNKNOWN_TYPES))
    body = draw(BODIES[mtype]) if mtype in BODIES else draw(values())
    flags = 0 if mtype in m.DOWNLINK_TYPES else draw(st.sampled_from([0, FLAG_ACK_REQ]))
    version = draw(st.one_of(st.just(0x10), st.integers(0x10, 0x1F)))
    boot = draw(U32)
    if mtype == m.HELLO:
        body[6] = boot
    return Frame(mtype, draw(U32), boot, draw(U32), body, flags, version)


KEYS_OR_NONE = st.one_of(st.none(), st.just(bytes(range(32))),
                         st.binary(min_size=16, max_size=64))
