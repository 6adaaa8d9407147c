"""Per-node availability: offline after a silence, online again on the next frame."""

from __future__ import annotations

import time
from pathlib import Path

from streetsense.gateway.config import AvailabilitySection
from streetsense.hil.broker import Mosquitto
from streetsense.hil.observer import MqttObserver
from tests.support.gateway_rig import gateway_with_node, topic


async def test_pipeline_node_goes_offline_after_silence_and_back(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Silence longer than offline_after_s gives a retained offline state; a frame, online."""
    state_topic = topic("HN-0042", "state")
    async with gateway_with_node(tmp_path, mosquitto.url,
                                 availability=AvailabilitySection(offline_after_s=0.5)) as rig:
        observer, node = rig.observer, rig.node
        await node.send(node.hello())
        await observer.expect(state_topic, lambda m: m.json()["state"] == "online")
        offline = await observer.expect(state_topic, lambda m: m.json()["state"] == "offline")
        assert offline.json()["reason"] == "silent" and offline.json()["last_seen"]
        mark = observer.mark()
        await node.send(node.data(300, ts=int(time.time())))
        await observer.expect(state_topic, lambda m: m.json()["state"] == "online", since=mark)
    # A clean stop reports the node and the gateway offline.
    await observer_expect_stop(mosquitto.url)


async def observer_expect_stop(url: str) -> None:
    async with MqttObserver(url, topics=["streetsense/#"]) as late:
        node_state = await late.expect(topic("HN-0042", "state"))
        assert node_state.json()["state"] == "offline"
        assert node_state.json()["reason"] == "gateway stopped"
        gateway_state = await late.expect("streetsense/test/_gateway/gw-test/state")
        assert gateway_state.json()["state"] == "offline"
