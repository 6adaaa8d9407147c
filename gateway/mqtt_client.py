"""The gateway's MQTT connection: QoS 1 publishing in batches, on an asyncio protocol.

Every PUBLISH made in one turn of the event loop leaves in one transport write, and every
PUBACK in one read is handled in one pass, each by a plain callback (no future, no task per
message). That is where aiomqtt/paho spent most of the gateway's CPU per frame (a
``Future``, a ``wait_for`` and a socket ``send`` per message, see docs/gateway.md). The
packets are `mqtt_wire`'s; this module only moves bytes, keeps the packet ids in flight
within the broker's Receive Maximum, the keep alive, and turns what the broker says into
`MqttError` sentences.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import mqtt_wire as wire
from .logbudget import LogBudget

__all__ = ["Message", "MqttClient", "MqttError", "PubackHandler"]

log = logging.getLogger("streetsense.gateway.mqtt")

PubackHandler = Callable[[int], None]  # called with the PUBACK's reason code


class MqttError(Exception):
    """The connection failed or broke; the text says why (a refusal, a protocol error...)."""


@dataclass(frozen=True, slots=True)
class Message:
    """A message received on a subscription."""

    topic: str
    payload: bytes
    retain: bool = False
    correlation: bytes | None = None  # MQTT 5 Correlation Data


class MqttClient(asyncio.Protocol):
    """One MQTT connection: ``await MqttClient.open(...)``, then ``publish``/``subscribe``.

    ``on_message`` gets each message of the subscriptions. ``wait_lost`` raises the
    `MqttError` once the connection is gone, whichever side ended it.
    """

    def __init__(self, connect: wire.Connect, on_message: Callable[[Message], None]) -> None:
        self._connect = connect
        self._v5 = connect.v5
        self._on_message = on_message
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._decoder = wire.Decoder()
        self._log = LogBudget(log)
        self._out: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None
        self._next_id = 0
        self._in_flight: dict[int, PubackHandler | None] = {}
        self._subscribing: dict[int, asyncio.Future[list[int]]] = {}
        self._space = asyncio.Event()
        self._space.set()
        self.receive_maximum = 65535  # the broker's, from CONNACK (5.0 §3.2.2.3.3)
        self.keepalive_s = connect.keepalive_s
        self._connack: asyncio.Future[None] = self._loop.create_future()
        self._lost: asyncio.Future[None] = self._loop.create_future()  # see wait_lost
        self._closed = False
        self._keepalive: asyncio.TimerHandle | None = None
        self._last_out = self._last_in = time.monotonic()
        self._ping_sent = 0.0

    # ---- connecting ---------------------------------------------------------------------

    @classmethod
    async def open(cls, host: str, port: int, connect: wire.Connect, *,
                   on_message: Callable[[Message], None], tls: ssl.SSLContext | None = None,
                   timeout_s: float = 10.0) -> MqttClient:
        """Connect, send CONNECT and wait for the CONNACK; `MqttError` if it fails."""
        client = cls(connect, on_message)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                await loop.create_connection(lambda: client, host, port, ssl=tls,
                                             server_hostname=host if tls else None)
                await client._connack
        except TimeoutError:
            client.abort()
            raise MqttError(f"no CONNACK from {host}:{port} within {timeout_s:.0f} s") \
                from None
        except (OSError, ssl.SSLError) as exc:
            client.abort()
            raise MqttError(f"cannot connect to {host}:{port}: {exc}") from exc
        except BaseException:
            client.abort()
            raise
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._send(wire.encode_connect(self._connect))

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        why = MqttError(f"connection lost: {exc}" if exc else "connection closed by the broker")
        self._end(why)

    def _end(self, why: MqttError) -> None:
        self._closed = True
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        futures: list[asyncio.Future[Any]] = [self._connack, self._lost,
                                              *self._subscribing.values()]
        for future in futures:
            if not future.done():
                future.set_exception(why)
        if not self._lost.cancelled():
            self._lost.exception()  # retrieved: nobody has to await it
        self._subscribing.clear()
        self._in_flight.clear()  # the journal sends these again on the next connection
        self._space.set()  # waiters wake and see `closed`
        if self._transport is not None:
            self._transport.abort()
            self._transport = None

    @property
    def closed(self) -> bool:
        return self._closed

    async def wait_lost(self) -> None:
        """Raises the `MqttError` once the connection is gone. Shielded: a cancelled waiter
        does not cancel ``_lost`` (the connection is not gone because a task was cancelled)."""
        await asyncio.shield(self._lost)

    def abort(self, why: str = "connection aborted") -> None:
        """Drop the connection at once (no DISCONNECT: the broker publishes the Will)."""
        if not self.closed:
            self._end(MqttError(why))

    async def disconnect(self) -> None:
        """DISCONNECT (the Will is dropped), then close."""
        if self._transport is not None and not self.closed:
            self._send(wire.encode_disconnect())
            self.flush()
            transport = self._transport
            self._end(MqttError("disconnected"))
            transport.close()

    # ---- sending ------------------------------------------------------------------------

    def _send(self, packet: bytes) -> None:
        self._out.append(packet)
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def flush(self) -> None:
        """Write the packets queued so far now (otherwise at the end of this loop turn)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()

    def _flush(self) -> None:
        self._flush_handle = None
        if self._transport is not None and self._out:
            self._transport.write(b"".join(self._out))
            self._last_out = time.monotonic()
        self._out.clear()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def room(self, window: int) -> int:
        """How many more QoS 1 publishes may go out now, within ``window`` and the broker's
        Receive Maximum."""
        return max(0, min(window, self.receive_maximum) - len(self._in_flight))

    async def wait_room(self, window: int) -> None:
        """Until ``room(window)`` is positive; `MqttError` if the connection is gone."""
        while not self.room(window):
            if self.closed:
                await self.wait_lost()
            self._space.clear()
            await self._space.wait()
        if self.closed:
            await self.wait_lost()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False,
                correlation: bytes | None = None, on_ack: PubackHandler | None = None) -> None:
        """Queue a QoS 1 PUBLISH (sent with the rest of this loop turn's packets); ``on_ack``
        is called on its PUBACK. Mind ``room``: the broker may close a client that goes
        beyond its Receive Maximum."""
        if self.closed:
            raise MqttError("the connection is closed")
        packet_id = self._new_id()
        self._in_flight[packet_id] = on_ack
        self._send(wire.encode_publish(topic, payload, packet_id=packet_id, v5=self._v5,
                                       retain=retain, correlation=correlation))

    def _new_id(self) -> int:
        """A non-zero packet id not in use (5.0 §2.2.1, 3.1.1 §2.3.1)."""
        packet_id = self._next_id
        while True:
            packet_id = packet_id % 0xFFFF + 1
            if packet_id not in self._in_flight:
                self._next_id = packet_id
                return packet_id

    async def publish_acked(self, topic: str, payload: bytes, *, retain: bool = False,
                            correlation: bytes | None = None, window: int = 65535) -> int:
        """Publish and wait for the PUBACK; returns its reason code."""
        await self.wait_room(window)
        acked: asyncio.Future[int] = self._loop.create_future()

        def on_ack(code: int) -> None:
            if not acked.done():
                acked.set_result(code)

        self.publish(topic, payload, retain=retain, correlation=correlation, on_ack=on_ack)
        done, _ = await asyncio.wait((acked, self._lost), return_when=asyncio.FIRST_COMPLETED)
        if acked not in done:
            acked.cancel()
            await self.wait_lost()
        return acked.result()

    async def subscribe(self, filters: list[str]) -> list[int]:
        """SUBSCRIBE at QoS 1; the SUBACK's reason code per filter."""
        packet_id = self._new_id()
        future: asyncio.Future[list[int]] = self._loop.create_future()
        self._subscribing[packet_id] = future
        self._in_flight[packet_id] = None  # keeps the id out of the publishes' way
        self._send(wire.encode_subscribe(packet_id, filters, v5=self._v5))
        return await future

    # ---- receiving ----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._last_in = time.monotonic()
        self._ping_sent = 0.0
        try:
            for packet in self._decoder.feed(data):
                if self.closed:  # a DISCONNECT or a refusal before the rest of this read
                    break
                self._handle(packet)
        except wire.MalformedPacket as exc:
            log.warning("MQTT protocol error from the broker: %s; closing the connection", exc)
            self._end(MqttError(f"protocol error from the broker: {exc}"))
        space = self.receive_maximum - len(self._in_flight)
        if space > 0 and not self._space.is_set():
            self._space.set()

    def _handle(self, packet: wire.Packet) -> None:
        kind = packet.type
        if packet.dropped:
            self._oversized(packet)
        elif kind == wire.PUBACK:
            packet_id, code = wire.parse_puback(packet.body)
            if packet_id not in self._in_flight:
                raise wire.MalformedPacket(f"PUBACK for packet id {packet_id}, not in flight")
            on_ack = self._in_flight.pop(packet_id)
            if on_ack is not None:
                on_ack(code)
        elif kind == wire.PUBLISH:
            self._received(packet)
        elif kind == wire.CONNACK:
            self._connacked(packet)
        elif kind == wire.SUBACK:
            packet_id, codes = wire.parse_suback(packet.body, v5=self._v5)
            future = self._subscribing.pop(packet_id, None)
            self._in_flight.pop(packet_id, None)
            if future is None:
                raise wire.MalformedPacket(f"SUBACK for packet id {packet_id}, not asked")
            if not future.done():
                future.set_result(codes)
        elif kind == wire.PINGRESP:
            pass
        elif kind == wire.DISCONNECT and self._v5:
            code, text = wire.parse_disconnect(packet.body)
            reason = wire.reason_text(code) + (f" ({text})" if text else "")
            log.warning("the MQTT broker closed the connection: %s", reason)
            self._end(MqttError(f"the broker disconnected: {reason}"))
        else:
            raise wire.MalformedPacket(f"unexpected packet type {kind} from a broker")

    def _connacked(self, packet: wire.Packet) -> None:
        if self._connack.done():
            raise wire.MalformedPacket("a second CONNACK")
        _, code, props = wire.parse_connack(packet.body, v5=self._v5)
        if code:
            why = wire.connack_reason(code, v5=self._v5)
            reason = props.get(wire.REASON_STRING)
            self._end(MqttError(f"the broker refused the connection: {why}"
                                + (f" ({reason})" if reason else "")))
            return
        self.receive_maximum = props.get(wire.RECEIVE_MAXIMUM, 65535)
        self.keepalive_s = props.get(wire.SERVER_KEEP_ALIVE, self.keepalive_s)
        self._connack.set_result(None)
        if self.keepalive_s:
            self._keepalive = self._loop.call_later(self.keepalive_s / 2, self._tick)

    def _oversized(self, packet: wire.Packet) -> None:
        """A PUBLISH over the decoder's bound: acknowledged (else a retained one would come
        back after every reconnection), logged, not delivered."""
        if packet.type != wire.PUBLISH:
            raise wire.MalformedPacket(f"a packet of type {packet.type} with "
                                       f"{len(packet.body) + packet.dropped} bytes")
        topic, qos, packet_id = wire.publish_head(packet)
        if qos == 1:
            self._send(wire.encode_puback(packet_id))
        self._log.log(logging.WARNING, "MQTT message on %s dropped: %d bytes, over the %d "
                      "this gateway takes", topic, len(packet.body) + packet.dropped,
                      self._decoder.max_packet)

    def _received(self, packet: wire.Packet) -> None:
        topic, payload, qos, packet_id, retain, props = wire.parse_publish(packet, v5=self._v5)
        if qos == 2:  # subscribed at QoS 1: 5.0 §3.8.4 / 3.1.1 §3.8.4 cap what it may send
            raise wire.MalformedPacket(f"a QoS 2 PUBLISH on {topic!r}, above the QoS 1 granted")
        if wire.TOPIC_ALIAS in props:  # none allowed: no Topic Alias Maximum sent (§3.1.2.11.5)
            raise wire.MalformedPacket(f"a topic alias on {topic!r}, none allowed")
        if qos == 1:
            self._send(wire.encode_puback(packet_id))
        self._on_message(Message(topic, payload, retain, props.get(wire.CORRELATION_DATA)))

    # ---- keep alive (5.0 §3.1.2.10, 3.1.1 §3.1.2.10) -----------------------------------

    def _tick(self) -> None:
        """Every half keep alive: a PINGREQ if nothing went out or came in for that long;
        no answer within a keep alive means the connection is dead (a black hole)."""
        now = time.monotonic()
        half = self.keepalive_s / 2
        if self._ping_sent and now - self._ping_sent >= self.keepalive_s:
            log.debug("no PINGRESP within %s s", self.keepalive_s)
            self._end(MqttError(f"keep alive timeout: no answer from the broker within "
                                f"{self.keepalive_s} s"))
            return
        if not self._ping_sent and (now - self._last_out >= half or now - self._last_in >= half):
            self._send(wire.PINGREQ_BYTES)
            self._ping_sent = now
        self._keepalive = self._loop.call_later(half, self._tick)

