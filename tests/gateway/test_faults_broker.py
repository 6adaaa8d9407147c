"""Broker outages: black-holed network and a stopped broker. Frames keep being ACKed (they
are in the journal); afterwards everything is delivered once, in order, marked delayed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from streetsense.hil.broker import Mosquitto, TcpProxy
from tests.support.gateway_rig import PersistentSubscriber, gateway_with_node, seqs, topic


async def test_faults_broker_blackholed_then_back(
        tmp_path: Path, mosquitto: Mosquitto, mosquitto_proxy: TcpProxy,
        caplog: pytest.LogCaptureFixture) -> None:
    """Network black hole: outage detected by keepalive, frames journaled and ACKed, then
    delivered exactly once, in order, with `delayed: true`; reconnects counted."""
    async with gateway_with_node(tmp_path, mosquitto_proxy.url, observer_url=mosquitto.url) as rig:
        gateway, observer, node, publisher = rig.gateway, rig.observer, rig.node, rig.publisher
        now = int(time.time())
        for i in range(3):
            await node.send(node.data(300 + i, ts=now))
        await observer.collect(topic("HN-0042", "data"), 3)
        await publisher.wait_published(3)  # every PUBACK is back before the black hole
        mosquitto_proxy.blackhole(True)
        async with asyncio.timeout(10):
            await publisher.offline.wait()
        for i in range(5):
            await node.send(node.data(400 + i, ts=now))
        assert gateway.health()["published"] == 3
        mosquitto_proxy.blackhole(False)
        data = await observer.collect(topic("HN-0042", "data"), 8, timeout=20)
        assert seqs(data) == [(1, s) for s in range(8)]
        assert [m.json()["delayed"] for m in data] == [False] * 3 + [True] * 5
        assert gateway.metrics.snapshot()["broker"]["reconnects"] >= 1
    assert len(observer.messages(topic("HN-0042", "data"))) == 8
    assert "MQTT broker" in caplog.text and "unreachable" in caplog.text


async def test_faults_broker_stopped_then_restarted(tmp_path: Path) -> None:
    """mosquitto stopped (sessions persisted) while the node sends; after the restart a
    persistent consumer has every reading once, in order, the outage ones delayed."""
    store = tmp_path / "mosquitto-db"
    store.mkdir()
    extra = ["persistence true", f"persistence_location {store}/", "autosave_interval 1"]
    with Mosquitto(extra_config=extra) as broker:
        async with PersistentSubscriber(broker.url, "streetsense/#", "consumer-1") as consumer, \
                gateway_with_node(tmp_path, broker.url, observe=False) as rig:
            node, publisher = rig.node, rig.publisher
            now = int(time.time())
            for i in range(3):
                await node.send(node.data(300 + i, ts=now))
            await consumer.wait(lambda: len(consumer.data()) == 3)
            await publisher.wait_published(3)
            await asyncio.to_thread(broker.stop)
            async with asyncio.timeout(10):
                await publisher.offline.wait()
            for i in range(5):
                await node.send(node.data(400 + i, ts=now))
            await asyncio.to_thread(broker.start)
            await consumer.wait(lambda: len(consumer.data()) >= 8, timeout=20)
            data = consumer.data()
            assert [(m["boot"], m["seq"]) for m in data] == [(1, s) for s in range(8)]
            assert [m["delayed"] for m in data] == [False] * 3 + [True] * 5
