"""Bad input from nodes: unknown node, wrong tag, replay, reboot: counted, logged, never
published, and no accepted frame lost or published twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streetsense.hil.broker import Mosquitto
from streetsense.protocol.messages import ACK, DATA
from tests.support.fake_node import PtyNode
from tests.support.gateway_rig import gateway_with_node, seqs, topic


async def test_faults_unknown_node_and_wrong_tag_are_rejected(
        tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    """Unknown node: counted, logged once, no ACK, nothing on MQTT; wrong key: bad_tag."""
    async with gateway_with_node(tmp_path, mosquitto.url) as rig:
        gateway, observer, good = rig.gateway, rig.observer, rig.node
        stranger = PtyNode(rig.port, 99)
        forger = PtyNode(rig.port, 42, key=bytes(range(32)))
        assert gateway.session is not None
        now = int(time.time())
        for _ in range(5):
            stranger.write(stranger.data(100, ts=now)[0])
        forged, _ = forger.frame(DATA, {1: now, 2: 0, 4: [[2, 0, 999]]})
        good.write(forged)
        await good.send(good.data(312, ts=now))
        await observer.expect(topic("HN-0042", "data"))
        rejected = gateway.metrics.snapshot()["frames_rejected"]
        assert rejected == {"unknown_node": 5, "bad_tag": 1}
        assert gateway.metrics.snapshot()["unknown_nodes"] == [99]
    assert caplog.text.count("node 99 on tty0 is not in the registry") == 1
    assert "rejected frame (bad_tag)" in caplog.text
    assert not [m for m in observer.transcript if "0099" in m.topic or b'"node_id":99' in m.payload]
    data = observer.messages(topic("HN-0042", "data"))
    assert [m.json()["readings"]["pm2_5"]["value"] for m in data] == [31.2]
    # Only the good frame was ACKed (the node's key verifies every downlink it got).
    assert [f.body for f in good.downlinks if f.type == ACK] == [{1: 1, 2: 0}]


async def test_faults_replay_and_duplicate(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A replayed old frame is rejected without ACK; a retransmit is re-ACKed, published once."""
    async with gateway_with_node(tmp_path, mosquitto.url) as rig:
        gateway, observer, node = rig.gateway, rig.observer, rig.node
        assert gateway.session is not None
        now = int(time.time())
        wires = [node.data(300 + i, ts=now) for i in range(4)]
        for wire in wires:
            await node.send(wire)
        node.write(wires[3][0])  # a retransmit whose ACK was lost: re-ACKed
        await node.wait_count(lambda f: f.type == ACK and f.body[2] == 3, 2)
        node.write(wires[1][0])  # a replay of an old frame: rejected
        await node.send(node.data(400, ts=now))
        messages = await observer.collect(topic("HN-0042", "data"), 5)
        assert seqs(messages) == [(1, s) for s in range(5)]
        assert gateway.metrics.snapshot()["frames_rejected"] == {"replay": 1}
        assert gateway.session.stats.duplicates == 1
    assert len(observer.messages(topic("HN-0042", "data"))) == 5
    acks = [f.body[2] for f in node.downlinks if f.type == ACK]
    assert acks == [0, 1, 2, 3, 3, 4]


async def test_faults_node_reboot_is_a_birth_and_old_boot_frames_still_count(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Reboot: new birth on `state`; a frame queued from the old boot is accepted, delayed."""
    async with gateway_with_node(tmp_path, mosquitto.url, boot=3) as rig:
        observer, node = rig.observer, rig.node
        now = int(time.time())
        # Connected first: a retained state set before the connection is published as its
        # latest value only (two births would be one, as on a slow broker connection).
        await rig.publisher.connected.wait()
        await node.send(node.hello())
        await node.send(node.data(300, ts=now))
        queued = node.data(301, ts=now - 600)  # made before the reboot, never sent
        node.reboot()
        await node.send(node.hello())
        await node.send(queued, boot=3)
        await node.send(node.data(302, ts=now))
        births = await observer.collect(topic("HN-0042", "state"), 2,
                                        lambda m: "birth" in m.json())
        assert [b.json()["birth"]["boot"] for b in births] == [3, 4]
        data = await observer.collect(topic("HN-0042", "data"), 3)
        assert seqs(data) == [(3, 1), (3, 2), (4, 1)]
        assert [m.json()["delayed"] for m in data] == [False, True, False]
