"""Protocol v1 frames: header, msgpack body, optional HMAC tag, CRC-32 trailer.

Layout (SPEC.md, "Frame"): version u8 | type u8 | flags u8 | node_id u32 BE |
boot u32 BE | seq u32 BE | body (msgpack) | tag (8 bytes, if SIGNED) | crc32 u32 BE.
"""

import binascii
import struct

from . import cobs
from .body import pack_into, unpackb
from .compat import const, digest_equal, hmac_sha256
from .errors import (
    BadCRC,
    BadTag,
    MalformedBody,
    MalformedFrame,
    NeedMoreBytes,
    Oversize,
    UnknownNode,
    UnsupportedVersion,
)
from .messages import DOWNLINK_TYPES, SCHEMAS, type_name, validate

VERSION_MAJOR = const(1)
VERSION_MINOR = const(0)
VERSION = const(0x10)

FLAG_ACK_REQ = const(0x01)
FLAG_SIGNED = const(0x02)
FLAG_DOWNLINK = const(0x04)

HEADER_FORMAT = ">BBBIII"
HEADER_LEN = const(15)
TAG_LEN = const(8)
CRC_LEN = const(4)
MIN_FRAME = const(20)  # header + the shortest body (one byte) + CRC
MAX_FRAME = const(512)  # decoded frame, header to CRC inclusive
MAX_ENCODED = const(516)  # COBS of MAX_FRAME: +1 code byte per 254, rounded up
KEY_MIN = const(16)
KEY_MAX = const(64)


def _check_key(key):
    if not KEY_MIN <= len(key) <= KEY_MAX:
        raise ValueError("node keys are 16 to 64 bytes")


def sign(key, signed_part):
    """The frame tag: HMAC-SHA256 over header and body, truncated to 8 bytes."""
    return hmac_sha256(key, signed_part)[:TAG_LEN]


class Frame:
    """One protocol frame; ``body`` is the decoded msgpack object."""

    def __init__(self, mtype, node_id, boot, seq, body, flags=0, version=VERSION):
        self.version = version
        self.type = mtype
        self.flags = flags
        self.node_id = node_id
        self.boot = boot
        self.seq = seq
        self.body = body
        self.tag = None  # set when decoded from, or encoded to, a signed frame
        self.verified = False  # True once the tag was checked against a key

    @property
    def type_name(self):
        return type_name(self.type)

    @property
    def ack_requested(self):
        return bool(self.flags & FLAG_ACK_REQ)

    @property
    def signed(self):
        return bool(self.flags & FLAG_SIGNED)

    @property
    def downlink(self):
        return bool(self.flags & FLAG_DOWNLINK)

    def to_bytes(self, key=None):
        """The decoded frame bytes; signs it (and sets SIGNED) when ``key`` is given."""
        return bytes(self._build(key))

    def encode(self, key=None):
        """The frame as it goes on the wire: COBS-encoded, with the 0x00 delimiter."""
        return cobs.encode_delimited(self._build(key))

    def _build(self, key):
        # The whole decoded frame in one bytearray: header packed in place, body appended
        # to it, tag and CRC appended. Returned as the bytearray (to_bytes copies it once).
        # A v1 sender sets only the flags SPEC.md §2 gives it: reserved bits 0, ACK_REQ on
        # uplinks only, DOWNLINK exactly on the downlink types (an unknown type keeps the
        # caller's ACK_REQ and DOWNLINK), SIGNED exactly when signing.
        if self.type in DOWNLINK_TYPES:
            flags = FLAG_DOWNLINK
        elif self.type in SCHEMAS:
            flags = self.flags & FLAG_ACK_REQ
        else:
            flags = self.flags & (FLAG_ACK_REQ | FLAG_DOWNLINK)
        if key is not None:
            _check_key(key)
            flags |= FLAG_SIGNED
        validate(self.type, self.body, self.boot)
        raw = bytearray(HEADER_LEN)
        struct.pack_into(HEADER_FORMAT, raw, 0, self.version, self.type, flags,
                         self.node_id, self.boot, self.seq)
        pack_into(raw, self.body)
        if key is not None:
            self.tag = sign(key, raw)
            raw += self.tag
        crc = binascii.crc32(raw) & 0xFFFFFFFF
        at = len(raw)
        raw += b"\x00\x00\x00\x00"
        struct.pack_into(">I", raw, at, crc)
        if len(raw) > MAX_FRAME:
            raise Oversize("frame longer than %d bytes" % MAX_FRAME, "length", len(raw))
        self.flags = flags
        return raw

    @classmethod
    def from_bytes(cls, raw, key=None):
        """Parse a decoded frame (COBS already removed).

        ``key`` is the node's key, or a function of the node id returning it (or None
        for an unknown node). With a key the frame must be signed and its tag right;
        without one the tag is kept but not checked; a key outside 16..64 bytes is no
        key (``UnknownNode``). Checks, in order: length, CRC,
        version, tag, body. Raises a ``ProtocolError`` subclass on the first failure.
        """
        size = len(raw)
        if size < MIN_FRAME:
            raise NeedMoreBytes("frame shorter than %d bytes" % MIN_FRAME, "length", size)
        if size > MAX_FRAME:
            raise Oversize("frame longer than %d bytes" % MAX_FRAME, "length", size)
        crc = struct.unpack_from(">I", raw, size - CRC_LEN)[0]
        if binascii.crc32(raw[:-CRC_LEN]) & 0xFFFFFFFF != crc:
            raise BadCRC("CRC-32 mismatch", "crc", crc)
        version, mtype, flags, node_id, boot, seq = struct.unpack_from(HEADER_FORMAT, raw, 0)
        if version >> 4 != VERSION_MAJOR:
            raise UnsupportedVersion("major version %d is not supported" % (version >> 4),
                                     "version", version)
        end = size - CRC_LEN
        tag = None
        if flags & FLAG_SIGNED:
            end -= TAG_LEN
            if end <= HEADER_LEN:
                raise MalformedFrame("signed frame too short for its tag", "length", size)
            tag = raw[end : end + TAG_LEN]
        frame = cls(mtype, node_id, boot, seq, None, flags, version)
        frame.tag = tag
        if callable(key):
            key = key(node_id)
            if key is None:
                raise UnknownNode("no key for node %d" % node_id, "node_id", node_id)
        if key is not None:
            if not KEY_MIN <= len(key) <= KEY_MAX:  # not a node key: as if there were none
                raise UnknownNode("the key of node %d is %d bytes, not 16 to 64"
                                  % (node_id, len(key)), "node_id", node_id)
            if tag is None:
                raise BadTag("frame is not signed", "flags", flags)
            if not digest_equal(sign(key, raw[:end]), tag):
                raise BadTag("HMAC tag does not match", "tag", tag)
            frame.verified = True
        try:
            frame.body = unpackb(raw[HEADER_LEN:end])
        except MemoryError:
            raise MalformedBody("body too large to decode", "body", None) from None
        validate(mtype, frame.body, boot)
        return frame

    def __repr__(self):
        return "Frame(%s node=%d boot=%d seq=%d flags=0x%02x)" % (
            self.type_name or self.type, self.node_id, self.boot, self.seq, self.flags)


def parse_frame(raw, key=None):
    """Parse one decoded frame; see ``Frame.from_bytes``."""
    return Frame.from_bytes(raw, key)


def peek_node_id(raw):
    """The node id a decoded frame's header claims, before it is parsed (to find its key, or
    to say whom a broken frame came from); None when the bytes cannot be a v1 frame (shorter
    than 20 bytes, or another major version: its header may be laid out otherwise).

    Neither the CRC nor the tag is checked: the id is only a claim until ``parse_frame``
    has verified the frame with the key found for it.
    """
    if len(raw) < MIN_FRAME or raw[0] >> 4 != VERSION_MAJOR:
        return None
    return struct.unpack_from(">I", raw, 3)[0]
