"""Exactly once in the city's database: nodes → gateway → 3-node NATS cluster → `store` →
PostgreSQL, through a gateway SIGKILL and the loss of a cluster member. The ``soak`` variant
(``make soak``) is ten times longer, with two gateway kills and the member brought back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from streetsense.hil.gateway_proc import GatewayProcess, NodeEntry, SerialEntry
from streetsense.hil.light_node import LightNode
from streetsense.hil.nats_cluster import NatsCluster
from streetsense.hil.plugin import short_and_soak
from tests.fleet.fleet_helpers import member_in_use, rows, store_running
from tests.support.polling import until

FRAMES = {"short": 60, "soak": 600}  # per node


def key(node_id: int) -> bytes:
    return bytes((node_id * 11 + i) & 0xFF for i in range(32))


@short_and_soak()
async def test_one_row_per_frame_through_gateway_kill_and_member_loss(
        nats_cluster: NatsCluster, pg_url: str, tmp_path: Path, variant: str) -> None:
    """Three nodes send data, event and status frames; mid-stream the gateway is SIGKILLed
    and restarted, later the cluster member it publishes to is killed. The store (on another
    member, persistent session) ends with exactly one row per frame the nodes sent."""
    frames = FRAMES[variant]
    kill_gateway_at = {frames // 3} if variant == "short" else {frames // 5, 3 * frames // 5}
    lost: list[str] = []
    nodes = [LightNode(node_id, key(node_id), retry_s=1.0) for node_id in (1, 2, 3)]
    gateway = GatewayProcess(
        workdir=tmp_path / "gw", mqtt_url=nats_cluster.urls, site="test",
        serial=[SerialEntry(n.path, f"tty{n.node_id}") for n in nodes],
        nodes=[NodeEntry(n.node_id, f"HN-{n.node_id:04d}", "traffic", n.key) for n in nodes],
        settings={"mqtt": {"protocol": "3.1.1", "inflight": 10}})
    for node in nodes:
        node.start()
    try:
        async with store_running(brokers=nats_cluster.urls[::-1], db_url=pg_url,
                                 protocol="3.1.1", client_id="city-store"):
            with gateway:
                for node in nodes:
                    node.hello()
                for index in range(frames):
                    for node in nodes:
                        (node.data, node.event, node.status)[index % 3]()
                    if index in kill_gateway_at:
                        await asyncio.to_thread(gateway.kill)
                        await asyncio.to_thread(gateway.start)
                    if index == 2 * frames // (3 if variant == "short" else 5):
                        lost.append(member_in_use(gateway))
                        await asyncio.to_thread(nats_cluster.member(lost[0]).kill)
                    if variant == "soak" and index == 4 * frames // 5:
                        await asyncio.to_thread(nats_cluster.member(lost[0]).start)
                    await asyncio.sleep(0.05)  # the nodes' pace, not a synchronisation
                async with asyncio.timeout(90):
                    for node in nodes:
                        await node.acked.wait()
                expected = {kind: sorted((n.node_id, n.boot, seq) for n in nodes
                                         for seq, k in n.kinds.items() if k == kind)
                            for kind in ("data", "event", "status")}
                await until(lambda: all(len(rows(pg_url, kind))
                                        >= len(expected[kind]) for kind in expected),
                            timeout=90)
    finally:
        for node in nodes:
            await node.close()
    for kind, keys in expected.items():
        assert rows(pg_url, kind) == keys, kind
    assert sum(map(len, expected.values())) == 3 * frames
