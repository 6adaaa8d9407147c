"""What `demo --chaos` counts on: the tally by (node, boot, seq), the MQTT packet reader, and
the embedded broker that restarts on its port and reports what it acknowledged."""

from __future__ import annotations

import asyncio
import json

import aiomqtt
import click
import pytest

from streetsense.hil.broker import free_port
from streetsense.protocol import Frame
from streetsense.protocol import messages as m
from streetsense.tools.demo import _verdict
from streetsense.tools.demo_broker import EmbeddedBroker, MqttStream
from streetsense.tools.demo_chaos import Tally

KEY = bytes(range(32))
TOPIC = "streetsense/hanoi/HN-0042"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _wire(mtype: int, seq: int, body: dict[int, object]) -> bytes:
    return Frame(mtype, 42, 1, seq, body, 1).encode(KEY)


def _payload(seq: int) -> bytes:
    return json.dumps({"node_id": 42, "boot": 1, "seq": seq}).encode()


def test_tally_counts_frames_sent_published_missing_and_duplicates() -> None:
    """Frames going up count (HELLO and downlinks do not); a copy published again counts as a
    duplicate, explained only if a fault overlapped the time between the copies; after
    close() nothing more sent is counted."""
    clock = Clock()
    tally = Tally(clock=clock)
    tap = tally.link_tap()
    data = _wire(m.DATA, 1, {1: 5, 2: 1, 4: []})
    tap("up", _wire(m.HELLO, 0, {1: "traffic", 2: "0.1.0", 3: [1, 0], 4: [], 5: 1, 6: 1}))
    tap("up", data[:10])  # a frame split across reads
    tap("up", data[10:] + _wire(m.STATUS, 2, {1: 60, 2: 80000, 3: {}}))
    tap("down", _wire(m.DATA, 3, {1: 5, 2: 1, 4: []}))
    counts = tally.counts()
    assert (counts.sent, counts.published, counts.missing) == (2, 0, 2)

    tally.acknowledged(f"{TOPIC}/data", _payload(1))
    tally.acknowledged(f"{TOPIC}/traffic", _payload(2))  # derived: not a node's frame
    tally.acknowledged(f"{TOPIC}/status", b"not json")
    assert tally.missing() == {(42, 1, 2)}
    clock.now = 5.0
    tally.acknowledged(f"{TOPIC}/data", _payload(1))  # again, with no fault in between
    assert (tally.counts().duplicates, tally.counts().unexplained) == (1, 1)

    clock.now = 5.5
    over = tally.fault("gateway kill")
    clock.now = 6.0
    over()
    clock.now = 6.5
    tally.acknowledged(f"{TOPIC}/status", _payload(2))
    clock.now = 7.0
    tally.acknowledged(f"{TOPIC}/status", _payload(2))  # the fault ended before the first
    tally.acknowledged(f"{TOPIC}/data", _payload(1))  # the fault came between: explained
    counts = tally.counts()
    assert (counts.published, counts.missing, counts.duplicates, counts.unexplained) == \
        (2, 0, 3, 2)
    assert counts.gateway_kills == 1 and counts.broker_restarts == 0

    tally.close()
    tap("up", _wire(m.DATA, 4, {1: 5, 2: 1, 4: []}))
    assert tally.counts().sent == 2 and not tally.missing()


def test_mqtt_stream_cuts_packets_across_reads() -> None:
    """A PUBLISH with a two-byte remaining length, fed a byte at a time, comes out whole."""
    body = b"\x00\x03a/b\x00\x07" + bytes(200)
    packet = bytes([0x32, (len(body) & 0x7F) | 0x80, len(body) >> 7]) + body
    stream = MqttStream()
    out = [p for byte in packet + b"\x40\x02\x00\x07" for p in stream.feed(bytes([byte]))]
    assert out == [(3, 2, body), (4, 0, b"\x00\x07")]


async def test_embedded_broker_restarts_on_its_port_and_reports_acknowledged_messages() -> None:
    """QoS 1 messages are reported once acknowledged (QoS 0 ones are not); while stopped the
    port refuses connections; started again, the same port serves."""
    acked: list[tuple[str, bytes]] = []
    broker = EmbeddedBroker(free_port(), lambda topic, payload: acked.append((topic, payload)))
    v311 = aiomqtt.ProtocolVersion.V311
    await broker.start()
    try:
        async with aiomqtt.Client(broker.host, broker.port, protocol=v311) as client:
            await client.publish("a/b", b"one", qos=1)
            await client.publish("a/b", b"zero", qos=0)
            await client.publish("a/c", b"two", qos=1)
        assert acked == [("a/b", b"one"), ("a/c", b"two")]
        await broker.stop()
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(broker.host, broker.port, protocol=v311, timeout=2):
                pass
        await broker.start()
        async with asyncio.timeout(10), \
                aiomqtt.Client(broker.host, broker.port, protocol=v311) as client:
            await client.publish("a/d", b"three", qos=1)
        assert acked[-1] == ("a/d", b"three")
    finally:
        await broker.stop()


def test_chaos_verdict_names_what_went_wrong() -> None:
    """Missing frames after the wait: exit 1 with the gateway's last log lines; Ctrl-C during
    the wait: no verdict, status 130; all published: one line saying nothing was lost."""
    tally = Tally(clock=Clock())
    tally.link_tap()("up", _wire(m.DATA, 1, {1: 5, 2: 1, 4: []}))
    with pytest.raises(click.ClickException) as failed:
        _verdict(tally, True, "line 1\nERROR journal full\n", print)
    assert failed.value.exit_code == 1 and "missing 1" in failed.value.message
    assert failed.value.message.endswith("ERROR journal full")
    with pytest.raises(click.ClickException) as stopped:
        _verdict(tally, False, "", print)
    assert stopped.value.exit_code == 130 and "no result" in stopped.value.message
    tally.acknowledged(f"{TOPIC}/data", _payload(1))
    said: list[str] = []
    _verdict(tally, True, "", said.append)
    assert said == ["chaos result: frames sent by the nodes 1  published 1  missing 0  "
                    "duplicates 0  | broker restarts 0, gateway kills 0: nothing lost; "
                    "duplicates only across a fault, as at-least-once allows."]
