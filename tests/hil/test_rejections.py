"""Scenario: an unknown node, a wrong key and a replayed frame are rejected, counted, and
never published; the real node's frames around them still are."""

from __future__ import annotations

import asyncio
import time

import pytest

from streetsense.hil.gateway_proc import GatewayProcess
from streetsense.hil.observer import MqttObserver
from streetsense.hil.rig.drivers import Board
from streetsense.hil.rig.injector import FrameInjector, ScriptedNode
from streetsense.protocol.messages import ACK

STRANGER_ID = 9999


@pytest.mark.needs_injection
async def test_unknown_node_wrong_key_and_replay_are_rejected(
        board: Board, injector: FrameInjector, gateway: GatewayProcess,
        observer: MqttObserver) -> None:
    """Rejected by reason (unknown_node, bad_tag, replay), no ACK, no data on MQTT."""
    now = int(time.time())
    # The test plays the board's own identity on the injector port (its key is known):
    # a boot far above the real node's, so the two never collide.
    node = ScriptedNode(board.node_id, board.key, boot=1000)
    stranger = ScriptedNode(STRANGER_ID, bytes(range(32)))
    data_topic = gateway.topic(board.name, "data")

    def send(wire: bytes) -> None:
        injector.write(wire)

    # Bytes written before the gateway opens the port would be flushed by the open.
    await observer.expect(f"{gateway.gateway_topic}/health",
                          lambda m: m.json()["ports_up"].get("injector") is True, timeout=10)
    send(node.hello())
    await asyncio.to_thread(injector.wait_ack, board.node_id, 1000, 0)
    accepted = [node.data(101, now), node.data(102, now)]
    for wire in accepted:
        send(wire)
    await asyncio.to_thread(injector.wait_ack, board.node_id, 1000, 2)

    send(stranger.hello())  # unknown node
    send(node.data(666, now, key=bytes(32)))  # wrong key (seq 3)
    send(node.sent[1])  # replay of seq 1 (seq 2 was accepted since)
    send(node.data(103, now, seq=4))  # a good frame after them: proves they were processed
    await asyncio.to_thread(injector.wait_ack, board.node_id, 1000, 4)
    # Published in order per node: once seq 4 is out, anything wrongly let through is too.
    await observer.expect(data_topic, lambda m: (m.json()["boot"], m.json()["seq"]) == (1000, 4),
                          timeout=10)

    published = [m.json() for m in observer.messages(data_topic)
                 if m.json()["boot"] == 1000]
    assert [(p["seq"], p["readings"]["pm2_5"]["value"]) for p in published] == \
        [(1, 10.1), (2, 10.2), (4, 10.3)]
    assert not observer.messages(f"{gateway.prefix}/{gateway.site}/+",
                                 lambda m: str(STRANGER_ID) in m.topic)
    health = await observer.expect(
        f"{gateway.gateway_topic}/health",
        lambda m: all(m.json()["frames_rejected"].get(r, 0) >= 1
                      for r in ("unknown_node", "bad_tag", "replay")),
        timeout=10)
    assert {reason: health.json()["frames_rejected"][reason]
            for reason in ("unknown_node", "bad_tag", "replay")} == \
        {"unknown_node": 1, "bad_tag": 1, "replay": 1}
    acks = [f for f in injector.drain() if f.type == ACK]
    assert {f.node_id for f in acks} == {board.node_id}
    assert all(f.body[2] != 3 for f in acks), "the wrong-key frame was acknowledged"
