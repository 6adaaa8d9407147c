"""The keys the rig gives its test nodes: fixed by seed and node id, so runs are reproducible."""

from __future__ import annotations

import hashlib

__all__ = ["node_key"]


def node_key(seed: int, node_id: int) -> bytes:
    """The 32-byte key a test node gets: fixed by seed and id, so runs are reproducible."""
    return hashlib.sha256(f"streetsense-hil:{seed}:{node_id}".encode()).digest()
