"""systemd's notification protocol (sd_notify(3)) without libsystemd.

Under a ``Type=notify`` unit, systemd sets ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the
abstract namespace) and, with ``WatchdogSec=``, ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``).
`Notifier` sends ``READY=1``, ``STATUS=...``, ``RELOADING=1`` (a SIGHUP reload, ended by
``READY=1``), ``STOPPING=1`` and ``WATCHDOG=1`` as single
datagrams; without ``$NOTIFY_SOCKET`` every call is a no-op. `watchdog_loop` pings at half
the watchdog period from the event loop itself, so a wedged loop stops the pings and
systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    """Notifications to the service manager named by ``env`` (default: ``os.environ``)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        # "@name" is Linux's abstract namespace: the address starts with a NUL byte.
        self._address = "\0" + path[1:] if path.startswith("@") else path
        self._socket: socket.socket | None = None
        self.watchdog_interval_s: float | None = None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID, when set, names the process that must ping (not a child of it).
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval_s = int(usec) / 2e6

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens."""
        return bool(self._address)

    def send(self, *assignments: str) -> bool:
        """Send ``assignments`` ("READY=1", ...) as one datagram; False if not sent."""
        if not self._address:
            return False
        if self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self._socket.sendto("\n".join(assignments).encode(), self._address)
        except OSError as error:
            log.warning("sd_notify to %s failed: %s", self._address.lstrip("\0"), error)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Startup is complete (``READY=1``), with an optional status line."""
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        """A one-line status shown by ``systemctl status``."""
        return self.send(f"STATUS={_one_line(text)}")

    def reloading(self) -> bool:
        """A reload has begun (``RELOADING=1``); ``ready()`` says it is over."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        """Shutdown has begun (``STOPPING=1``)."""
        return self.send("STOPPING=1")

    def watchdog(self) -> bool:
        """Tell the watchdog this process is alive (``WATCHDOG=1``)."""
        return self.send("WATCHDOG=1")

    async def watchdog_loop(self, healthy: Callable[[], bool] = lambda: True) -> None:
        """Ping the watchdog every half period while ``healthy()``; returns at once when no
        watchdog is configured. Run it as a task in the gateway's task group."""
        interval = self.watchdog_interval_s
        if interval is None or not self.enabled:
            return
        while True:
            if healthy():
                self.watchdog()
            await asyncio.sleep(interval)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _one_line(text: str) -> str:
    return " ".join(text.split())
