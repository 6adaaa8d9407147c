"""An MQTT 5 application for the command tests: signed requests, results read back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from streetsense.gateway.command_auth import sign
from streetsense.hil.observer import parse_mqtt_url
from tests.support.gateway_rig import topic


class V5Client:
    """An MQTT 5 application: sends signed requests with correlation data, reads results."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.key = b""  # the operator key; set once the gateway's config is made
        self.results: asyncio.Queue[tuple[str, dict[str, Any], bytes | None]] = asyncio.Queue()
        self.answers: list[dict[str, Any]] = []  # every result, in arrival order
        self._changed = asyncio.Condition()

    async def request(self, node: str, name: str, payload: dict[str, Any],
                      correlation: bytes | None = None, *, signed: bool = True,
                      signed_at: float | None = None, retain: bool = False) -> dict[str, Any]:
        """Publish the request, signed (now, or at ``signed_at``) unless told otherwise;
        returns what was sent."""
        properties = None
        if correlation is not None:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.CorrelationData = correlation
        where = topic(node, f"cmd/{name}")
        if signed:
            payload = sign(self.key, where, payload, now_s=signed_at)
        await self.client.publish(where, json.dumps(payload), qos=1, properties=properties,
                                  retain=retain)
        return payload

    async def publish_raw(self, node: str, name: str, payload: bytes) -> None:
        """Publish any bytes as a command (hostile input)."""
        await self.client.publish(topic(node, f"cmd/{name}"), payload, qos=1)

    async def result(self, timeout: float = 10.0) -> tuple[str, dict[str, Any], bytes | None]:
        return await asyncio.wait_for(self.results.get(), timeout)

    async def answer(self, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first result carrying ``"id": request_id`` (results for others are kept)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(
                lambda: any(a.get("id") == request_id for a in self.answers))
        return next(a for a in self.answers if a.get("id") == request_id)

    async def _listen(self) -> None:
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            correlation = getattr(message.properties, "CorrelationData", None)
            result = json.loads(message.payload)
            await self.results.put((message.topic.value, result,
                                    None if correlation is None else bytes(correlation)))
            async with self._changed:
                self.answers.append(result)
                self._changed.notify_all()


@asynccontextmanager
async def v5_client(url: str) -> AsyncIterator[V5Client]:
    host, port = parse_mqtt_url(url)
    async with aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5) as client:
        app = V5Client(client)
        await client.subscribe(topic("+", "cmd/+/result"), qos=1)
        listener = asyncio.create_task(app._listen())
        try:
            yield app
        finally:
            listener.cancel()
