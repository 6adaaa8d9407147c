"""sd_notify: datagrams on a real AF_UNIX socket, the watchdog period, no-op without systemd."""

import asyncio
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from streetsense.gateway.notify import Notifier


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for systemd, and its path (short: AF_UNIX limit)."""
    folder = Path(tempfile.mkdtemp(prefix="ssn-"))
    path = str(folder / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    try:
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(folder)


def test_no_socket_is_a_no_op() -> None:
    """Without NOTIFY_SOCKET nothing is sent, nothing fails, and no watchdog runs."""
    notifier = Notifier({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert not notifier.ready("up") and not notifier.watchdog() and not notifier.stopping()
    asyncio.run(asyncio.wait_for(notifier.watchdog_loop(), timeout=1))


def test_ready_status_stopping(listener: tuple[socket.socket, str]) -> None:
    """READY=1 with a status, STATUS on one line, and STOPPING=1 arrive as single datagrams."""
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled and notifier.watchdog_interval_s is None
    assert notifier.ready("3 ports, broker connected")
    assert sock.recv(4096) == b"READY=1\nSTATUS=3 ports, broker connected"
    assert notifier.status("journal\n 93% full")
    assert sock.recv(4096) == b"STATUS=journal 93% full"
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    notifier.close()


def test_abstract_namespace_socket() -> None:
    """NOTIFY_SOCKET=@name addresses Linux's abstract namespace."""
    name = f"streetsense-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        notifier.close()


def test_watchdog_period() -> None:
    """The ping period is half of WATCHDOG_USEC, and only for the process WATCHDOG_PID names."""
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000"}
    assert Notifier(env).watchdog_interval_s == 15.0
    assert Notifier({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_interval_s == 15.0
    assert Notifier({**env, "WATCHDOG_PID": str(os.getpid() + 1)}).watchdog_interval_s is None
    assert Notifier({**env, "WATCHDOG_USEC": "0"}).watchdog_interval_s is None


async def test_watchdog_loop_pings_only_while_healthy(listener: tuple[socket.socket, str]) -> None:
    """watchdog_loop sends WATCHDOG=1 each half period, skipping the periods that are unhealthy."""
    sock, path = listener
    sock.setblocking(False)
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000"})  # ping every 20 ms
    checks = []

    def healthy() -> bool:
        checks.append(len(checks) >= 2)  # unhealthy twice, then healthy
        return checks[-1]

    task = asyncio.create_task(notifier.watchdog_loop(healthy))
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(5):
            assert await loop.sock_recv(sock, 4096) == b"WATCHDOG=1"
            assert checks[:3] == [False, False, True]
            assert await loop.sock_recv(sock, 4096) == b"WATCHDOG=1"
    finally:
        task.cancel()
        notifier.close()


def test_send_failure_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A socket that is gone makes send() return False with a warning, never an exception."""
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.WARNING, logger="streetsense.gateway.notify"):
        assert not notifier.ready()
    assert "sd_notify" in caplog.text
    notifier.close()
