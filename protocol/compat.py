"""The few runtime differences between MicroPython (the node) and CPython (the gateway).

Everything else in this package is written once for both interpreters.
"""

import hashlib
import sys

MICROPYTHON = sys.implementation.name == "micropython"

try:
    from micropython import const
except ImportError:

    def const(value):
        return value


if MICROPYTHON:
    _BLOCK = const(64)

    def hmac_sha256(key, msg):
        """HMAC-SHA256 (RFC 2104) from two SHA-256 passes; MicroPython has no hmac module."""
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        ipad = bytearray(_BLOCK)
        opad = bytearray(_BLOCK)
        for i in range(len(key)):
            ipad[i] = key[i]
            opad[i] = key[i]
        for i in range(_BLOCK):
            ipad[i] ^= 0x36
            opad[i] ^= 0x5C
        inner = hashlib.sha256(ipad)
        inner.update(msg)
        outer = hashlib.sha256(opad)
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
