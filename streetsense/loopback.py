"""Ports on 127.0.0.1 for servers that StreetSense starts on this machine (demo, tests)."""

from __future__ import annotations

import socket

__all__ = ["LOCALHOST", "free_port"]

LOCALHOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCALHOST, 0))
        port: int = probe.getsockname()[1]
        return port
