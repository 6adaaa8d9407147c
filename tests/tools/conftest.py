"""Fixtures for the technician tools: raw PTY pairs standing in for USB serial ports."""

from __future__ import annotations

import os
import tty
from collections.abc import Iterator

import pytest
from fake_node import FakeNode
from tools_helpers import Pty

BENCH_PORT_ENV = "STREETSENSE_BENCH_PORT"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"bench: needs a real ESP32 board on the port named by ${BENCH_PORT_ENV}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get(BENCH_PORT_ENV):
        return
    skip = pytest.mark.skip(reason=f"no bench board: set {BENCH_PORT_ENV}=/dev/ttyUSB0")
    for item in items:
        if item.get_closest_marker("bench"):
            item.add_marker(skip)


@pytest.fixture
def pty() -> Iterator[Pty]:
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    yield Pty(master, slave, os.ttyname(slave))
    os.close(master)
    os.close(slave)


@pytest.fixture
def node(pty: Pty, request: pytest.FixtureRequest) -> Iterator[FakeNode]:
    """A node on the PTY's master side; parametrise with a dict of FakeNode options."""
    fake = FakeNode(pty.master, **getattr(request, "param", {}))
    fake.start()
    yield fake
    fake.stop()
