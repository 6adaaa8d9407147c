"""Operator signatures on commands: who may command a node, and whether the order is fresh.

Reaching the broker is not authority. A command (a JSON object on
``<prefix>/<site>/<node>/cmd/<name>``, see ``docs/mqtt.md``) carries

* ``ts``: when it was signed, UNIX milliseconds;
* ``nonce``: 16 to 64 hex digits, new for every command;
* ``mac``: HMAC-SHA256, in hex, with the site's operator key over
  ``b"streetsense-command-v1\\n" + topic + b"\\n" + canonical(request without "mac")``, where
  ``canonical`` is JSON with sorted keys, no spaces, UTF-8 (``canonical()`` below).

The gateway runs it only if the mac matches, ``ts`` is within ``max_age_s`` of its own clock
and the nonce was not seen within that window: a retained or replayed command is refused.
The key (32 random bytes, hex in a file readable by the gateway and the operators) is made at
setup by ``streetsense gateway operator-key``; it is never logged or sent anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["KEY_BYTES", "CommandAuth", "canonical", "command_mac", "load_operator_key",
           "make_operator_key", "sign"]

KEY_BYTES = 32
DOMAIN = b"streetsense-command-v1\n"
NONCES_MAX = 10_000  # nonces remembered at once (signed commands only: operators' rate)
_NONCE = re.compile(r"^[0-9a-f]{16,64}$")
_KEY = re.compile(r"^[0-9a-f]{32,128}$")


def canonical(request: dict[str, Any]) -> bytes:
    """The bytes a mac covers: JSON with sorted keys and no spaces, UTF-8, ``mac`` left out."""
    body = {k: v for k, v in request.items() if k != "mac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def command_mac(key: bytes, topic: str, request: dict[str, Any]) -> str:
    """The hex HMAC-SHA256 of a command for ``topic``."""
    message = DOMAIN + topic.encode() + b"\n" + canonical(request)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(key: bytes, topic: str, request: dict[str, Any], *,
         now_s: float | None = None) -> dict[str, Any]:
    """``request`` with ``ts``, a new ``nonce`` and its ``mac`` for ``topic``."""
    signed = {**request, "ts": int((time.time() if now_s is None else now_s) * 1000),
              "nonce": secrets.token_hex(16)}
    signed["mac"] = command_mac(key, topic, signed)
    return signed


def load_operator_key(path: Path) -> bytes:
    """The key in ``path``; ``ValueError`` saying what is wrong (never the key itself)."""
    text = path.read_text(encoding="ascii", errors="replace").strip().lower()
    if not _KEY.match(text) or len(text) % 2:
        raise ValueError(f"{path} does not hold an operator key (hex, 16 to 64 bytes): make "
                         f"one with 'streetsense gateway operator-key'")
    return bytes.fromhex(text)


def make_operator_key(path: Path) -> None:
    """Write a new random key to ``path`` (mode 0640; an existing file is not replaced)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_hex(KEY_BYTES) + "\n")


class CommandAuth:
    """Checks commands against the operator key (None: commands are off, all refused)."""

    def __init__(self, key: bytes | None, *, max_age_s: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.max_age_s = max_age_s
        self._clock = clock
        self._nonces: dict[str, float] = {}  # nonce -> when it may be forgotten (insertion order)

    def configure(self, key: bytes | None, *, max_age_s: float) -> None:
        """A new key (a rotation, None: commands off) and age bound; seen nonces are kept."""
        self._key = key
        self.max_age_s = max_age_s

    def refusal(self, topic: str, request: dict[str, Any]) -> tuple[str, str] | None:
        """``(code, why)`` when ``request`` may not run, None when it may (its nonce is then
        remembered: the same request again is a replay)."""
        if self._key is None:
            return "UNAUTHORIZED", "commands are off on this gateway (no operator key set up)"
        mac, ts, nonce = request.get("mac"), request.get("ts"), request.get("nonce")
        if not isinstance(mac, str) or not isinstance(nonce, str) or \
                not isinstance(ts, int) or isinstance(ts, bool):
            return "UNAUTHORIZED", "not signed: ts, nonce and mac are required (docs/mqtt.md)"
        if not _NONCE.match(nonce) or not hmac.compare_digest(
                mac, command_mac(self._key, topic, request)):
            return "UNAUTHORIZED", "bad signature (another key, topic or content)"
        now = self._clock()
        age_s = now - ts / 1000
        if abs(age_s) > self.max_age_s:
            return "STALE", (f"signed {age_s:.0f} s ago by this gateway's clock: more than "
                             f"{self.max_age_s:.0f} s (an old or replayed command, or a clock "
                             f"off)")
        for seen, until in list(self._nonces.items()):
            if until > now:
                break
            del self._nonces[seen]
        if nonce in self._nonces:
            return "REPLAYED", "this signed command was received before"
        if len(self._nonces) >= NONCES_MAX:
            return "RATE_LIMITED", (f"more than {NONCES_MAX} commands within "
                                    f"{2 * self.max_age_s:.0f} s")
        self._nonces[nonce] = now + 2 * self.max_age_s
        return None
