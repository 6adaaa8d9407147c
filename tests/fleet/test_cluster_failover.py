"""Broker failover: a gateway on a 3-node NATS JetStream cluster (``[mqtt] urls``) loses the
member it uses mid-stream and carries on through the next, losing nothing. The ``soak``
variant (``make soak``) streams ten times longer and brings the killed member back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from streetsense.hil.gateway_proc import GatewayProcess, NodeEntry, SerialEntry
from streetsense.hil.light_node import LightNode
from streetsense.hil.nats_cluster import NatsCluster
from streetsense.hil.observer import MqttObserver
from streetsense.hil.plugin import short_and_soak
from tests.fleet.fleet_helpers import keys, member_in_use

KEY = bytes(range(32))
FRAMES = {"short": 120, "soak": 1200}
INFLIGHT = 10


@short_and_soak()
async def test_gateway_fails_over_to_the_next_member(nats_cluster: NatsCluster,
                                                     tmp_path: Path, variant: str) -> None:
    """The member the gateway publishes to is SIGKILLed mid-stream; the gateway moves to the
    next member and a subscriber on a third sees every frame: 0 missing, duplicates only from
    the publishes in flight when the member died (at most the window)."""
    frames = FRAMES[variant]
    node = LightNode(42, KEY)
    gateway = GatewayProcess(
        workdir=tmp_path / "gw", mqtt_url=nats_cluster.urls, site="test",
        serial=[SerialEntry(node.path, "tty42")],
        nodes=[NodeEntry(42, "HN-0042", "air-quality", KEY)],
        settings={"mqtt": {"protocol": "3.1.1", "inflight": INFLIGHT}})
    node.start()
    try:
        first, watched = nats_cluster.urls[0], nats_cluster.urls[2]
        async with MqttObserver(watched, topics=["streetsense/#"]) as observer:
            with gateway:
                await observer.expect(f"{gateway.gateway_topic}/state",
                                      lambda m: m.json()["state"] == "online", timeout=30)
                assert member_in_use(gateway) == first  # the first listed is tried first
                node.hello()
                for index in range(frames):
                    node.data(300 + index)
                    if index == frames // 3:
                        await observer.collect("streetsense/test/HN-0042/data", 20, timeout=30)
                        await asyncio.to_thread(nats_cluster.member(first).kill)
                    if variant == "soak" and index == 2 * frames // 3:
                        await asyncio.to_thread(nats_cluster.member(first).start)  # rejoins
                    await asyncio.sleep(0.02)  # the node's pace, not a synchronisation
                await asyncio.wait_for(node.acked.wait(), 60)
                # Until the last frame is in (per node they arrive in order): a count of
                # `frames` messages can be reached by duplicates before the last ones come.
                await observer.expect("streetsense/test/HN-0042/data",
                                      lambda m: m.json()["seq"] == frames, timeout=90)
                seen = keys([m.json() for m in observer.messages(
                    "streetsense/test/HN-0042/data")])
                assert member_in_use(gateway) != first
    finally:
        await node.close()
    assert sorted(set(seen)) == [(42, 1, seq) for seq in range(1, frames + 1)]
    assert len(seen) - len(set(seen)) <= INFLIGHT
