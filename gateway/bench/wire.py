"""The bench protocol's constants, shared by the server (`server`) and its client
(``streetsense.hil.remote``): the greeting, the longest line, the token proof.

The exchange itself is described in `streetsense.gateway.bench.server`.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["MAX_LINE", "PROTOCOL", "auth_digest"]

PROTOCOL = {"hello": "streetsense-hil", "version": 1}
MAX_LINE = 1 << 20


def auth_digest(token: str, nonce: str) -> str:
    """The client's proof of the token for ``nonce``."""
    return hmac.new(token.encode(), bytes.fromhex(nonce), hashlib.sha256).hexdigest()
