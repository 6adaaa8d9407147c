"""The few runtime differences between MicroPython (the node) and CPython (the gateway).

Everything else in this package is written once for both interpreters.
"""

import hashlib
import sys

MICROPYTHON = sys.implementation.name == "micropython"

try:
    from micropython import const
except ImportError:

    def const(value):  # type: ignore[misc]  # the stubs type const generically
        return value


if MICROPYTHON:
    _BLOCK = const(64)

    def hmac_sha256(key, msg):
        """HMAC-SHA256 (RFC 2104) from two SHA-256 passes; MicroPython has no hmac module.

        One 64-byte pad serves both passes: it holds key ^ ipad for the inner hash, then
        is turned in place into key ^ opad (ipad ^ opad == 0x6A). Nothing outlives the call.
        """
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        pad = bytearray(_BLOCK)
        pad[: len(key)] = key
        for i in range(_BLOCK):
            pad[i] ^= 0x36
        inner = hashlib.sha256(pad)
        inner.update(msg)
        for i in range(_BLOCK):
            pad[i] ^= 0x6A  # 0x36 ^ 0x5C: from key ^ ipad to key ^ opad
        outer = hashlib.sha256(pad)
        outer.update(inner.digest())
        return outer.digest()

    def digest_equal(a, b):
        """Compare two tags in time independent of where they differ."""
        if len(a) != len(b):
            return False
        diff = 0
        for i in range(len(a)):
            diff |= a[i] ^ b[i]
        return diff == 0

else:
    import hmac

    def hmac_sha256(key, msg):
        return hmac.digest(key, msg, "sha256")

    digest_equal = hmac.compare_digest
