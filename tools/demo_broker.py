"""The demo's MQTT broker: a URL given with ``--broker``, or amqtt embedded in this process.

`EmbeddedBroker` runs amqtt on connections it accepts itself (amqtt's "external" listener),
which gives the demo two things a plain amqtt listener would not:

* a **restart that keeps the port**: stop listening, close every connection, shut amqtt
  down; later a new amqtt broker and the same port again. Clients see what they see of a
  real broker's restart: their connection closes, connecting is refused, then it works.
* a **ledger of acknowledged messages**: each connection's bytes are read on the way
  (`MqttStream`), and every QoS 1 PUBLISH a client sent is reported once the broker wrote
  its PUBACK. That is where the gateway's promise ends: it marks a journal row delivered on
  that PUBACK, so ``--chaos`` counts a message as published there.

The embedded broker speaks MQTT 3.1.1 only (amqtt), and so does `MqttStream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
import click
from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker as AmqttBroker
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["Broker", "EmbeddedBroker", "MqttStream"]

LISTENER = "default"  # amqtt requires a listener of this name
SESSION_EXPIRY_S = 300  # how long a broker keeps the demo's subscription while it is away
PUBLISH, PUBACK = 3, 4  # MQTT control packet types (MQTT 3.1.1 §2.2.1)


@dataclass(frozen=True)
class Broker:
    """Where the gateway and the demo's subscriber connect."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    protocol: str = "5"

    @classmethod
    def from_url(cls, url: str) -> Broker:
        """``mqtt://[user:password@]host[:port]`` or ``mqtts://...``."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:  # not a number, or beyond 65535
            port = -1
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or port == -1:
            raise click.BadParameter(f"{url!r}: expected mqtt://host[:port] or mqtts://host[:port]",
                                     param_hint="--broker")
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname, port or (8883 if tls else 1883), tls,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)

    @property
    def url(self) -> str:
        """The URL without credentials (what the gateway config takes)."""
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"

    def gateway_settings(self) -> dict[str, Any]:
        """The ``[mqtt]`` keys of the gateway config beyond ``url``."""
        settings: dict[str, Any] = {"protocol": self.protocol, "keepalive_s": 30}
        if self.username:
            settings["username"] = self.username
        if self.password:
            settings["password"] = self.password
        return settings

    def subscriber(self) -> aiomqtt.Client:
        """An MQTT client for the demo's own subscription. Its session outlives a lost
        connection (for `SESSION_EXPIRY_S` with MQTT 5), so a broker that keeps sessions
        across its restart hands over what was published while the demo reconnected."""
        v5 = self.protocol == "5"
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
        return aiomqtt.Client(
            self.host, self.port, username=self.username, password=self.password,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            tls_params=aiomqtt.TLSParameters() if self.tls else None,
            identifier=f"streetsense-demo-{os.getpid()}", clean_session=None if v5 else False,
            clean_start=False if v5 else MQTT_CLEAN_START_FIRST_ONLY,  # paho: v3 takes only this
            properties=properties, timeout=10)

    def mosquitto_sub(self, topic: str) -> str:
        """The command line that shows the same messages."""
        options = "" if self.port == 1883 else f" -p {self.port}"
        if self.tls:
            options += " --tls-use-os-certs"
        if self.username:
            options += f" -u {self.username} -P <password>"
        return f"mosquitto_sub -h {self.host}{options} -t '{topic}' -v"


class MqttStream:
    """One direction of an MQTT connection cut into control packets: (type, flags, body)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """The packets that ``data`` completes (a packet may span several calls)."""
        self._buffer += data
        packets = []
        while (header := self._header()) is not None:
            start, length = header
            first = self._buffer[0]
            packets.append((first >> 4, first & 0x0F, bytes(self._buffer[start:start + length])))
            del self._buffer[:start + length]
        return packets

    def _header(self) -> tuple[int, int] | None:
        """(body offset, body length) of the first packet if it is complete."""
        length, position = 0, 1
        for shift in (0, 7, 14, 21):  # the remaining length: 1 to 4 bytes (MQTT §2.2.3)
            if position >= len(self._buffer):
                return None
            byte = self._buffer[position]
            position += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
        return (position, length) if len(self._buffer) >= position + length else None


class _Sniffer:
    """The two directions of one connection: PUBLISHes from the client, PUBACKs from amqtt."""

    def __init__(self, acknowledged: Callable[[str, bytes], None]) -> None:
        self._acknowledged = acknowledged
        self._from_client, self._from_broker = MqttStream(), MqttStream()
        self._pending: dict[int, tuple[str, bytes]] = {}  # packet id -> (topic, payload)

    def client_sent(self, data: bytes) -> None:
        for kind, flags, body in self._from_client.feed(data):
            if kind == PUBLISH and (flags >> 1) & 3 == 1:
                size = int.from_bytes(body[:2], "big")
                packet_id = int.from_bytes(body[2 + size:4 + size], "big")
                self._pending[packet_id] = (body[2:2 + size].decode(errors="replace"),
                                            body[4 + size:])

    def broker_sent(self, data: bytes) -> None:
        for kind, _, body in self._from_broker.feed(data):
            if kind == PUBACK and (message := self._pending.pop(
                    int.from_bytes(body[:2], "big"), None)) is not None:
                self._acknowledged(*message)


class _Reader(StreamReaderAdapter):  # type: ignore[misc]  # amqtt is untyped
    def __init__(self, reader: asyncio.StreamReader, sniffer: _Sniffer) -> None:
        super().__init__(reader)
        self._sniffer = sniffer

    async def read(self, n: int = -1) -> bytes:
        data: bytes = await super().read(n)
        self._sniffer.client_sent(data)
        return data


class _Writer(StreamWriterAdapter):  # type: ignore[misc]
    def __init__(self, writer: asyncio.StreamWriter, sniffer: _Sniffer) -> None:
        super().__init__(writer)
        self._sniffer = sniffer

    def write(self, data: bytes) -> None:
        if not self.is_closed:
            self._sniffer.broker_sent(data)
        super().write(data)


class EmbeddedBroker:
    """amqtt on ``127.0.0.1:port``, anonymous; `stop()`/`start()` keep the port.

    ``acknowledged(topic, payload)`` is called for every QoS 1 message once amqtt wrote its
    PUBACK (on the event loop).
    """

    host = "127.0.0.1"

    def __init__(self, port: int,
                 acknowledged: Callable[[str, bytes], None] = lambda topic, payload: None
                 ) -> None:
        self.port = port
        self.acknowledged = acknowledged
        self._amqtt: AmqttBroker | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """A new amqtt broker, then listen on the port (again)."""
        logging.getLogger("amqtt").setLevel(logging.CRITICAL)  # it logs every client leaving
        self._amqtt = AmqttBroker({
            "listeners": {LISTENER: {"type": "external"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                        {"allow_anonymous": True}},
        })  # fmt: skip
        await self._amqtt.start()
        self._server = await asyncio.start_server(self._serve, self.host, self.port,
                                                  reuse_address=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._amqtt is None:
            writer.close()
            return
        sniffer = _Sniffer(self.acknowledged)
        self._connections.add(writer)
        try:
            await self._amqtt.external_connected(_Reader(reader, sniffer),
                                                 _Writer(writer, sniffer), LISTENER)
        finally:
            self._connections.discard(writer)
            writer.close()

    async def stop(self) -> None:
        """Stop listening, close every connection, shut amqtt down (its state is gone)."""
        server, broker = self._server, self._amqtt
        self._server, self._amqtt = None, None
        if server is not None:
            server.close()
        for writer in list(self._connections):
            writer.transport.abort()
        if broker is not None:
            with contextlib.suppress(Exception):  # a broker half-down is still down
                await broker.shutdown()
        if server is not None:
            await server.wait_closed()
