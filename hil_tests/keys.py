"""The keys test nodes get: fixed, so runs are reproducible (never a real node's key).

``node_key(seed, node_id)`` is the rig's (the HIL plugin gives it to its boards);
``numbered_key(node_id)`` the gateway tests' registry keys; ``KEY`` the one key of node
``NODE_ID`` in the node-core tests and benchmarks.
"""

from __future__ import annotations

import hashlib

__all__ = ["KEY", "NODE_ID", "node_key", "numbered_key"]

KEY = bytes(range(32))
NODE_ID = 42


def node_key(seed: int, node_id: int) -> bytes:
    """The 32-byte key a test node gets: fixed by seed and id, so runs are reproducible."""
    return hashlib.sha256(f"streetsense-hil:{seed}:{node_id}".encode()).digest()


def numbered_key(node_id: int) -> bytes:
    """A deterministic 32-byte key per node id."""
    return bytes((node_id * 7 + i) & 0xFF for i in range(32))
