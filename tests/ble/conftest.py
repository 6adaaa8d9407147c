"""Fixtures for the BLE tests: an in-process virtual radio, the rig with the peripheral host,
and MicroPython nodes running firmware/ssnode/ble_link.py on it (helpers in ble_harness)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from streetsense.hil.ble.radio import VirtualRadio
from streetsense.hil.ble.rig import BleRig
from tests.ble.ble_harness import MpNode, StartNode


@pytest.fixture
async def radio() -> AsyncIterator[VirtualRadio]:
    """An in-process virtual radio on the test's loop."""
    radio = VirtualRadio()
    yield radio
    await radio.close()


@pytest.fixture
def rig() -> Iterator[BleRig]:
    """The virtual radio on its own thread, with the peripheral host for emulated boards."""
    with BleRig() as rig:
        yield rig


@pytest.fixture
async def mp_node(tmp_path: Path, rig: BleRig) -> AsyncIterator[StartNode]:
    """``await mp_node(node_id, mtu=247)`` starts a MicroPython node; all are killed at teardown."""
    nodes: list[MpNode] = []

    async def start(node_id: int, mtu: int = 247) -> MpNode:
        node = MpNode(tmp_path, rig.board_endpoint(), node_id, mtu)
        nodes.append(node)
        return await node.start()

    yield start
    for node in nodes:
        await node.stop()
