"""Fixtures for the technician tools: raw PTY pairs standing in for USB serial ports."""

from __future__ import annotations

import os
import subprocess
import tty
from collections.abc import Callable, Iterator

import pytest
from fake_node import FakeNode
from tools_helpers import Pty, start_tool

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


@pytest.fixture
def tool() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """``tool("monitor", *args)`` starts a command's process; teardown kills any left running
    (one left holding a PTY path would read the next test's PTY of the same number)."""
    started: list[subprocess.Popen[str]] = []

    def start(command: str, *args: str) -> subprocess.Popen[str]:
        started.append(start_tool(command, *args))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
