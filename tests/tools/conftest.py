"""Fixtures for the technician tools: raw PTY pairs standing in for USB serial ports."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator

import pytest

from streetsense.hil.pty import PtyPair
from streetsense.hil.rig.resources import SerialBoard, parse_board
from tests.support.fake_node import ProvisioningNode
from tests.tools.tools_helpers import start_tool

BOARD_ENV = "STREETSENSE_HIL_BOARD"  # the HIL rig's board option (hil_tests/plugin.py)
NEEDS_BOARD = (f"needs a real ESP32: {BOARD_ENV}=serial:LINK_PORT,console=USB_PORT "
               f"(its link UART adapter, its USB port)")


def _bench_board() -> SerialBoard | None:
    board = parse_board(os.environ.get(BOARD_ENV, "emulated"))
    return board if isinstance(board, SerialBoard) and board.console_port else None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"bench: {NEEDS_BOARD}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if _bench_board() is not None:
        return
    skip = pytest.mark.skip(reason=NEEDS_BOARD)
    for item in items:
        if item.get_closest_marker("bench"):
            item.add_marker(skip)


@pytest.fixture
def bench_board() -> SerialBoard:
    """The real board of a bench run (tests marked ``bench`` are skipped without one)."""
    board = _bench_board()
    assert board is not None
    return board


@pytest.fixture
def pty() -> Iterator[PtyPair]:
    """A raw PTY pair: tools open ``path``; the test writes and reads the ``master`` fd."""
    with PtyPair() as pair:
        yield pair


@pytest.fixture
def node(pty: PtyPair, request: pytest.FixtureRequest) -> Iterator[ProvisioningNode]:
    """A node on the PTY's master side; parametrise with a dict of ProvisioningNode options."""
    fake = ProvisioningNode(pty.master, **getattr(request, "param", {}))
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
