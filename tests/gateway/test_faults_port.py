"""Serial ports that go away and come back, and a journal that fills up."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from streetsense.gateway.config import JournalSection
from streetsense.hil.broker import Mosquitto, TcpProxy
from tests.support.gateway_rig import gateway_with_node, links_up, seqs, topic


async def test_faults_port_unplugged_and_replugged_is_reopened(
        tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    """A port that vanishes is reported down (log, metric) and reopened when it is back."""
    async with gateway_with_node(tmp_path, mosquitto.url, port_name="ttyUSB-node") as rig:
        gateway, observer, port, node = rig.gateway, rig.observer, rig.port, rig.node
        assert gateway.framing is not None
        now = int(time.time())
        await node.send(node.data(300, ts=now))
        node.detach()
        port.unplug()
        async with asyncio.timeout(5):
            while gateway.metrics.snapshot()["ports_up"].get("ttyUSB-node"):
                await gateway.framing.wait_link_change("ttyUSB-node")
        port.plug()
        await links_up(gateway, port, timeout=10)
        node.attach()
        await node.send(node.data(301, ts=now))
        data = await observer.collect(topic("HN-0042", "data"), 2)
        assert seqs(data) == [(1, 0), (1, 1)]
        (link,) = gateway.health()["links"].values()
        assert link["opens"] == 2 and link["losses"] == 1
    assert "serial port ttyUSB-node lost" in caplog.text


async def test_faults_journal_full_refuses_then_recovers(
        tmp_path: Path, mosquitto: Mosquitto, mosquitto_proxy: TcpProxy,
        caplog: pytest.LogCaptureFixture) -> None:
    """Journal full while the broker is away: frames are refused (not ACKed, logged, counted),
    the node keeps them; once delivered rows make room every frame is published exactly once."""
    small_journal = JournalSection(path=tmp_path / "j.sqlite", max_bytes=96 * 1024)
    async with gateway_with_node(tmp_path, mosquitto_proxy.url, observer_url=mosquitto.url,
                                 journal=small_journal) as rig:
        gateway, observer, node, publisher = rig.gateway, rig.observer, rig.node, rig.publisher
        await publisher.connected.wait()
        mosquitto_proxy.blackhole(True)
        async with asyncio.timeout(10):
            await publisher.offline.wait()
        now = int(time.time())
        accepted = 0
        while True:
            wire = node.data(300 + accepted, ts=now)
            try:
                await node.send(wire, timeout=1.0, retry_s=0.5)
            except TimeoutError:
                refused = wire  # the node keeps it and retransmits later
                break
            accepted += 1
        assert accepted > 20
        assert gateway.metrics.snapshot()["journal"]["full_drops"] >= 1
        assert "journal full" in caplog.text and "not ACKed" in caplog.text
        mosquitto_proxy.blackhole(False)
        await observer.collect(topic("HN-0042", "data"), accepted, timeout=20)
        await node.send(refused, timeout=10.0, retry_s=0.5)
        await node.send(node.data(999, ts=now))
        data = await observer.collect(topic("HN-0042", "data"), accepted + 2, timeout=10)
        assert seqs(data) == [(1, s) for s in range(accepted + 2)]
    assert len(observer.messages(topic("HN-0042", "data"))) == accepted + 2
