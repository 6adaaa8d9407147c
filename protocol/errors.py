"""Errors raised while decoding the wire format.

Every error is a ``ProtocolError``; the subclass says what went wrong and ``field``
names the offending part of the frame (``"crc"``, ``"tag"``, ``"version"``, a body key...).
Never raised through ``assert``: optimised MicroPython strips asserts.
"""


class ProtocolError(Exception):
    """Root of every wire-format error."""

    reason = "protocol"

    def __init__(self, message, field=None, value=None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value

    def __str__(self):
        if self.field is None:
            return self.message
        return "%s (field %s)" % (self.message, self.field)


class NeedMoreBytes(ProtocolError):
    """The bytes end before the frame does (a truncated frame)."""

    reason = "truncated"


class MalformedFrame(ProtocolError):
    """The framing itself is broken (bad COBS block, impossible lengths)."""

    reason = "malformed_frame"


class Oversize(ProtocolError):
    """The frame is longer than the protocol's maximum frame size."""

    reason = "oversize"


class BadCRC(ProtocolError):
    """The CRC-32 trailer does not match the bytes before it (line noise)."""

    reason = "bad_crc"


class UnsupportedVersion(ProtocolError):
    """The frame's major version is not one this receiver speaks."""

    reason = "unsupported_version"


class UnknownNode(ProtocolError):
    """No key is known for the frame's node id."""

    reason = "unknown_node"


class BadTag(ProtocolError):
    """The frame is unsigned where a signature is required, or its HMAC tag is wrong."""

    reason = "bad_tag"


class MalformedBody(ProtocolError):
    """The body is not valid msgpack or does not match the message's schema."""

    reason = "malformed_body"
