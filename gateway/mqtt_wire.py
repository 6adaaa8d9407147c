"""MQTT 3.1.1 and 5.0 packets to and from bytes: the codec of the gateway's client, no I/O.

Only what a publishing client needs: CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK,
PINGREQ, PINGRESP, DISCONNECT. Section numbers are those of the OASIS standards "MQTT
Version 5.0" (2019) and "MQTT Version 3.1.1" (2014). ``Decoder.feed`` splits a byte stream
into packets; a malformed one raises `MalformedPacket` naming what is wrong (the connection
is then closed, as both standards require).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

__all__ = ["CONNACK", "DISCONNECT", "PINGREQ_BYTES", "PINGRESP", "PUBACK", "PUBLISH",
           "SUBACK", "Connect", "Decoder", "MalformedPacket", "Packet", "connack_reason",
           "encode_connect", "encode_disconnect", "encode_puback", "encode_publish",
           "encode_subscribe", "parse_connack", "parse_disconnect", "parse_puback",
           "parse_publish", "parse_suback", "publish_head", "reason_text", "topic_matches",
           "varint"]

# Control packet types, the high nibble of the first byte (5.0 §2.1.2, 3.1.1 §2.2.1).
CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14
PINGREQ_BYTES = b"\xc0\x00"  # 5.0 §3.12, 3.1.1 §3.12
MAX_REMAINING = 268_435_455  # four bytes of Variable Byte Integer (5.0 §1.5.5, 3.1.1 §2.2.3)

# Property identifiers and their types (5.0 §2.2.2.2, table 2-4) that this client reads or
# writes; any other identifier in a received packet is a protocol error (§2.2.2.2).
_BYTE, _TWO, _FOUR, _VARINT, _STRING, _BINARY, _PAIR = range(7)
_PROPERTY_TYPES = {
    0x01: _BYTE, 0x02: _FOUR, 0x03: _STRING, 0x08: _STRING, 0x09: _BINARY, 0x0B: _VARINT,
    0x11: _FOUR, 0x12: _STRING, 0x13: _TWO, 0x15: _STRING, 0x16: _BINARY, 0x17: _BYTE,
    0x18: _FOUR, 0x19: _BYTE, 0x1A: _STRING, 0x1C: _STRING, 0x1F: _STRING, 0x21: _TWO,
    0x22: _TWO, 0x23: _TWO, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _FOUR, 0x28: _BYTE,
    0x29: _BYTE, 0x2A: _BYTE}
CORRELATION_DATA = 0x09
ASSIGNED_CLIENT_ID = 0x12
SERVER_KEEP_ALIVE = 0x13
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS = 0x23
MAXIMUM_PACKET_SIZE = 0x27

# CONNACK return codes of 3.1.1 (§3.2.2.3) and the reason codes of 5.0 (§3.2.2.2) as text.
_CONNACK_311 = {1: "unacceptable protocol version", 2: "identifier rejected",
                3: "server unavailable", 4: "bad user name or password", 5: "not authorized"}
_REASONS_5 = {
    0x10: "no matching subscribers", 0x80: "unspecified error", 0x81: "malformed packet",
    0x82: "protocol error", 0x83: "implementation specific error",
    0x84: "unsupported protocol version", 0x85: "client identifier not valid",
    0x86: "bad user name or password", 0x87: "not authorized", 0x88: "server unavailable",
    0x89: "server busy", 0x8A: "banned", 0x8B: "server shutting down",
    0x8C: "bad authentication method", 0x8D: "keep alive timeout", 0x8E: "session taken over",
    0x8F: "topic filter invalid", 0x90: "topic name invalid", 0x91: "packet identifier in use",
    0x93: "receive maximum exceeded", 0x94: "topic alias invalid", 0x95: "packet too large",
    0x96: "message rate too high", 0x97: "quota exceeded", 0x98: "administrative action",
    0x99: "payload format invalid", 0x9A: "retain not supported", 0x9B: "QoS not supported",
    0x9C: "use another server", 0x9D: "server moved", 0x9E: "shared subscriptions not "
    "supported", 0x9F: "connection rate exceeded", 0xA0: "maximum connect time",
    0xA1: "subscription identifiers not supported", 0xA2: "wildcard subscriptions not "
    "supported"}


class MalformedPacket(Exception):
    """Bytes from the broker that break the standard; the connection must be closed."""


def reason_text(code: int) -> str:
    """A 5.0 reason code (§2.4) as words, e.g. ``0x87 not authorized``."""
    return f"0x{code:02X} {_REASONS_5.get(code, 'unknown reason')}"


def connack_reason(code: int, *, v5: bool) -> str:
    """Why a CONNACK refused the connection, in words."""
    if v5:
        return reason_text(code)
    return f"return code {code} {_CONNACK_311.get(code, 'unknown')}"


# ---- primitives (5.0 §1.5, 3.1.1 §1.5) --------------------------------------------------

def varint(value: int) -> bytes:
    """Variable Byte Integer (5.0 §1.5.5; 3.1.1 §2.2.3, the Remaining Length)."""
    if not 0 <= value <= MAX_REMAINING:
        raise ValueError(f"{value} does not fit a Variable Byte Integer")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def _string(text: str) -> bytes:
    """UTF-8 Encoded String: two-byte length, then the bytes (5.0 §1.5.4, 3.1.1 §1.5.3)."""
    return _binary(text.encode())


def _binary(data: bytes) -> bytes:
    """Binary Data: two-byte length, then the bytes (5.0 §1.5.6)."""
    if len(data) > 0xFFFF:
        raise ValueError(f"{len(data)} bytes do not fit a length-prefixed field")
    return struct.pack("!H", len(data)) + data


def _packet(first: int, body: bytes) -> bytes:
    """Fixed header (5.0 §2.1.1, 3.1.1 §2.2) in front of ``body``."""
    return bytes((first,)) + varint(len(body)) + body


def _properties(props: dict[int, Any]) -> bytes:
    """A property list with its length (5.0 §2.2.2); only the types this client sends."""
    out = bytearray()
    for ident, value in props.items():
        out += varint(ident)
        kind = _PROPERTY_TYPES[ident]
        if kind == _BYTE:
            out.append(value)
        elif kind == _TWO:
            out += struct.pack("!H", value)
        elif kind == _FOUR:
            out += struct.pack("!I", value)
        elif kind == _VARINT:
            out += varint(value)
        elif kind == _STRING:
            out += _string(value)
        elif kind == _BINARY:
            out += _binary(value)
        else:
            raise ValueError(f"property 0x{ident:02X} is not sent by this client")
    return varint(len(out)) + out


class _Reader:
    """Reads the fields of one packet's body; running past its end is `MalformedPacket`."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise MalformedPacket(f"{self.what} ends inside a field (byte {self.pos} of "
                                  f"{len(self.data)})")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def two(self) -> int:
        value: int = struct.unpack("!H", self.take(2))[0]
        return value

    def four(self) -> int:
        value: int = struct.unpack("!I", self.take(4))[0]
        return value

    def varint(self) -> int:
        value, shift = 0, 0
        for _ in range(4):
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise MalformedPacket(f"{self.what}: a Variable Byte Integer longer than 4 bytes")

    def binary(self) -> bytes:
        return self.take(self.two())

    def string(self) -> str:
        raw = self.binary()
        try:
            return raw.decode()
        except UnicodeDecodeError as exc:  # 5.0 §1.5.4: ill-formed UTF-8 is malformed
            raise MalformedPacket(f"{self.what}: a string that is not UTF-8") from exc

    def rest(self) -> bytes:
        chunk = self.data[self.pos:]
        self.pos = len(self.data)
        return chunk

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def properties(self) -> dict[int, Any]:
        """A property list (5.0 §2.2.2); User Properties are kept as a list of pairs."""
        end = self.varint() + self.pos
        if end > len(self.data):
            raise MalformedPacket(f"{self.what}: its properties run past its end")
        props: dict[int, Any] = {}
        while self.pos < end:
            ident = self.varint()
            kind = _PROPERTY_TYPES.get(ident)
            if kind is None:
                raise MalformedPacket(f"{self.what}: unknown property 0x{ident:02X}")
            value: Any
            if kind == _BYTE:
                value = self.byte()
            elif kind == _TWO:
                value = self.two()
            elif kind == _FOUR:
                value = self.four()
            elif kind == _VARINT:
                value = self.varint()
            elif kind == _STRING:
                value = self.string()
            elif kind == _BINARY:
                value = self.binary()
            else:
                props.setdefault(ident, []).append((self.string(), self.string()))
                continue
            props[ident] = value
        if self.pos != end:
            raise MalformedPacket(f"{self.what}: its properties run past their length")
        return props


# ---- packets out -----------------------------------------------------------------------

@dataclass(frozen=True)
class Connect:
    """What goes into CONNECT (5.0 §3.1, 3.1.1 §3.1); the Will is QoS 1."""

    client_id: str
    v5: bool = True
    keepalive_s: int = 30
    clean_start: bool = True
    username: str | None = None
    password: str | None = None
    will_topic: str | None = None
    will_payload: bytes = b""
    will_retain: bool = True


def encode_connect(c: Connect) -> bytes:
    """CONNECT: protocol name and level, flags, keep alive, (5.0) properties; then the
    client id, the Will, user name and password (5.0 §3.1.2-3.1.3, 3.1.1 §3.1.2-3.1.3)."""
    flags = 0x02 if c.clean_start else 0  # Clean Start (5.0 §3.1.2.4) / Session (3.1.1)
    if c.will_topic is not None:
        flags |= 0x04 | (1 << 3) | (0x20 if c.will_retain else 0)  # Will, QoS 1, Retain
    password = c.password if c.username is not None else None  # 3.1.1 §3.1.2.9
    if c.username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body = bytearray(_string("MQTT"))
    body += bytes((5 if c.v5 else 4, flags)) + struct.pack("!H", c.keepalive_s)
    if c.v5:
        body += _properties({})  # Session Expiry 0: the session ends with the connection
    body += _string(c.client_id)
    if c.will_topic is not None:
        if c.v5:
            body += _properties({})  # Will Properties (5.0 §3.1.3.2)
        body += _string(c.will_topic) + _binary(c.will_payload)
    if c.username is not None:
        body += _string(c.username)
    if password is not None:
        body += _binary(password.encode())
    return _packet(CONNECT << 4, bytes(body))


def encode_publish(topic: str, payload: bytes, *, packet_id: int, v5: bool,
                   retain: bool = False, dup: bool = False,
                   correlation: bytes | None = None) -> bytes:
    """PUBLISH at QoS 1 (``packet_id`` > 0) or QoS 0 (``packet_id`` 0): 5.0 §3.3, 3.1.1 §3.3.
    Correlation Data (5.0 §3.3.2.3.6) is sent only over MQTT 5."""
    topic_bytes = topic.encode()
    first = (PUBLISH << 4) | (0x08 if dup else 0) | (0x02 if packet_id else 0) | retain
    head = struct.pack("!H", len(topic_bytes)) + topic_bytes
    if packet_id:
        head += struct.pack("!H", packet_id)
    if v5:
        head += _properties({CORRELATION_DATA: correlation}) if correlation else b"\x00"
    length = len(head) + len(payload)
    if length < 128:  # the common case without a second buffer copy
        return bytes((first, length)) + head + payload
    return bytes((first,)) + varint(length) + head + payload


def encode_puback(packet_id: int) -> bytes:
    """PUBACK for a QoS 1 message received: success (5.0 §3.4.2.1: the reason code and
    properties may be left out when the reason is 0x00; 3.1.1 §3.4)."""
    return b"\x40\x02" + struct.pack("!H", packet_id)


def encode_subscribe(packet_id: int, filters: list[str], *, v5: bool, qos: int = 1) -> bytes:
    """SUBSCRIBE (fixed-header flags 0b0010) with one options byte per filter: the maximum
    QoS (5.0 §3.8.3.1, 3.1.1 §3.8.3)."""
    body = bytearray(struct.pack("!H", packet_id))
    if v5:
        body += b"\x00"
    for topic_filter in filters:
        body += _string(topic_filter) + bytes((qos,))
    return _packet((SUBSCRIBE << 4) | 0x02, bytes(body))


def encode_disconnect() -> bytes:
    """DISCONNECT, normal disconnection: the broker then drops the Will (5.0 §3.14.2.1:
    reason 0x00 may be left out; 3.1.1 §3.14)."""
    return b"\xe0\x00"


# ---- packets in ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Packet:
    """One packet received: type, fixed-header flags and body. A packet over the decoder's
    bound keeps only the head of its body (``dropped`` says how many bytes were not kept)."""

    type: int
    flags: int
    body: bytes
    dropped: int = 0


HEAD_KEPT = 2 + 0xFFFF + 2  # a PUBLISH's longest topic and its packet id


class Decoder:
    """Splits the bytes from the broker into packets (fixed header, 5.0 §2.1, 3.1.1 §2.2).

    A packet longer than ``max_packet`` is not held in memory: the head of its body is kept
    (a PUBLISH's topic and packet id, to answer and log it) and the rest skipped as it comes.
    """

    def __init__(self, *, max_packet: int = 1 << 20) -> None:
        self._buffer = bytearray()
        self._skip = 0  # bytes of an oversized packet still to skip
        self.max_packet = max_packet

    def feed(self, data: bytes) -> list[Packet]:
        """The packets completed by ``data``; the rest of it waits for more bytes."""
        buffer = self._buffer
        buffer += data
        packets: list[Packet] = []
        pos, end = 0, len(buffer)
        while True:
            if self._skip:
                step = min(self._skip, end - pos)
                pos += step
                self._skip -= step
                if self._skip:
                    break
            if end - pos < 2:
                break
            first = buffer[pos]
            length, shift, i, complete = 0, 0, pos + 1, False
            while i < end:
                byte = buffer[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    complete = True
                    break
                shift += 7
                if shift > 21:
                    raise MalformedPacket("a Remaining Length longer than 4 bytes")
            if not complete:
                break  # the length itself is incomplete
            if length > self.max_packet:
                kept = min(length, HEAD_KEPT)
                if i + kept > end:
                    break
                packets.append(Packet(first >> 4, first & 0x0F, bytes(buffer[i:i + kept]),
                                      length - kept))
                pos, self._skip = i + kept, length - kept
                continue
            if i + length > end:
                break
            packets.append(Packet(first >> 4, first & 0x0F, bytes(buffer[i:i + length])))
            pos = i + length
        if pos:
            del buffer[:pos]
        return packets


def parse_connack(body: bytes, *, v5: bool) -> tuple[bool, int, dict[int, Any]]:
    """(session present, reason/return code, properties): 5.0 §3.2, 3.1.1 §3.2."""
    reader = _Reader(body, "CONNACK")
    flags, code = reader.byte(), reader.byte()
    if flags & 0xFE:
        raise MalformedPacket("CONNACK: reserved acknowledge flags set")
    props = reader.properties() if v5 and reader.left else {}
    return bool(flags & 1), code, props


def parse_publish(packet: Packet, *, v5: bool
                  ) -> tuple[str, bytes, int, int, bool, dict[int, Any]]:
    """(topic, payload, QoS, packet id, retain, properties): 5.0 §3.3, 3.1.1 §3.3."""
    qos = (packet.flags >> 1) & 3
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")  # 5.0 §3.3.1.2, 3.1.1 §3.3.1.2
    reader = _Reader(packet.body, "PUBLISH")
    topic = reader.string()
    packet_id = reader.two() if qos else 0
    props = reader.properties() if v5 else {}
    if "+" in topic or "#" in topic:  # 5.0 §3.3.2.1: no wildcards in a topic name
        raise MalformedPacket(f"PUBLISH to {topic!r}, a topic name with a wildcard")
    return topic, reader.rest(), qos, packet_id, bool(packet.flags & 1), props


def publish_head(packet: Packet) -> tuple[str, int, int]:
    """(topic, QoS, packet id) of a PUBLISH whose body was cut (``Packet.dropped``)."""
    reader = _Reader(packet.body, "PUBLISH")
    qos = (packet.flags >> 1) & 3
    return reader.string(), qos, reader.two() if qos else 0


def parse_puback(body: bytes) -> tuple[int, int]:
    """(packet id, reason code): 5.0 §3.4.2 (reason 0x00 when left out), 3.1.1 §3.4."""
    if len(body) < 2:
        raise MalformedPacket(f"PUBACK of {len(body)} bytes")
    return (body[0] << 8) | body[1], body[2] if len(body) > 2 else 0


def parse_suback(body: bytes, *, v5: bool) -> tuple[int, list[int]]:
    """(packet id, a reason code per filter): 5.0 §3.9, 3.1.1 §3.9 (0x80 is a failure)."""
    reader = _Reader(body, "SUBACK")
    packet_id = reader.two()
    if v5:
        reader.properties()
    return packet_id, list(reader.rest())


def parse_disconnect(body: bytes) -> tuple[int, str]:
    """A 5.0 DISCONNECT from the server: (reason code, reason string), 5.0 §3.14.2."""
    reader = _Reader(body, "DISCONNECT")
    code = reader.byte() if reader.left else 0
    props = reader.properties() if reader.left else {}
    return code, str(props.get(REASON_STRING, ""))


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` with ``+`` and ``#`` (5.0 §4.7.1, 3.1.1
    §4.7.1); a wildcard first level never matches a topic starting with ``$`` (§4.7.2)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    levels = topic.split("/")
    for index, part in enumerate(topic_filter.split("/")):
        if part == "#":
            return True
        if index >= len(levels) or (part != "+" and part != levels[index]):
            return False
    return len(levels) == len(topic_filter.split("/"))
