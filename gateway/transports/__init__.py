"""Byte-stream transports of the gateway: each runs as a task and hands chunks up.

The serial transport lives in ``serial``; BLE in ``ble`` (imported lazily, so a gateway
without BLE never loads bleak).
"""

from .base import Link, LinkCallbacks, Transport

__all__ = ["Link", "LinkCallbacks", "Transport"]
