"""Several gateways per site ([ownership] enabled): one owner per node, named in its retained
state; the replay floor travels with the node from one gateway to the next."""

from __future__ import annotations

import asyncio
from pathlib import Path

from streetsense.hil.broker import Mosquitto
from streetsense.hil.gateway_proc import GatewayProcess, NodeEntry, SerialEntry
from streetsense.hil.light_node import LightNode
from streetsense.hil.observer import MqttObserver
from tests.fleet.fleet_helpers import keys

KEY = bytes(range(7, 39))
STATE = "streetsense/test/HN-0042/state"
DATA = "streetsense/test/HN-0042/data"


def gateway(tmp_path: Path, broker: Mosquitto, gateway_id: str,
            node: LightNode) -> GatewayProcess:
    return GatewayProcess(
        workdir=tmp_path / gateway_id, mqtt_url=broker.url, site="test", gateway_id=gateway_id,
        serial=[SerialEntry(node.path, "pole")],
        nodes=[NodeEntry(42, "HN-0042", "air-quality", KEY)],
        settings={"ownership": {"enabled": True, "claim_after_s": 0.5},
                  "availability": {"offline_after_s": 1.0}})


async def test_a_moved_node_brings_its_replay_floor(mosquitto: Mosquitto,
                                                    tmp_path: Path) -> None:
    """A node sends 10 readings at gateway A, then is moved to gateway B. A marks it offline
    with its replay floor; an attacker replays A's 10 captured frames to B: B claims the node
    from that floor and refuses them all (none published twice), then takes the node's new
    frames."""
    at_a, at_b = LightNode(42, KEY, retry_s=0.5), LightNode(42, KEY, retry_s=0.5)
    at_a.start()
    at_b.start()
    try:
        async with MqttObserver(mosquitto.url, topics=["streetsense/#"]) as observer:
            with gateway(tmp_path, mosquitto, "gw-a", at_a) as gw_a, \
                    gateway(tmp_path, mosquitto, "gw-b", at_b) as gw_b:
                at_a.hello()
                for reading in range(10):
                    at_a.data(300 + reading)
                await asyncio.wait_for(at_a.acked.wait(), 20)
                owned = await observer.expect(STATE, lambda m: m.json()["gateway"] == "gw-a")
                assert owned.retain or owned.json()["state"] == "online"
                await at_a.close()  # the node leaves gateway A's port
                gone = await observer.expect(
                    STATE, lambda m: m.json()["state"] == "offline", timeout=20)
                assert gone.json()["replay"] == {"1": 10} and gone.json()["gateway"] == "gw-a"
                async with asyncio.timeout(20):
                    # Captured at A, replayed at B, again until B refuses one: until A's
                    # offline mark reaches B, B stands by and ignores them silently.
                    while "rejected frame (replay) node HN-0042" not in gw_b.log():
                        for seq in range(1, 11):
                            at_b.replay(at_a.sent_frames[seq])
                        await asyncio.sleep(0.2)  # the attacker's pace
                at_b.seq = 11
                for reading in range(3):
                    at_b.data(400 + reading)
                await asyncio.wait_for(at_b.acked.wait(), 20)
                await observer.expect(DATA, lambda m: m.json()["seq"] == 13, timeout=20)
                claim = await observer.expect(STATE, lambda m: m.json()["gateway"] == "gw-b")
                assert claim.json()["state"] == "online"
                log_b = gw_b.log()
            assert "claimed (owner was gw-a)" in log_b
            published = keys([m.json() for m in observer.messages(DATA)])
            assert published == [(42, 1, seq) for seq in range(1, 14)]
            assert [m.json()["gateway"] for m in observer.messages(DATA)] == \
                ["gw-a"] * 10 + ["gw-b"] * 3
            assert gw_a.returncode == 0
    finally:
        await at_a.close()
        await at_b.close()
