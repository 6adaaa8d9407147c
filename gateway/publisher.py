"""MQTT out: drains the journal to the broker, QoS 1, pipelined and batched (`mqtt_client`).

One connection at a time, to the broker or to one member of a broker cluster: when the
member in use is lost the next is tried at once, and only once every member has failed is
the next attempt held back by a capped, jittered backoff (`Failover`). On every connection the
gateway's retained ``state`` goes online (its Will says offline), the retained node states
are republished, the command topics subscribed, and the journal drained in id order with
up to ``window`` publishes in flight, those of one loop turn in one write. A journal row is
marked published only after its PUBACK; whatever was in flight when a connection broke is
sent again on the next one.
Messages that waited for the broker are published with their original timestamps and
``"delayed": true``: those received by an earlier run of the gateway, and, on a reconnect
(or a first connect that needed retries), those received before the connection came up.
Messages of the subscriptions come out of ``messages()``, an async iterator that lasts
across reconnections.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from . import mqtt_wire
from .config import MqttSection
from .failover import Failover
from .journal import Journal, Row
from .logbudget import LogBudget
from .metrics import Metrics
from .mqtt_client import Message, MqttClient, MqttError

__all__ = ["BrokerSettings", "Message", "Publisher"]

log = logging.getLogger("streetsense.gateway.publisher")

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
FETCH_ROWS = 500
LIVE_MAX = 10_000  # rows held in memory for the drain; beyond, it reads the journal
MARK_DELAY_S = 0.1
MARK_RETRY_S = 1.0
SETUP_S = 10.0  # for the broker's answers to a new connection's first packets


@dataclass(frozen=True)
class BrokerSettings:
    """How to reach the broker (``from_config`` builds it from the ``[mqtt]`` section):
    ``members`` is its (host, port), or each cluster member's in the order they are tried."""

    members: tuple[tuple[str, int], ...]
    client_id: str
    tls: bool = False
    protocol: str = "5"  # "5" or "3.1.1"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 30
    window: int = 50  # publishes in flight

    @classmethod
    def from_config(cls, mqtt: MqttSection) -> BrokerSettings:
        return cls(members=mqtt.addresses, client_id=mqtt.client_id, tls=mqtt.tls,
                   protocol=mqtt.protocol, username=mqtt.username, password=mqtt.password,
                   ca_file=None if mqtt.ca_file is None else str(mqtt.ca_file),
                   cert_file=None if mqtt.cert_file is None else str(mqtt.cert_file),
                   key_file=None if mqtt.key_file is None else str(mqtt.key_file),
                   keepalive_s=mqtt.keepalive_s, window=mqtt.inflight)

    def member_url(self, member: tuple[str, int]) -> str:
        host, port = member
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{port}"

    @property
    def url(self) -> str:
        """The broker's URL, or the members' separated by commas."""
        return ", ".join(self.member_url(member) for member in self.members)

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context (custom CA, client certificate), None for plain TCP."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


class Publisher:
    """The gateway's MQTT client: journal drain, retained states, subscriptions."""

    def __init__(self, settings: BrokerSettings, journal: Journal, *, state_topic: str,
                 online_payload: Callable[[], bytes], offline_payload: bytes,
                 subscriptions: Sequence[str] = (), metrics: Metrics | None = None,
                 seed: int | None = None) -> None:
        self.settings = settings
        self._journal = journal
        self._state_topic = state_topic
        self._online_payload = online_payload
        self._offline_payload = offline_payload
        self._subscriptions = list(subscriptions)
        self._rng = random.Random(seed)
        self._tls_context = settings.tls_context()  # files read once: checked by the config
        self.failover = Failover(settings.members, rng=self._rng, min_s=BACKOFF_MIN_S,
                                 max_s=BACKOFF_MAX_S)
        self.metrics = metrics or Metrics()
        self._client: MqttClient | None = None
        self._wake = asyncio.Event()
        self._retained: dict[str, bytes] = {}
        self._retained_dirty: dict[str, None] = {}
        self._retained_wake = asyncio.Event()
        self._live: deque[Row] = deque()
        self._acked_wake = asyncio.Event()
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._attempt_waiters: list[asyncio.Future[None]] = []
        self._published_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._refusals = LogBudget(log)
        self.connected = asyncio.Event()
        self.offline = asyncio.Event()  # set while there is no broker connection
        self.offline.set()
        self.connected_since = 0.0
        self.started_at = time.time()
        self.failures = 0  # connection attempts that failed or connections that broke
        self._held_before = self.started_at  # rows received before this waited for the broker
        self.connections = 0
        self.reconnects = 0
        self.published = 0
        self.published_delayed = 0
        self.refused = 0  # PUBACKs with a failure reason (MQTT 5), logged
        self.last_error = ""
        self._stopping = False

    @property
    def is_v5(self) -> bool:
        return self.settings.protocol == "5"

    # ---- inputs -------------------------------------------------------------------------

    def offer(self, rows: Sequence[Row]) -> None:
        """Rows just committed: published from memory while the drain is caught up."""
        if self._client is None:
            return  # the next connection reads them from the journal
        self._live.extend(rows)
        if len(self._live) > LIVE_MAX:
            self._live.clear()  # the gap sends the drain back to the journal
        self._wake.set()

    def set_retained(self, topic: str, payload: bytes) -> None:
        """Publish ``payload`` retained on ``topic`` now (if connected) and on every reconnect."""
        self._retained[topic] = payload
        self._retained_dirty[topic] = None
        self._retained_wake.set()

    def forget_retained(self, topic: str) -> None:
        """Stop republishing ``topic`` on reconnects (a node another gateway now owns)."""
        self._retained.pop(topic, None)
        self._retained_dirty.pop(topic, None)

    async def publish_now(self, topic: str, payload: bytes, *, retain: bool = False,
                          correlation: bytes | None = None, timeout_s: float = 5.0) -> bool:
        """Publish outside the journal (health, gateway-made results); False if offline."""
        client = self._client
        if client is None:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                code = await client.publish_acked(
                    topic, payload, retain=retain, window=self.settings.window,
                    correlation=correlation if self.is_v5 else None)
        except (MqttError, TimeoutError) as exc:
            log.debug("publish to %s failed: %s", topic, exc or "timeout")
            self.metrics.publish_failed()
            return False
        return self._accepted(topic, code)

    def _refused(self, topic: str, code: int) -> None:
        self._accepted(topic, code)

    def _accepted(self, topic: str, code: int) -> bool:
        """Whether a PUBACK's reason code is a success (5.0 §3.4.2.1); a refusal is logged."""
        if code < 0x80:
            return True
        self.refused += 1
        self._refusals.log(logging.WARNING, "the broker refused the message on %s: %s", topic,
                           mqtt_wire.reason_text(code))
        return False

    async def messages(self) -> AsyncIterator[Message]:
        """The messages of the subscriptions, from every connection, in arrival order."""
        while True:
            yield await self._inbox.get()

    # ---- connection loop ----------------------------------------------------------------

    async def attempted(self) -> None:
        """Until the next connection attempt has ended (connected, refused or lost)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._attempt_waiters.append(waiter)
        await waiter

    async def wait_published(self, count: int) -> None:
        """Until ``count`` journal messages have been acknowledged by the broker (PUBACK)."""
        if self.published < count:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._published_waiters.append((count, waiter))
            await waiter

    def _wake_published(self) -> None:
        waiting = []
        for count, waiter in self._published_waiters:
            if self.published >= count and not waiter.done():
                waiter.set_result(None)
            elif not waiter.done():
                waiting.append((count, waiter))
        self._published_waiters = waiting

    def _attempt_ended(self) -> None:
        waiters, self._attempt_waiters = self._attempt_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    @property
    def member_url(self) -> str:
        """The URL of the broker (cluster member) in use, or tried next."""
        return self.settings.member_url(self.failover.current)

    async def _open(self) -> MqttClient:
        s = self.settings
        host, port = self.failover.current
        connect = mqtt_wire.Connect(
            client_id=s.client_id, v5=self.is_v5, keepalive_s=s.keepalive_s,
            username=s.username, password=s.password, will_topic=self._state_topic,
            will_payload=self._offline_payload, will_retain=True)
        return await MqttClient.open(host, port, connect, on_message=self._inbox.put_nowait,
                                     tls=self._tls_context, timeout_s=10.0)

    async def run(self) -> None:
        """Stay connected until cancelled; every session drains the journal."""
        while True:
            client: MqttClient | None = None
            try:
                client = await self._open()
                self._client = client
                self.connections += 1
                if self.connections > 1:
                    self.reconnects += 1
                self.connected_since = time.time()
                if self.failures:
                    self._held_before = self.connected_since
                log.info("connected to MQTT broker %s as %s (MQTT %s)", self.member_url,
                         self.settings.client_id, self.settings.protocol)
                self.failover.connected()
                await self._session(client)
            except* MqttError as group:
                self.last_error = "; ".join(str(e) for e in group.exceptions)
                self.failures += 1
                self._attempt_ended()
            finally:
                self._client = None
                self._live.clear()
                self.connected.clear()
                self.offline.set()
                self.metrics.set_broker(False)
                if client is not None:
                    await client.disconnect()  # a clean stop: DISCONNECT, no Will
            if self._stopping:
                # A stop's cancellation that met a broker error inside the TaskGroup
                # surfaces as that error alone (Python 3.11): no reconnect after goodbye.
                return
            lost = self.member_url
            sleep_s = self.failover.failed()
            log.warning("MQTT broker %s unreachable (%s); trying %s in %.1f s", lost,
                        self.last_error, self.member_url, sleep_s)
            await asyncio.sleep(sleep_s)

    async def _session(self, client: MqttClient) -> None:
        try:
            async with asyncio.timeout(SETUP_S):
                await client.publish_acked(self._state_topic, self._online_payload(),
                                           retain=True)
                codes = await client.subscribe(self._subscriptions) \
                    if self._subscriptions else []
        except TimeoutError:
            client.abort("no answer to the state publish or the subscriptions")
            raise MqttError(f"the broker did not answer within {SETUP_S:.0f} s") from None
        for topic_filter, code in zip(self._subscriptions, codes, strict=False):
            if code >= 0x80:
                log.warning("the broker refused the subscription to %s: %s", topic_filter,
                            mqtt_wire.reason_text(code))
        self._retained_dirty = dict.fromkeys(self._retained)
        self._retained_wake.set()
        await self._flush_marks()
        self.connected.set()
        self.offline.clear()
        self._attempt_ended()
        self.metrics.set_broker(True, reconnected=self.connections > 1)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._drain(client), name="mqtt:drain")
            group.create_task(self._mark_loop(), name="mqtt:mark")
            group.create_task(self._retained_loop(client), name="mqtt:retained")
            group.create_task(_until_lost(client), name="mqtt:connection")

    async def _retained_loop(self, client: MqttClient) -> None:
        window = self.settings.window
        while True:
            await self._retained_wake.wait()
            self._retained_wake.clear()
            while self._retained_dirty:
                await client.wait_room(window)
                topic = next(iter(self._retained_dirty))
                del self._retained_dirty[topic]
                client.publish(topic, self._retained[topic], retain=True,
                               on_ack=functools.partial(self._refused, topic))

    async def _drain(self, client: MqttClient) -> None:
        """Publish unpublished rows in id order: first read from the journal (after a start,
        a reconnect or a gap), then, once caught up, straight from ``offer`` (no read). As
        many as the window has room for go out together, in one write."""
        window = self.settings.window
        cursor = 0  # every row up to here is published or in flight on this connection
        caught_up = False
        while True:
            if not caught_up:
                rows, top = await self._journal.call(self._journal.catch_up, cursor,
                                                     FETCH_ROWS)
                for row in rows:
                    if not client.room(window):
                        await client.wait_room(window)
                    self._publish_row(client, row)
                    cursor = row.id
                if len(rows) < FETCH_ROWS:
                    caught_up = True
                    cursor = max(cursor, top)
                continue
            if not self._live:
                self._wake.clear()
                await self._wake.wait()
                continue
            if not client.room(window):
                await client.wait_room(window)
            room, live = client.room(window), self._live
            while room and live:
                row = live.popleft()
                if row.id <= cursor:
                    continue
                if row.id != cursor + 1:  # rows missing from memory: read the journal
                    live.appendleft(row)
                    caught_up = False
                    break
                self._publish_row(client, row)
                cursor = row.id
                room -= 1
            client.flush()  # this batch in one write now, not at the next loop turn

    def _publish_row(self, client: MqttClient, row: Row) -> None:
        payload = row.payload
        if row.delayable and row.received_at < self._held_before:
            payload = _mark_delayed(payload)
            self.published_delayed += 1
        client.publish(row.topic, payload, retain=row.retain,
                       correlation=row.correlation if self.is_v5 else None,
                       on_ack=lambda code: self._acked(row, code))

    def _acked(self, row: Row, code: int) -> None:
        """A row's PUBACK: marked published (a refusal too, logged: resending it would
        only be refused again)."""
        self._accepted(row.topic, code)
        self._journal.mark_soon((row.id,))
        self._acked_wake.set()
        self.published += 1
        self.metrics.published()
        if self._published_waiters:
            self._wake_published()

    async def _mark_loop(self) -> None:
        # Published flags ride along with the next commit; when none comes within
        # MARK_DELAY_S they are written on their own. A crash in between republishes
        # at most that long's worth of messages (at-least-once). A full disk holds them
        # back longer: they are tried again every MARK_RETRY_S. While frames keep coming,
        # the commits carry every flag and this loop writes none (no fsync of its own).
        journal = self._journal
        while True:
            await self._acked_wake.wait()
            self._acked_wake.clear()
            commits = journal.commits
            await asyncio.sleep(MARK_DELAY_S)
            if journal.commits != commits:  # it took the flags queued before the pause
                if journal.marks_pending:
                    self._acked_wake.set()
                continue
            if not await self._flush_marks():
                await asyncio.sleep(MARK_RETRY_S)
                self._acked_wake.set()

    async def _flush_marks(self) -> bool:
        if self._journal.marks_pending:
            return await self._journal.call(self._journal.flush_marks)
        return True

    async def goodbye(self, extra: Sequence[tuple[str, bytes]] = (),
                      timeout_s: float = 2.0) -> None:
        """On a clean stop: ``extra`` retained messages, then the gateway's state offline;
        no reconnection after this."""
        self._stopping = True
        client = self._client
        if client is None:
            return
        with contextlib.suppress(MqttError, TimeoutError):
            async with asyncio.timeout(timeout_s):
                for topic, payload in extra:
                    await client.wait_room(self.settings.window)
                    client.publish(topic, payload, retain=True)
                await client.publish_acked(self._state_topic, self._offline_payload,
                                           retain=True)
        await self._flush_marks()

    async def close(self) -> None:
        await self._flush_marks()


async def _until_lost(client: MqttClient) -> None:
    """Raises the connection's `MqttError` once it is lost (ends the session's tasks)."""
    await client.wait_lost()


def _mark_delayed(payload: bytes) -> bytes:
    message = json.loads(payload)
    message["delayed"] = True
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
