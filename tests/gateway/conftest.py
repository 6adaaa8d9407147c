"""Fixtures for the gateway tests: a real mosquitto on a free port, and a fault proxy before it."""

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from streetsense.hil.broker import Mosquitto, TcpProxy


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    """A running mosquitto on a free 127.0.0.1 port; the test may stop, kill and restart it."""
    with Mosquitto() as broker:
        yield broker


@pytest.fixture
def mqtt_proxy(mosquitto: Mosquitto) -> Iterator[TcpProxy]:
    """A TCP proxy in front of ``mosquitto`` (connect clients to ``mqtt_proxy.url``)."""
    with TcpProxy(mosquitto.host, mosquitto.port) as proxy:
        yield proxy


SMALL_DISK_BYTES = 4 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for the test (mounting needs root: skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK_BYTES}",
                           "tmpfs", str(mount)], capture_output=True, text=True, check=False)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)

