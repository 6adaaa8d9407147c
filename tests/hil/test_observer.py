"""The MQTT observer against a real mosquitto: transcript, expect, collect, reconnect."""

from __future__ import annotations

import aiomqtt
import pytest

from streetsense.hil.broker import Mosquitto
from streetsense.hil.observer import ExpectationTimeout, MqttObserver, parse_mqtt_url


async def _publish(url: str, *messages: tuple[str, str]) -> None:
    host, port = parse_mqtt_url(url)
    async with aiomqtt.Client(host, port) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


async def test_expect_sees_messages_recorded_before_it_was_called(mosquitto: Mosquitto) -> None:
    """expect() scans the transcript first, so an early message is not missed."""
    async with MqttObserver(mosquitto.url, topics=["t/#"]) as observer:
        await _publish(mosquitto.url, ("t/a/data", '{"seq": 1}'), ("t/b/data", '{"seq": 2}'))
        second = await observer.expect("t/+/data", lambda m: m.json()["seq"] == 2)
        first = await observer.expect("t/a/#")
        assert (first.topic, first.json(), second.topic) == ("t/a/data", {"seq": 1}, "t/b/data")
        assert [m.index for m in observer.messages("t/#")] == [0, 1]


async def test_collect_returns_exactly_the_first_n_in_order(mosquitto: Mosquitto) -> None:
    """collect() gives the first n matches in arrival order, from the mark on."""
    async with MqttObserver(mosquitto.url, topics=["t/#"]) as observer:
        await _publish(mosquitto.url, ("t/x", "0"))
        await observer.expect("t/x")
        mark = observer.mark()
        await _publish(mosquitto.url, *[("t/x", str(i)) for i in range(1, 6)])
        got = await observer.collect("t/x", 3, since=mark)
        assert [m.payload for m in got] == [b"1", b"2", b"3"]


async def test_timeout_explains_what_arrived(mosquitto: Mosquitto) -> None:
    """A missed expectation raises an AssertionError naming the filter and what came instead."""
    async with MqttObserver(mosquitto.url, topics=["t/#"]) as observer:
        await _publish(mosquitto.url, ("t/other", "x"))
        await observer.expect("t/other")
        with pytest.raises(ExpectationTimeout, match=r"'t/wanted'.*0 matched") as info:
            await observer.expect("t/wanted", timeout=0.3)
        assert "t/other" in str(info.value)


async def test_resubscribes_after_broker_restart(mosquitto: Mosquitto) -> None:
    """After the broker restarts the observer reconnects, resubscribes and keeps recording."""
    async with MqttObserver(mosquitto.url, topics=["t/#"]) as observer:
        before = observer.connections
        mosquitto.kill()
        mosquitto.start()
        await observer.wait_connected(timeout=10, after=before)
        await _publish(mosquitto.url, ("t/after", "1"))
        assert (await observer.expect("t/after")).payload == b"1"
