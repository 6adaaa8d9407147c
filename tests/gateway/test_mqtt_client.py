"""The gateway's MQTT client against a real mosquitto (MQTT 5 and 3.1.1): batched QoS 1
publishing, subscriptions, Correlation Data, the Will; and against a misbehaving broker (a
socket server that answers what a broken one would): protocol errors, a black hole, a small
Receive Maximum, a refusal."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from streetsense.gateway import mqtt_wire as wire
from streetsense.gateway.mqtt_client import Message, MqttClient, MqttError
from streetsense.hil.broker import Mosquitto


class Inbox:
    """Messages received, with a wait for a count."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = asyncio.Event()

    def __call__(self, message: Message) -> None:
        self.messages.append(message)
        self._changed.set()

    async def wait(self, count: int) -> list[Message]:
        async with asyncio.timeout(10):
            while len(self.messages) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.messages


async def _open(broker: Mosquitto, client_id: str, inbox: Callable[[Message], None], *,
                v5: bool, **connect: object) -> MqttClient:
    return await MqttClient.open(broker.host, broker.port,
                                 wire.Connect(client_id=client_id, v5=v5, **connect),  # type: ignore[arg-type]
                                 on_message=inbox)


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
async def test_mqtt_client_publishes_a_batch_and_receives_it_in_order(mosquitto: Mosquitto,
                                                                      v5: bool) -> None:
    """500 QoS 1 publishes queued in one loop turn (50 in flight at a time) are all
    PUBACKed with success and reach a subscriber in order; Correlation Data travels with
    MQTT 5 only."""
    inbox = Inbox()
    subscriber = await _open(mosquitto, "sub", inbox, v5=v5)
    assert await subscriber.subscribe(["t/#"]) == [1]
    publisher = await _open(mosquitto, "pub", lambda _: None, v5=v5)
    codes: list[int] = []
    all_acked = asyncio.Event()

    def acked(code: int) -> None:
        codes.append(code)
        if len(codes) == 500:
            all_acked.set()

    for i in range(500):
        await publisher.wait_room(50)
        publisher.publish(f"t/{i % 7}", str(i).encode(), correlation=b"c%d" % i,
                          on_ack=acked)
        assert publisher.in_flight <= 50
    received = await inbox.wait(500)
    assert [m.payload for m in received] == [str(i).encode() for i in range(500)]
    assert [m.topic for m in received[:3]] == ["t/0", "t/1", "t/2"]
    assert received[5].correlation == (b"c5" if v5 else None)
    async with asyncio.timeout(10):
        await all_acked.wait()
    assert all(code < 0x80 for code in codes)
    await publisher.disconnect()
    await subscriber.disconnect()


async def test_mqtt_client_a_cancelled_waiter_leaves_the_connection_open(
        mosquitto: Mosquitto) -> None:
    """Cancelling a task that waits for the connection's end (the publisher's session
    tasks at a stop) neither closes it nor breaks the next waits and publishes."""
    client = await _open(mosquitto, "gw", lambda _: None, v5=True)
    waiter = asyncio.create_task(client.wait_lost())
    await asyncio.sleep(0)  # let it start waiting (a scheduling step, not a timed wait)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not client.closed
    assert await client.publish_acked("t", b"still open") < 0x80
    await client.disconnect()
    with pytest.raises(MqttError, match="disconnected"):
        await client.wait_lost()


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
async def test_mqtt_client_will_on_a_dropped_connection_not_on_disconnect(
        mosquitto: Mosquitto, v5: bool) -> None:
    """The retained Will (QoS 1) is published when the connection drops without a
    DISCONNECT, and not after a clean DISCONNECT; a retained message arrives flagged."""
    inbox = Inbox()
    watcher = await _open(mosquitto, "watch", inbox, v5=v5)
    await watcher.subscribe(["w/#"])
    clean = await _open(mosquitto, "clean", lambda _: None, v5=v5,
                        will_topic="w/clean", will_payload=b"offline")
    await clean.publish_acked("w/clean", b"online", retain=True)
    await clean.disconnect()
    dropped = await _open(mosquitto, "dropped", lambda _: None, v5=v5,
                          will_topic="w/dropped", will_payload=b"offline")
    dropped.abort()
    received = await inbox.wait(2)
    assert [(m.topic, m.payload) for m in received[:2]] == [("w/clean", b"online"),
                                                           ("w/dropped", b"offline")]
    late = Inbox()
    again = await _open(mosquitto, "late", late, v5=v5)
    await again.subscribe(["w/clean"])
    [retained] = await late.wait(1)
    assert retained == Message("w/clean", b"online", retain=True)
    await again.disconnect()
    await watcher.disconnect()


async def test_mqtt_client_drops_a_message_over_its_bound_and_stays_connected(
        mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    """A 2 MiB retained message on a subscribed topic is acknowledged, logged and dropped
    (not held in memory, not a reason to reconnect); the next message arrives."""
    caplog.set_level(logging.WARNING, "streetsense.gateway.mqtt")
    sender = await _open(mosquitto, "sender", lambda _: None, v5=False)
    for v5 in (True, False):
        inbox = Inbox()
        client = await _open(mosquitto, f"receiver-{v5}", inbox, v5=v5)
        await client.subscribe(["big/#"])
        await sender.publish_acked("big/cmd", b"z" * (2 << 20), retain=True)
        await sender.publish_acked("big/next", b"small")  # after it, in order (QoS 1)
        [message] = await inbox.wait(1)
        assert message == Message("big/next", b"small") and not client.closed
        await client.disconnect()
    assert caplog.text.count("MQTT message on big/cmd dropped: 2097163 bytes, over the "
                             "1048576 this gateway takes") >= 2  # and the retained one
    await sender.disconnect()


@pytest.fixture
async def fake_broker() -> AsyncIterator[tuple[asyncio.Server, list[bytes]]]:
    """A socket server whose answer to CONNECT is set by the test (``server.answer``)."""
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(1024))
        writer.write(server.answer)  # type: ignore[attr-defined]
        await writer.drain()
        while data := await reader.read(1024):  # a black hole: reads, never answers
            received.append(data)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield server, received


def _port(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


async def test_mqtt_client_refusal_and_protocol_errors_are_sentences(
        fake_broker: tuple[asyncio.Server, list[bytes]],
        caplog: pytest.LogCaptureFixture) -> None:
    """A CONNACK refusal names its reason; a malformed packet or a PUBACK for nothing in
    flight ends the connection with a log line saying what the broker did wrong."""
    server, _ = fake_broker
    cases = {
        bytes.fromhex("20030086" "00"): "refused the connection: 0x86 bad user name or "
                                        "password",
        bytes.fromhex("200300000040020009"): "PUBACK for packet id 9, not in flight",
        bytes.fromhex("2003000000" "f000"): "unexpected packet type 15",
        bytes.fromhex("2003000000" "30ffffffff01"): "Remaining Length longer than 4 bytes",
    }
    caplog.set_level(logging.WARNING, "streetsense.gateway.mqtt")
    for answer, why in cases.items():
        server.answer = answer  # type: ignore[attr-defined]
        with pytest.raises(MqttError, match=why):
            client = await MqttClient.open("127.0.0.1", _port(server),
                                           wire.Connect(client_id="gw"), on_message=print)
            async with asyncio.timeout(5):
                await client.wait_lost()
    assert "MQTT protocol error from the broker: PUBACK for packet id 9" in caplog.text


async def test_mqtt_client_keepalive_finds_a_black_hole_and_honours_receive_maximum(
        fake_broker: tuple[asyncio.Server, list[bytes]]) -> None:
    """A broker that goes silent is found by the keep alive (PINGREQ unanswered within a
    keep alive); the broker's Receive Maximum (2 here) caps the publishes in flight, and a
    Server Keep Alive replaces the client's."""
    server, received = fake_broker
    server.answer = bytes.fromhex("2009000006" "210002" "130001")  # type: ignore[attr-defined]
    client = await MqttClient.open("127.0.0.1", _port(server),
                                   wire.Connect(client_id="gw", keepalive_s=30),
                                   on_message=print)
    assert client.keepalive_s == 1 and client.room(50) == 2
    client.publish("a", b"1")
    client.publish("a", b"2")
    assert client.room(50) == 0
    with pytest.raises(MqttError, match="keep alive timeout"):
        async with asyncio.timeout(5):
            await client.wait_room(50)
    assert wire.PINGREQ_BYTES in b"".join(received)
