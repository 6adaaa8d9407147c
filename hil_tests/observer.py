"""An MQTT observer for HIL tests: records every message it sees and lets a test wait for one.

`MqttObserver` subscribes (QoS 1) on its own connection straight to the broker, keeps a
transcript of everything that arrives, and reconnects (resubscribing) when the broker goes
away. Tests wait on the transcript, never on the clock::

    async with MqttObserver(broker.url, topics=["streetsense/#"]) as observer:
        data = await observer.expect("streetsense/+/HN-0042/data", lambda m: m.json()["seq"] > 2)
        rows = await observer.collect("streetsense/+/+/data", 5, timeout=30)

`expect`/`collect` look at what was already recorded (from `since`, an index from `mark()`)
before waiting for more, so a message that arrives before the test asks is not missed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import aiomqtt

__all__ = ["ExpectationTimeout", "MqttObserver", "Observed", "parse_mqtt_url"]

Predicate = Callable[["Observed"], bool]


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """``mqtt://host:port`` → (host, port); the port defaults to 1883."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"not an mqtt://host:port URL: {url!r}")
    return parts.hostname, parts.port or 1883


@dataclass(frozen=True)
class Observed:
    """One message as the observer received it; ``at`` is seconds since the observer started."""

    index: int
    at: float
    topic: str
    payload: bytes
    qos: int
    retain: bool

    @cached_property
    def _parsed(self) -> Any:
        return json.loads(self.payload)

    def json(self) -> Any:
        """The payload parsed as JSON (parsed once, then cached)."""
        return self._parsed

    def matches(self, topic_filter: str) -> bool:
        """Whether the topic matches an MQTT filter (``+`` and ``#`` wildcards)."""
        return aiomqtt.Topic(self.topic).matches(topic_filter)

    def as_record(self) -> dict[str, Any]:
        """A JSON-able line for the transcript file (payload as text when it is UTF-8)."""
        try:
            payload: str = self.payload.decode()
            encoding = "utf-8"
        except UnicodeDecodeError:
            payload, encoding = self.payload.hex(), "hex"
        return {"index": self.index, "at": round(self.at, 4), "topic": self.topic,
                "qos": self.qos, "retain": self.retain, "encoding": encoding, "payload": payload}


class ExpectationTimeout(AssertionError):
    """No matching message in time; the message lists what did arrive on nearby topics."""


class MqttObserver:
    """Records the messages on ``topics`` (filters) from the broker at ``url``.

    Use it as an async context manager: entering returns once the first subscription is
    acknowledged. ``connections`` counts successful (re)subscriptions.
    """

    def __init__(self, url: str, *, topics: Iterable[str] = ("#",),
                 client_id: str | None = None, keepalive_s: int = 5) -> None:
        self.url = url
        self.topics = list(topics)
        self.client_id = client_id
        self.keepalive_s = keepalive_s
        self.transcript: list[Observed] = []
        self.connections = 0
        self.connected = False
        self._started = time.monotonic()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="mqtt-observer")
        await self.wait_connected(timeout=10.0)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        host, port = parse_mqtt_url(self.url)
        backoff_s = 0.05
        while True:
            try:
                async with aiomqtt.Client(host, port, identifier=self.client_id,
                                          keepalive=self.keepalive_s) as client:
                    for topic in self.topics:
                        await client.subscribe(topic, qos=1)
                    self._client = client
                    async with self._changed:
                        self.connections += 1
                        self.connected = True
                        self._changed.notify_all()
                    backoff_s = 0.05
                    async for message in client.messages:
                        await self._record(message)
            except aiomqtt.MqttError:
                self._client = None
                async with self._changed:
                    self.connected = False
                    self._changed.notify_all()
                # Reconnect pacing (capped backoff) while the broker is away, not a sync wait.
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 0.5)

    async def _record(self, message: aiomqtt.Message) -> None:
        payload = message.payload
        if isinstance(payload, str):
            payload = payload.encode()
        elif not isinstance(payload, bytes | bytearray):
            payload = b"" if payload is None else str(payload).encode()
        async with self._changed:
            self.transcript.append(Observed(
                index=len(self.transcript), at=time.monotonic() - self._started,
                topic=message.topic.value, payload=bytes(payload), qos=int(message.qos),
                retain=bool(message.retain)))
            self._changed.notify_all()

    async def publish(self, topic: str, payload: Any, *, qos: int = 1) -> None:
        """Publish on the observer's connection (a dict or list payload is sent as JSON)."""
        if self._client is None:
            raise ExpectationTimeout(f"observer is not connected to {self.url}")
        if isinstance(payload, dict | list):
            payload = json.dumps(payload)
        await self._client.publish(topic, payload, qos=qos)

    def mark(self) -> int:
        """The index the next message will get: pass it as ``since=`` to ignore older ones."""
        return len(self.transcript)

    def messages(self, topic_filter: str = "#", predicate: Predicate | None = None, *,
                 since: int = 0) -> list[Observed]:
        """The recorded messages matching the filter and predicate, oldest first."""
        return [m for m in self.transcript[since:]
                if m.matches(topic_filter) and (predicate is None or predicate(m))]

    async def wait_connected(self, *, timeout: float, after: int = 0) -> None:
        """Wait until subscribed on a connection numbered above ``after`` (see ``connections``)."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: self.connected and self.connections > after)
        except TimeoutError:
            raise ExpectationTimeout(f"observer not subscribed to {self.url} within {timeout} s") \
                from None

    async def expect(self, topic_filter: str, predicate: Predicate | None = None, *,
                     timeout: float = 10.0, since: int = 0) -> Observed:
        """The first message (from ``since``) matching filter and predicate; waits up to
        ``timeout`` seconds for it, else raises `ExpectationTimeout`."""
        return (await self.collect(topic_filter, 1, predicate, timeout=timeout, since=since))[0]

    async def collect(self, topic_filter: str, count: int, predicate: Predicate | None = None,
                      *, timeout: float = 10.0, since: int = 0) -> list[Observed]:
        """The first ``count`` messages (from ``since``) matching filter and predicate."""
        found: list[Observed] = []
        scanned = since
        try:
            async with asyncio.timeout(timeout), self._changed:
                while True:
                    for message in self.transcript[scanned:]:
                        if message.matches(topic_filter) and (predicate is None
                                                              or predicate(message)):
                            found.append(message)
                            if len(found) == count:
                                return found
                    scanned = len(self.transcript)
                    await self._changed.wait()
        except TimeoutError:
            raise ExpectationTimeout(self._explain(topic_filter, count, found, timeout, since)) \
                from None

    def _explain(self, topic_filter: str, count: int, found: Sequence[Observed],
                 timeout: float, since: int) -> str:
        on_topic = self.messages(topic_filter, since=since)
        lines = [f"expected {count} message(s) on {topic_filter!r} within {timeout} s; "
                 f"{len(found)} matched, {len(on_topic)} on the topic, "
                 f"{len(self.transcript) - since} in all"]
        for message in (on_topic or self.transcript[since:])[-8:]:
            lines.append(f"  #{message.index} {message.topic} {message.payload[:300]!r}")
        return "\n".join(lines)

    def dump(self, path: Path) -> None:
        """Write the transcript as JSON lines."""
        with path.open("w") as out:
            for message in self.transcript:
                out.write(json.dumps(message.as_record()) + "\n")
